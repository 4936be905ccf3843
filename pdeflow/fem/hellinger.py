"""Exact pointwise Hellinger JKO step for the Fisher–Rao flow of KL (MATH §4.1).

ρ^{n+1} = argmin_ρ F(ρ) + (2/(βτ)) ∫ (√ρ − √ρⁿ)²  (spherical: subject to ∫ρ = ∫ρⁿ, multiplier η).
The distance decouples in x, so at every vertex ρ solves the Euler–Lagrange equation

    log(ρ/π) + (2/τ')(1 − √(ρⁿ/ρ)) = η,       τ' = βτ,

whose left side is strictly increasing in ρ.  Closed form with the Wright ω function
(ω + log ω = L):  √ρ = √ρⁿ / (τ' ω(L)),  L = log(√ρⁿ / (τ' √(π e^η))) + 1/τ'.  In the log
variable: φ = φⁿ − 2 log(τ' ω(L)).  The multiplier η is the root of the strictly increasing lumped
mass η ↦ Σ m_i ρ_i(η) − Σ m_i ρⁿ_i (Brent's method, bracket found by doubling).  Every rank runs
the same root finder on globally reduced masses, so all ranks agree on η.

Nodal-exact in space (the error is the P1 interpolation error) and first order in τ; it differs
from the frozen-mobility scheme by O(τ), which the tests check.  Only α = 0 (pure reaction).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import brentq
from scipy.special import wrightomega

from ..problem import Problem
from .scheme import FrozenMobilityScheme, NewtonFailure, StepResult
from .space import P1Space


class HellingerJKOScheme:
    name = "hellinger-jko"
    linear_solver_kind = "pointwise"

    def __init__(self, space: P1Space, problem: Problem, log_pi: np.ndarray, options=None):
        if problem.flow.alpha != 0:
            raise ValueError("scheme 'hellinger-jko' is the pure Fisher-Rao step: it needs alpha = 0")
        if problem.source is not None:
            raise ValueError("scheme 'hellinger-jko' does not support manufactured source terms")
        if problem.energy != "kl":
            raise ValueError(f"scheme 'hellinger-jko' is the exact JKO step of KL (Wright omega); energy "
                             f"{problem.energy} needs scheme 'frozen-mobility' or 'bdf2'")
        self.is_kl = True
        self.space = space
        self.beta = problem.flow.beta
        self.spherical = problem.flow.spherical
        self.log_pi = log_pi
        self.pi = np.exp(log_pi)
        self.m = space.lumped_mass

    energy = FrozenMobilityScheme.energy  # the same lumped KL

    def _phi(self, phi_n: np.ndarray, tp: float, eta: float) -> np.ndarray:
        L = 0.5 * phi_n - math.log(tp) - 0.5 * (self.log_pi + eta) + 1.0 / tp
        return phi_n - 2.0 * np.log(tp * np.real(wrightomega(L)))

    def step(self, phi_n, tau, t_new, phi_guess=None, eta_guess=0.0) -> StepResult:
        t0 = time.perf_counter()
        space, m = self.space, self.m
        tp = self.beta * tau
        mass_n = space.dot(m, np.exp(phi_n))
        evaluations = 1
        eta = 0.0
        if self.spherical:

            def excess(e):
                return space.dot(m, np.exp(self._phi(phi_n, tp, e))) / mass_n - 1.0

            lo, hi = eta_guess - 1.0, eta_guess + 1.0
            f_lo, f_hi = excess(lo), excess(hi)
            evaluations = 2
            while f_lo > 0:  # the mass increases with η: move the lower end down
                lo, hi, f_hi = lo - 2 * (hi - lo), lo, f_lo
                f_lo = excess(lo)
                evaluations += 1
                if evaluations > 200 or not math.isfinite(f_lo):
                    raise NewtonFailure("could not bracket the Hellinger-JKO multiplier")
            while f_hi < 0:
                lo, hi, f_lo = hi, hi + 2 * (hi - lo), f_hi
                f_hi = excess(hi)
                evaluations += 1
                if evaluations > 200 or not math.isfinite(f_hi):
                    raise NewtonFailure("could not bracket the Hellinger-JKO multiplier")
            eta, info = brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, full_output=True)
            evaluations += info.function_calls
        phi = self._phi(phi_n, tp, eta)
        if not np.all(np.isfinite(phi)):
            raise NewtonFailure("non-finite Hellinger-JKO update")
        rho, rho_n = np.exp(phi), np.exp(phi_n)
        F_n, F_new = self.energy(phi_n), self.energy(phi)
        he2 = (4.0 / self.beta) * space.dot(m, (np.sqrt(rho) - np.sqrt(rho_n)) ** 2)
        el = (phi - self.log_pi) + (2.0 / tp) * (1.0 - np.exp(0.5 * (phi_n - phi))) - eta
        diag = {
            "energy": F_new,
            "mass": space.dot(m, rho),
            # metric slope estimate He²(ρ^{n+1}, ρⁿ)/τ² (the JKO analogue of ⟨μ, 𝕂μ⟩)
            "dissipation": he2 / tau**2,
            # minimizing-movement inequality F^{n+1} + He²/(2τ) ≤ Fⁿ; slack ≥ 0
            "mm_slack": F_n - F_new - he2 / (2 * tau),
            "euler_lagrange_residual": space.max_abs(el),
            "eta": eta,
            "newton_iterations": 1,  # closed form: one evaluation per vertex
            "root_evaluations": evaluations,  # lumped-mass evaluations of the η root finder
            "linear_iterations": 0,
            "wall": time.perf_counter() - t0,
        }
        return StepResult(phi, eta, 1, 0, diag)

    def destroy(self) -> None:
        pass
