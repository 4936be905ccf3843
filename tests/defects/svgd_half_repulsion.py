"""SVGD with the repulsive term Σ_j w_j ∇_{x_j} k(x_j, x_i) halved.

Defect: interaction.  Expected verdict: inconsistent (declares continuum "stein").
"""
import numpy as np

from pdeflow.approx import initial_particles, target_score
from pdeflow.approx.methods.lambda_fr import time_grid


def refuse(problem, params):
    flow = problem.flow
    if not flow.alpha > 0 or flow.beta != 0:
        return (f"svgd approximates a pure transport flow (alpha > 0, beta = 0); case {problem.name!r} has "
                f"alpha = {flow.alpha:g}, beta = {flow.beta:g} (use --set beta=0)")
    if params.sigma is None or params.kernel != "gaussian":
        return "svgd needs the gaussian kernel at a fixed bandwidth: --set sigma=..."
    return None


def stein_velocity(x, w, score, ell):
    """φ̂(x_i) = Σ_j w_j [k(x_j, x_i) ∇log π(x_j) + ∇_{x_j} k(x_j, x_i)],  k(x, y) = exp(−|x − y|²/(2ℓ²)).

    ∇_{x_j} k(x_j, x_i) = k(x_i, x_j) (x_i − x_j)/ℓ², so the repulsion is Σ_j w_j k_ij (x_i − x_j)/ℓ²."""
    d2 = sum((x[:, k, None] - x[None, :, k]) ** 2 for k in range(x.shape[1]))
    kw = np.exp(-0.5 * d2 / ell**2) * w[None, :]  # w_j k(x_i, x_j)
    drive = kw @ score
    repulsion = (kw.sum(axis=1)[:, None] * x - kw @ x) / ell**2
    return drive + 0.5 * repulsion  # DEFECT: half the repulsion


def run(problem, params):
    """SVGD with a Gaussian kernel of bandwidth sigma, explicit Euler, reflection into the domain."""
    reason = refuse(problem, params)
    if reason:
        raise ValueError(reason)
    alpha, ell = problem.flow.alpha, float(params.sigma)
    x, w = initial_particles(problem, params.n_particles, params.seed)  # w_j = M0/N, fixed
    score = target_score(problem)
    times = np.asarray(problem.snapshot_times(), dtype=float)
    xs = [x.copy()]
    for _, n_steps, tau in time_grid(times, params.dt):
        for _ in range(n_steps):
            v = alpha * stein_velocity(x, w, score(x), ell)
            x = problem.domain.reflect(x + tau * v)
        xs.append(x.copy())
    return {"times": times, "x": np.array(xs), "w": np.repeat(w[None], len(times), axis=0),
            "info": {"bandwidth": ell, "integrator": "euler"}}


run.continuum = "stein"
run.refuse = refuse
