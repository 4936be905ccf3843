"""Correct Fisher–Rao reweighting of fixed particles (MATH §5.3 item 1, as template-fr): the reference version.

Expected verdict: consistent (continuum "flow": the case's own FR flow of KL, alpha = 0).
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


def make_run(init_spread=1.0, exponent="exact", normalize=True, power=1, mirror=False):
    """This FR reweighting, or a variant of it: the seeded defects and harmless variants of this folder are
    each one keyword here (an initial draw narrowed about its mean but weighted as if from ρ0, the exponent
    βt for 1 − e^{−βt}, no spherical normalization, weights to a power, mirror steps of the weight ODE)."""
    def run(problem, params):
        """Exact FR reweighting: w_i(t) ∝ w_i(0) (π/ρ0)^{1−e^{−βt}}(x_i), normalized to M0 on P."""
        reason = refuse(problem, params)
        if reason:
            raise ValueError(reason)
        beta = problem.flow.beta
        x, w0 = initial_particles(problem, params.n_particles, params.seed)
        if init_spread != 1.0:
            mean = w0 @ x / w0.sum()
            x = problem.domain.reflect(mean + init_spread * (x - mean))
        log_ratio = problem.target.log_density(x.T) - initial_density(problem).log_density(x.T)  # log(π/ρ0)(x_i)
        times = np.asarray(problem.snapshot_times(), dtype=float)
        if mirror:
            ws = _mirror_weights(problem, params, times, w0, log_ratio, beta)
        else:
            ws = []
            for t in times:
                if exponent == "exact":
                    logw = np.log(w0) - np.expm1(-beta * t) * log_ratio  # 1 − e^{−βt} = −expm1(−βt)
                else:  # "linear": βt
                    logw = np.log(w0) + beta * t * log_ratio
                if problem.flow.spherical and normalize:
                    w = np.exp(logw - logw.max())
                    w *= w0.sum() / w.sum()
                else:
                    w = np.exp(logw)
                if power != 1:
                    w = w**power * (w.sum() / (w**power).sum())
                ws.append(w)
        return {"times": times, "x": np.repeat(x[None], len(times), axis=0), "w": np.array(ws), "info": {}}

    run.continuum = "flow"
    run.refuse = refuse
    if not mirror:
        run.uses = ("n_particles", "seed")  # no time step: closed-form weights, so verify runs no dt ladder
    return run


def _mirror_weights(problem, params, times, w0, log_ratio, beta):
    """ẇ_i = −β w_i (ξ̂_i − c), ξ̂_i = log(w_i/w_i(0)) − log(π/ρ0)(x_i), c = <ξ̂>_w on P (0 on M+), integrated
    by w ← w exp(−βτ(ξ̂ − c)) (first order in τ) instead of the closed form."""
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
    return ws


run = make_run()
