"""Hellinger / Fisher–Rao flow of KL(·|π), closed form for any ρ0, π > 0 (MATH §3.1).

The flow is pointwise in x:
    M+        ∂_t ρ = −β ρ log(ρ/π)                 ⇒  ρ_t = ρ0^a π^(1−a),                         a = e^{−βt};
    spherical ∂_t ρ = −β ρ (ξ − ⟨ξ⟩_ρ), ξ = log(ρ/π)  ⇒  ρ_t = M0 ρ0^a π^(1−a) / ∫_Ω ρ0^a π^(1−a),  M0 = ∫_Ω ρ0.
Being pointwise, it is exact on the box Ω itself (no tail truncation); the Ω-integrals are
composite Gauss–Legendre quadratures (:func:`pdeflow.problem.integrate`).
"""
from __future__ import annotations

import math

import numpy as np

from ..problem import Domain, integrate
from . import ExactSolution


class FisherRaoKL(ExactSolution):
    def __init__(self, rho0, pi, beta: float, spherical: bool, domain: Domain):
        if beta <= 0:
            raise ValueError("the Fisher-Rao flow needs beta > 0")
        self.rho0, self.pi, self.domain = rho0, pi, domain
        self.beta, self.spherical = float(beta), bool(spherical)
        self.initial_mass = integrate(rho0, domain)
        self._log_normalizer = {}

    def _log_geometric_mean(self, t, x):
        a = math.exp(-self.beta * t)
        return a * self.rho0.log_density(x) + (1 - a) * self.pi.log_density(x)

    def _log_Z(self, t: float) -> float:
        """log ∫_Ω ρ0^a π^(1−a), cached because every evaluation of ρ_t needs it."""
        t = float(t)
        if t not in self._log_normalizer:
            self._log_normalizer[t] = math.log(integrate(lambda x: np.exp(self._log_geometric_mean(t, x)), self.domain))
        return self._log_normalizer[t]

    def log_density(self, t, x):
        log_rho = self._log_geometric_mean(t, x)
        if self.spherical:
            log_rho = log_rho + math.log(self.initial_mass) - self._log_Z(t)
        return log_rho

    def mass(self, t) -> float:
        """∫_Ω ρ_t: M0 if spherical, else ∫_Ω ρ0^a π^(1−a)."""
        return self.initial_mass if self.spherical else math.exp(self._log_Z(t))

    def describe(self) -> dict:
        return {
            "kind": "fisher-rao",
            "method": "closed form rho0^a pi^(1-a), a = exp(-beta t) (MATH 3.1); Omega-integrals by Gauss-Legendre",
            "beta": self.beta,
            "spherical": self.spherical,
            "target": self.pi.describe(),
            "initial": self.rho0.describe(),
        }


def weights_oracle(t: float, x_particles: np.ndarray, rho0, pi, beta: float) -> np.ndarray:
    """Self-normalized weights w_i ∝ (π/ρ0)^(1−e^{−βt})(x_i) (MATH §3.1, last bullet).

    With x_i ~ ρ0 fixed, Σ_i w_i δ_{x_i} represents the spherical FR solution ρ_t / ∫ρ_t exactly,
    in the sense of importance sampling.  Computed in log form so that far-out particles cannot overflow.
    """
    log_w = (1 - math.exp(-beta * t)) * (pi.log_density(x_particles) - rho0.log_density(x_particles))
    w = np.exp(log_w - log_w.max())
    return w / w.sum()
