"""Gaussian-preserving KL flows: W (MATH §3.2), FR and WFR / HK (MATH §3.3).

With π = z* N(m*, Σ*) and ρ0 = z0 N(m0, Σ0), the flow
    ∂_t ρ = α ∇·(ρ∇ξ) − β ρ (ξ − c),   ξ = log(ρ/π),   c = 0 (M+) or ⟨ξ⟩_ρ (spherical),
keeps ρ_t = z N(m, Σ) with (P* = Σ*⁻¹)
    ṁ = −(αI + βΣ) P* (m − m*),
    Σ̇ = α(2I − P*Σ − ΣP*) + β(Σ − ΣP*Σ),
    ż = −β z [log(z/z*) + KL(N(m,Σ) | N(m*,Σ*))]     (ż = 0 when spherical or β = 0).
These are solutions on R^d; on a box Ω they hold up to the truncation of the Gaussian tails.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad, solve_ivp

from ..problem import Gaussian
from . import ExactSolution

RTOL, ATOL = 1e-12, 1e-14


def kl_gaussian(m, S, mstar, Sstar) -> float:
    """KL(N(m,S) | N(m*,S*)) = ½[tr(P*S) + (m−m*)ᵀP*(m−m*) − d + log det S* − log det S]."""
    Pstar = np.linalg.inv(Sstar)
    dm = m - mstar
    return 0.5 * (
        np.trace(Pstar @ S) + dm @ Pstar @ dm - len(m) + np.linalg.slogdet(Sstar)[1] - np.linalg.slogdet(S)[1]
    )


class GaussianFlow(ExactSolution):
    """ρ_t = z_t N(m_t, Σ_t) from the moment ODEs above, integrated by DOP853 to rtol 1e-12."""

    def __init__(self, pi: Gaussian, rho0: Gaussian, alpha: float, beta: float, spherical: bool):
        if pi.dim != rho0.dim:
            raise ValueError("target and initial Gaussian have different dimensions")
        self.pi, self.rho0 = pi, rho0
        self.alpha, self.beta, self.spherical = float(alpha), float(beta), bool(spherical)
        self._Pstar = np.linalg.inv(pi.S)
        self._cache = {}

    def _rhs(self, _t, u):
        d = self.pi.dim
        m, S, y = u[:d], u[d : d + d * d].reshape(d, d), u[-1]
        S = 0.5 * (S + S.T)
        a, b, P, I = self.alpha, self.beta, self._Pstar, np.eye(d)
        dm = -(a * I + b * S) @ P @ (m - self.pi.m)
        dS = a * (2 * I - P @ S - S @ P) + b * (S - S @ P @ S)
        # The mass equation in y = log z is linear in y, so it cannot overshoot to z ≤ 0.
        dy = 0.0 if self.spherical else -b * (y - math.log(self.pi.mass) + kl_gaussian(m, S, self.pi.m, self.pi.S))
        return np.concatenate([dm, dS.ravel(), [dy]])

    def moments(self, t: float):
        """(z, m, Σ) at time t."""
        t = float(t)
        if t not in self._cache:
            d = self.pi.dim
            u0 = np.concatenate([self.rho0.m, self.rho0.S.ravel(), [math.log(self.rho0.mass)]])
            if t == 0:
                u = u0
            else:
                sol = solve_ivp(self._rhs, (0.0, t), u0, method="DOP853", rtol=RTOL, atol=ATOL, t_eval=[t])
                if not sol.success:
                    raise RuntimeError(f"Gaussian moment ODE failed at t={t}: {sol.message}")
                u = sol.y[:, -1]
            S = u[d : d + d * d].reshape(d, d)
            self._cache[t] = (math.exp(u[-1]), u[:d].copy(), 0.5 * (S + S.T))
        z, m, S = self._cache[t]
        return z, m.copy(), S.copy()

    def gaussian(self, t: float) -> Gaussian:
        z, m, S = self.moments(t)
        return Gaussian(tuple(m), tuple(map(tuple, S)), z)

    def log_density(self, t, x):
        return self.gaussian(t).log_density(x)

    def mass(self, t) -> float:
        """z_t, the mass on R^d."""
        return self.moments(t)[0]

    def describe(self) -> dict:
        return {
            "kind": "gaussian",
            "method": "moment ODE (MATH 3.2-3.3), DOP853, rtol 1e-12",
            "alpha": self.alpha,
            "beta": self.beta,
            "spherical": self.spherical,
            "target": self.pi.describe(),
            "initial": self.rho0.describe(),
        }


def closed_form_1d(t, m0, s0, z0, mstar, sstar, zstar, alpha, beta, spherical):
    """(z, m, s) at time t from the 1-D closed form of MATH §3.3 (s = variance).

    s solves ṡ = (1 − s/s*)(2α + βs); with κ = (2α + βs*)/s* and R = (2α+βs0)/(s*−s0) e^{κt},
    MATH writes s = (R s* − 2α)/(R + β).  Dividing through by R gives
        s = s* + (s0 − s*) κ s* e^{−κt} / (2α + βs0 + β(s* − s0) e^{−κt}),
    the same function, but defined at s0 = s* and free of overflow.  Then
        m − m* = (m0 − m*) (2α + βs)/(2α + βs0) e^{−(β+κ)t/2},
    and y = log(z/z*) = e^{−βt} y0 − β ∫_0^t e^{−β(t−τ)} KL_τ dτ by adaptive quadrature.
    """
    kappa = (2 * alpha + beta * sstar) / sstar

    def s_m(tau):
        e = math.exp(-kappa * tau)
        s = sstar + (s0 - sstar) * kappa * sstar * e / (2 * alpha + beta * s0 + beta * (sstar - s0) * e)
        m = mstar + (m0 - mstar) * (2 * alpha + beta * s) / (2 * alpha + beta * s0) * math.exp(-(beta + kappa) * tau / 2)
        return s, m

    s, m = s_m(t)
    if spherical or beta == 0:
        return z0, m, s

    def kl(tau):
        s_, m_ = s_m(tau)
        return 0.5 * (s_ / sstar + (m_ - mstar) ** 2 / sstar - 1 + math.log(sstar / s_))

    duhamel, _ = quad(lambda tau: math.exp(-beta * (t - tau)) * kl(tau), 0.0, t, epsabs=1e-14, epsrel=1e-13, limit=200)
    y = math.exp(-beta * t) * math.log(z0 / zstar) - beta * duhamel
    return zstar * math.exp(y), m, s
