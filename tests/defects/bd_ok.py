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


def log_kde(x, sigma, self_term=True):
    """log (K_σ*μ)(x_i), μ = (1/N) Σ_j δ_{x_j}, K_σ the normalized Gaussian (self term j = i included;
    ``self_term=False``: left out and normalized by N − 1)."""
    n, d = x.shape
    d2 = sum((x[:, k, None] - x[None, :, k]) ** 2 for k in range(d))
    expo = -0.5 * d2 / sigma**2
    if not self_term:
        np.fill_diagonal(expo, -np.inf)
    return logsumexp(expo, axis=1) - math.log(n if self_term else n - 1) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def make_run(drift_shift=0.0, clock=1.0, init_spread=1.0, self_term=True, centred=True):
    """This birth–death, or a variant of it: the seeded defects and harmless variants of this folder are
    each one keyword here (the ULA score at a shifted point, the dynamics advanced by clock·h per step of
    h, an initial draw narrowed about its mean, the KDE without its self term, the rate without its mean)."""
    def run(problem, params):
        """Birth–death + ULA: kill/duplicate with rate beta·(xi_i − mean xi), xi = log(KDE/pi)."""
        reason = refuse(problem, params)
        if reason:
            raise ValueError(reason)
        alpha, beta, sigma = problem.flow.alpha, problem.flow.beta, float(params.sigma)
        n = params.n_particles
        rng = np.random.default_rng(params.seed)
        x, w = sample_initial(problem, n, rng)  # = initial_particles(problem, n, seed), keeping the stream
        if init_spread != 1.0:
            mean = w @ x / w.sum()
            x = problem.domain.reflect(mean + init_spread * (x - mean))
        grad = problem.target.grad_log_density
        times = np.asarray(problem.snapshot_times(), dtype=float)
        xs = [x.copy()]
        for _, n_steps, h in time_grid(times, params.dt):
            if clock != 1.0:
                h = clock * h  # the dynamics advance by clock·h, the snapshot times by h
            for _ in range(n_steps):
                if alpha > 0:  # ULA move
                    drift = grad((x + drift_shift).T).T if drift_shift else grad(x.T).T
                    x = x + alpha * h * drift + math.sqrt(2 * alpha * h) * rng.standard_normal(x.shape)
                    x = problem.domain.reflect(x)
                if beta > 0:  # birth–death, rate frozen over the step
                    xi = log_kde(x, sigma, self_term) - problem.target.log_density(x.T)
                    lam = xi - xi.mean() if centred else xi
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
    return run


run = make_run()
