"""SVGD (Stein variational gradient descent) as an external pdeflow method, in plain numpy.

    pdeflow verify w-kl-gauss-1d --method docs/examples/external_svgd/svgd.py:run --set sigma=0.5 --set dt=0.02

pdeflow calls ``run(problem, params)``.  From ``problem`` this file uses only the snapshot times, the
dimension, the reflection into the domain and the target's score; from ``params`` the number of
particles, the seed, the bandwidth ``sigma`` and the step ``dt``.  The one pdeflow call is the
initial draw (inside ``run``), so that the particles start where pdeflow's own methods start.
"""
import math

import numpy as np


def stein_direction(x, score, ell):
    """phi(x_i) = (1/N) sum_j [k(x_j, x_i) score(x_j) + grad_{x_j} k(x_j, x_i)], k = exp(-|x - y|^2 / (2 ell^2))."""
    n = x.shape[0]
    diff = x[:, None, :] - x[None, :, :]                   # x_i - x_j
    k = np.exp(-0.5 * np.sum(diff**2, axis=2) / ell**2)   # k(x_i, x_j), symmetric
    attraction = k @ score                                 # pulls towards high target density
    repulsion = np.einsum("ij,ijd->id", k, diff) / ell**2  # pushes particles apart
    return (attraction + repulsion) / n


def run(problem, params):
    """SVGD with a Gaussian kernel of fixed bandwidth sigma, explicit Euler steps of at most dt."""
    if params.sigma is None:
        raise ValueError("this SVGD needs a fixed kernel bandwidth: --set sigma=...")
    from pdeflow.approx import initial_particles  # the one pdeflow call: the same initial draw as pdeflow

    x, w = initial_particles(problem, params.n_particles, params.seed)  # x (N, d), w = M0/N each
    mass = float(w.sum())  # M0: the Stein PDE's kernel integrates against rho of mass M0
    score = lambda y: problem.target.grad_log_density(y.T).T  # (N, d) -> (N, d)
    times = np.asarray(problem.snapshot_times(), dtype=float)
    snapshots = [x.copy()]
    for t0, t1 in zip(times[:-1], times[1:]):
        n_steps = max(1, math.ceil((t1 - t0) / params.dt - 1e-9))  # uniform steps that end on t1
        tau = (t1 - t0) / n_steps
        for _ in range(n_steps):
            # velocity of the Stein PDE d_t rho = div(rho K_rho grad log(rho/pi)) (time scale alpha = 1)
            x = problem.domain.reflect(x + tau * mass * stein_direction(x, score(x), params.sigma))
        snapshots.append(x.copy())
    n = x.shape[0]
    return {"times": times, "x": np.array(snapshots), "w": np.full((len(times), n), mass / n),
            "info": {"kernel": "gaussian", "bandwidth": params.sigma}}


run.continuum = "stein"  # the mean-field limit at fixed bandwidth; pdeflow adds kernel and sigma from params
