"""FR reweighting by mirror (exponential) steps of size ≤ dt of the weight ODE instead of its closed form: vanishes as dt → 0.

Harmless.  Expected verdict: consistent (declares continuum "flow").
"""
import numpy as np

from pdeflow.approx import initial_particles
from pdeflow.approx.methods.lambda_fr import time_grid
from pdeflow.problem import initial_density


def refuse(problem, params):
    flow = problem.flow
    if flow.alpha != 0 or not flow.beta > 0:
        return (f"FR reweighting needs alpha = 0 and beta > 0; case {problem.name!r} has alpha = {flow.alpha:g}, "
                f"beta = {flow.beta:g} (use --set alpha=0)")
    return None


def run(problem, params):
    """FR reweighting by mirror steps of the weight ODE (first order in dt), normalized to M0 on P."""
    reason = refuse(problem, params)
    if reason:
        raise ValueError(reason)
    beta = problem.flow.beta
    x, w0 = initial_particles(problem, params.n_particles, params.seed)
    log_ratio = problem.target.log_density(x.T) - initial_density(problem).log_density(x.T)  # log(π/ρ0)(x_i)
    times = np.asarray(problem.snapshot_times(), dtype=float)
    # HARMLESS: ẇ_i = −β w_i (ξ̂_i − c), ξ̂_i = log(w_i/w_i(0)) − log(π/ρ0)(x_i), c = <ξ̂>_w on P (0 on M+),
    # integrated by w ← w exp(−βτ(ξ̂ − c)) (first order in τ) instead of the closed form
    w = w0.copy()
    ws = [w.copy()]
    for _, n_steps, tau in time_grid(times, params.dt):
        for _ in range(n_steps):
            xi = np.log(w / w0) - log_ratio
            c = (w @ xi) / w.sum() if problem.flow.spherical else 0.0
            w = w * np.exp(-beta * tau * (xi - c))
            if problem.flow.spherical:
                w *= w0.sum() / w.sum()
        ws.append(w.copy())
    return {"times": times, "x": np.repeat(x[None], len(times), axis=0), "w": np.array(ws), "info": {}}


run.continuum = "flow"
run.refuse = refuse
