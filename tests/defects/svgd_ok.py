"""Correct SVGD (Liu & Wang 2016, MATH §5.1) at a fixed Gaussian bandwidth: the reference version.

Expected verdict: consistent (continuum "stein" with kernel gaussian, sigma = params.sigma).
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


def stein_velocity(x, w, score, ell, repulsion=1.0, self_term=True):
    """φ̂(x_i) = Σ_j w_j [k(x_j, x_i) ∇log π(x_j) + ∇_{x_j} k(x_j, x_i)],  k(x, y) = exp(−|x − y|²/(2ℓ²)).

    ∇_{x_j} k(x_j, x_i) = k(x_i, x_j) (x_i − x_j)/ℓ², so the repulsion is Σ_j w_j k_ij (x_i − x_j)/ℓ².
    ``repulsion`` scales that term and ``self_term=False`` drops j = i (the seeded variants)."""
    d2 = sum((x[:, k, None] - x[None, :, k]) ** 2 for k in range(x.shape[1]))
    kw = np.exp(-0.5 * d2 / ell**2) * w[None, :]  # w_j k(x_i, x_j)
    if not self_term:
        np.fill_diagonal(kw, 0.0)
    drive = kw @ score
    rep = (kw.sum(axis=1)[:, None] * x - kw @ x) / ell**2
    return drive + (rep if repulsion == 1.0 else repulsion * rep)


def make_run(score_scale=1.0, score_shift=0.0, repulsion=1.0, self_term=True, bandwidth_factor=1.0, clock=1.0,
             init_shift=0.0, heun=False):
    """This SVGD, or a variant of it: the seeded defects and harmless variants of this folder are each one
    keyword here (the score scaled or evaluated at a shifted point, the repulsion scaled, the self term
    dropped, the dynamics at another bandwidth, the clock sped up, the initial draw shifted, Heun steps)."""
    def run(problem, params):
        """SVGD with a Gaussian kernel of bandwidth sigma, explicit Euler, reflection into the domain."""
        reason = refuse(problem, params)
        if reason:
            raise ValueError(reason)
        alpha, ell = problem.flow.alpha, bandwidth_factor * float(params.sigma)
        x, w = initial_particles(problem, params.n_particles, params.seed)  # w_j = M0/N, fixed
        if init_shift:
            x = problem.domain.reflect(x + init_shift)
        target = target_score(problem)

        def velocity(y):
            s = target(y + score_shift) if score_shift else target(y)
            s = s if score_scale == 1.0 else score_scale * s
            v = alpha * stein_velocity(y, w, s, ell, repulsion, self_term)
            return v if clock == 1.0 else clock * v

        times = np.asarray(problem.snapshot_times(), dtype=float)
        xs = [x.copy()]
        for _, n_steps, tau in time_grid(times, params.dt):
            for _ in range(n_steps):
                v1 = velocity(x)
                if heun:  # predictor not reflected: the corrector reflects
                    x = problem.domain.reflect(x + 0.5 * tau * (v1 + velocity(x + tau * v1)))
                else:
                    x = problem.domain.reflect(x + tau * v1)
            xs.append(x.copy())
        return {"times": times, "x": np.array(xs), "w": np.repeat(w[None], len(times), axis=0),
                "info": {"bandwidth": ell, "integrator": "heun" if heun else "euler"}}

    run.continuum = "stein"
    run.refuse = refuse
    return run


run = make_run()
