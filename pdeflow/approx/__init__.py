"""Kernel approximations of the flows on weighted particles (MATH §5) — numpy/scipy only.

This package must never import dolfinx: particle methods run anywhere numpy runs.

For external codes: :func:`initial_particles` gives the same initial draw as every built-in method
(same seed, same points), and ``problem.target.grad_log_density`` / :func:`target_score` the
target's score, so that a user's method can start from exactly what pdeflow's methods start from.
"""
import numpy as np

from .methods import DECLARATIONS, METHODS, MethodDecl, MethodParams, get_method, run_approximation  # noqa: F401
from .particles import ParticleTrajectory  # noqa: F401


def initial_particles(problem, n_particles: int, seed: int = 0):
    """(x, w): ``n_particles`` i.i.d. points from ρ0 restricted to Ω, shape (N, d), and equal
    weights w_i = M0/N summing to the initial mass M0 = ∫_Ω ρ0 — bit for bit the draw of the
    built-in methods with ``MethodParams(n_particles=N, seed=seed)`` (``np.random.default_rng(seed)``)."""
    from .particles import sample_initial

    return sample_initial(problem, int(n_particles), np.random.default_rng(seed))


def target_score(problem):
    """x (N, d) → ∇log π(x), shape (N, d) (the target's analytic score; ``problem.target.grad_log_density``
    takes and returns the transposed (d, N) layout)."""
    from .methods.lambda_fr import grad_log_target

    return grad_log_target(problem)
