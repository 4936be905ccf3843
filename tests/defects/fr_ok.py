"""Correct Fisher–Rao reweighting of fixed particles (MATH §5.3 item 1, as template-fr): the reference version.

Expected verdict: consistent (continuum "flow": the case's own FR flow of KL, alpha = 0).
"""
import numpy as np

from pdeflow.approx import initial_particles
from pdeflow.problem import initial_density


def refuse(problem, params):
    flow = problem.flow
    if flow.alpha != 0 or not flow.beta > 0:
        return (f"FR reweighting needs alpha = 0 and beta > 0; case {problem.name!r} has alpha = {flow.alpha:g}, "
                f"beta = {flow.beta:g} (use --set alpha=0)")
    return None


def run(problem, params):
    """Exact FR reweighting: w_i(t) ∝ w_i(0) (π/ρ0)^{1−e^{−βt}}(x_i), normalized to M0 on P."""
    reason = refuse(problem, params)
    if reason:
        raise ValueError(reason)
    beta = problem.flow.beta
    x, w0 = initial_particles(problem, params.n_particles, params.seed)
    log_ratio = problem.target.log_density(x.T) - initial_density(problem).log_density(x.T)  # log(π/ρ0)(x_i)
    times = np.asarray(problem.snapshot_times(), dtype=float)
    ws = []
    for t in times:
        logw = np.log(w0) - np.expm1(-beta * t) * log_ratio  # 1 − e^{−βt} = −expm1(−βt)
        if problem.flow.spherical:
            w = np.exp(logw - logw.max())
            w *= w0.sum() / w.sum()
        else:
            w = np.exp(logw)
        ws.append(w)
    return {"times": times, "x": np.repeat(x[None], len(times), axis=0), "w": np.array(ws), "info": {}}


run.continuum = "flow"
run.refuse = refuse
run.uses = ("n_particles", "seed")  # no time step: closed-form weights, so verify runs no dt ladder
