"""Weighted particle measures μ = Σ_i w_i δ_{x_i} on the case's domain, and their trajectories.

* :func:`sample_initial` draws N i.i.d. points from ρ0 restricted to Ω (rejection from the
  Gaussian mixture) with equal weights summing to ∫_Ω ρ0 — the particle version of the reference
  solver's initial data.
* :func:`reflect` maps points that left Ω back by mirror reflection at its boundary: the
  particle counterpart of the no-flux boundary condition of the reference PDE (MATH §6 (d) 4).
* :class:`ParticleTrajectory` is what every method returns: snapshot times, positions
  (n_snap × N × d) and weights (n_snap × N), with per-step diagnostics and the parameters used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..problem import Domain, GaussianMixture, Problem, initial_density, integrate


def sample_mixture(mix: GaussianMixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. points from a Gaussian mixture (component chosen by mass), shape (n, d)."""
    masses = np.array([c.mass for c in mix.components])
    counts = rng.multinomial(n, masses / masses.sum())
    parts = [rng.multivariate_normal(c.m, c.S, size=k) for c, k in zip(mix.components, counts) if k > 0]
    pts = np.concatenate(parts, axis=0)
    return pts[rng.permutation(n)]


def inside(domain: Domain, x: np.ndarray) -> np.ndarray:
    return domain.contains(x)


def sample_on_domain(mix: GaussianMixture, domain: Domain, n: int, rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. points from the mixture restricted to Ω (rejection sampling)."""
    out, have = [], 0
    for _ in range(1000):
        draw = sample_mixture(mix, max(2 * (n - have), 16), rng)
        draw = draw[inside(domain, draw)]
        out.append(draw)
        have += draw.shape[0]
        if have >= n:
            return np.concatenate(out)[:n]
    raise RuntimeError("rejection sampling on the domain failed: the density has almost no mass on it")


def sample_initial(problem: Problem, n: int, rng: np.random.Generator):
    """(x, w): N points from ρ0|_Ω and equal weights with Σ w = ∫_Ω ρ0."""
    rho0 = initial_density(problem)
    if not isinstance(rho0, GaussianMixture):
        raise ValueError(f"case {problem.name!r}: particle methods need a Gaussian-mixture initial density")
    x = sample_on_domain(rho0, problem.domain, n, rng)
    mass = integrate(rho0, problem.domain)
    return x, np.full(n, mass / n)


def reflect(domain: Domain, x: np.ndarray) -> np.ndarray:
    """Mirror points back into Ω (box faces, or the shape's boundary: :meth:`Domain.reflect`)."""
    return domain.reflect(x)


@dataclass
class ParticleTrajectory:
    method: str
    params: dict
    times: np.ndarray
    x: np.ndarray  # (n_snap, N, d)
    w: np.ndarray  # (n_snap, N)
    steps: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    energy: Optional[np.ndarray] = None  # energy estimate at the snapshots, where defined

    @property
    def n_particles(self) -> int:
        return self.x.shape[1]

    def mass(self) -> np.ndarray:
        return self.w.sum(axis=1)

    def summary(self) -> dict:
        return {
            "method": self.method,
            "parameters": self.params,
            "snapshot_times": [float(t) for t in self.times],
            "n_particles": int(self.n_particles),
            "mass": [float(m) for m in self.mass()],
            "energy": None if self.energy is None else [float(e) for e in self.energy],
            "info": self.info,
            "steps": self.steps,
        }
