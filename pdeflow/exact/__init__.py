"""Reference solutions of the KL(·|π) flows (MATH §3): closed forms and ODE oracles.

* :mod:`.fisher_rao` — Hellinger / spherical FR flow, ρ_t = ρ0^a π^(1−a), a = e^(−βt) (MATH §3.1);
* :mod:`.gaussian`   — W / FR / WFR / HK flows between Gaussians, moment ODEs (MATH §3.2–3.3);
* :mod:`.mms`        — the manufactured solution with source term (MATH §3.5, recipe A);
* :mod:`.mms_energy` — manufactured solutions of the W / FR / WFR flows of any local energy in 1-D, 2-D.

:func:`exact_solution` picks the one a :class:`~pdeflow.problem.Problem` declares in ``exact_kind``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


class ExactSolution:
    """ρ(t, x) of a flow; points x have shape (d, n), values shape (n,)."""

    def log_density(self, t: float, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def density(self, t: float, x: np.ndarray) -> np.ndarray:
        return np.exp(self.log_density(t, x))

    def mass(self, t: float) -> float:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


def _single_gaussian(density, what: str):
    from ..problem import GaussianMixture

    if not (isinstance(density, GaussianMixture) and density.is_gaussian):
        raise ValueError(f"exact_kind 'gaussian' needs a single-Gaussian {what}, got {density.describe()['type']}")
    return density.components[0]


def exact_solution(problem) -> Optional[ExactSolution]:
    """The reference solution declared by ``problem.exact_kind``, or None where there is none."""
    from ..problem import initial_density

    kind = problem.exact_kind
    flow = problem.flow
    if kind is None:
        return None
    if kind == "mms-energy":
        from .mms_energy import EnergyManufacturedSolution, matches

        if not matches(problem):  # the source was derived for another energy / geometry
            return None
        return EnergyManufacturedSolution(problem.dim, problem.energy, flow.alpha, flow.beta)
    if problem.energy != "kl":
        return None  # the closed forms below are those of the KL flows
    if kind == "fisher-rao":
        if flow.alpha != 0:
            return None
        from .fisher_rao import FisherRaoKL

        return FisherRaoKL(initial_density(problem), problem.target, flow.beta, flow.spherical, problem.domain)
    if kind == "gaussian":
        from .gaussian import GaussianFlow

        pi = _single_gaussian(problem.target, "target")
        rho0 = _single_gaussian(initial_density(problem), "initial density")
        return GaussianFlow(pi, rho0, flow.alpha, flow.beta, flow.spherical)
    if kind == "mms":
        from .mms import ManufacturedSolution, mms_flow

        # The source term was derived for one geometry; with another, ρ_ex solves nothing.
        return ManufacturedSolution() if flow == mms_flow() else None
    raise ValueError(f"unknown exact_kind {kind!r}")
