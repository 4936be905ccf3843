"""Correct birth–death with ULA moves (Lu–Lu–Nolen 2019, MATH §5.5), stochastic variant: the reference version.

Expected verdict: consistent (continuum "kde-wfr": KDE plug-in log(K_σ*ρ/π) at sigma = params.sigma).

The random numbers are drawn in the order of the built-in ``birth-death`` (initial draw, then per
step: ULA noise, event uniforms, event order, partners) from one ``np.random.default_rng(seed)``,
so a run reproduces the built-in one for the same seed.
"""
import math

import numpy as np
from scipy.special import logsumexp

from pdeflow.approx.methods.lambda_fr import time_grid
from pdeflow.approx.particles import sample_initial


def refuse(problem, params):
    if not problem.flow.spherical:
        return f"birth-death conserves mass; case {problem.name!r} has an unbalanced (M+) flow"
    if params.sigma is None:
        return "birth-death needs a fixed KDE bandwidth: --set sigma=..."
    return None


def log_kde(x, sigma):
    """log (K_σ*μ)(x_i), μ = (1/N) Σ_j δ_{x_j}, K_σ the normalized Gaussian (self term j = i included)."""
    n, d = x.shape
    d2 = sum((x[:, k, None] - x[None, :, k]) ** 2 for k in range(d))
    return logsumexp(-0.5 * d2 / sigma**2, axis=1) - math.log(n) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def run(problem, params):
    """Birth–death + ULA: kill/duplicate with rate beta·(xi_i − mean xi), xi = log(KDE/pi)."""
    reason = refuse(problem, params)
    if reason:
        raise ValueError(reason)
    alpha, beta, sigma = problem.flow.alpha, problem.flow.beta, float(params.sigma)
    n = params.n_particles
    rng = np.random.default_rng(params.seed)
    x, w = sample_initial(problem, n, rng)  # = initial_particles(problem, n, seed), keeping the stream
    grad = problem.target.grad_log_density
    times = np.asarray(problem.snapshot_times(), dtype=float)
    xs = [x.copy()]
    for _, n_steps, h in time_grid(times, params.dt):
        for _ in range(n_steps):
            if alpha > 0:  # ULA move
                x = x + alpha * h * grad(x.T).T + math.sqrt(2 * alpha * h) * rng.standard_normal(x.shape)
                x = problem.domain.reflect(x)
            if beta > 0:  # birth–death, rate frozen over the step
                xi = log_kde(x, sigma) - problem.target.log_density(x.T)
                lam = xi - xi.mean()
                fired = np.flatnonzero(rng.random(n) < -np.expm1(-beta * h * np.abs(lam)))
                order = fired[rng.permutation(fired.size)]
                for i, j in zip(order, rng.integers(n - 1, size=order.size)):
                    j = j + (j >= i)  # uniform among the other particles
                    if lam[i] > 0:
                        x[i] = x[j]  # kill i, duplicate j
                    else:
                        x[j] = x[i]  # duplicate i, kill j
        xs.append(x.copy())
    return {"times": times, "x": np.array(xs), "w": np.repeat(w[None], len(times), axis=0),
            "info": {"sigma": sigma, "variant": "stochastic"}}


run.continuum = "kde-wfr"
run.refuse = refuse
