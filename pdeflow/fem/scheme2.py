"""Second-order minimizing movement for the KL flows: the variational BDF2 step (Matthes–Plazotta)
with the mobility frozen at an extrapolated state (MATH §4.2, "Second order in time"), P1, lumped,
log variable.

With ω = τ/τ_prev (the ratio of this step to the last accepted one), a = (1+2ω)/(1+ω) and the
anchor σ = ((1+ω)² ρⁿ − ω² ρ^{n−1}) / (1+2ω) (for ω = 1: a = 3/2, σ = (4ρⁿ − ρ^{n−1})/3), one step
solves, for φ = log ρ^{n+1} at the vertices and μ = φ − I_h log π,

    a m∘(e^φ − σ)/τ + 𝖪(ρ*)(μ − η) = m∘f(t^{n+1}),      𝖪(ρ) = α 𝖠(ρ) + β diag(m∘ρ),

— variable-step BDF2 for ∂ρ = −𝕂(ρ)DF(ρ) — with the mobility at the log-linear extrapolation
ρ* = exp(φⁿ + clip(ω(φⁿ − φ^{n−1}), ±1)) to t^{n+1} (second-order accurate, positive; the clip acts
only where ρ is so small that log ρ changes by more than 1 in a step) and η the spherical
multiplier (Σ m_i(ρ_i − ρⁿ_i) = τ Σ m_i f_i), zero otherwise.

Variational form.  The equation is the Euler–Lagrange equation of

    ρ^{n+1} = argmin_ρ  F_h(ρ) + (a/2τ) ⟨m∘(ρ − σ), 𝖪(ρ*)⁻¹ m∘(ρ − σ)⟩,

a minimizing movement from the anchor σ in the metric frozen at ρ*; for ω = 1 the penalty is
(1/τ) d²(ρ, ρⁿ) − (1/4τ) d²(ρ, ρ^{n−1}) up to a constant: the variational BDF2 of Matthes–Plazotta.
In φ the functional Σ m_i (a e^{φ_i} − a σ_i φ_i)/τ + ½ μᵀ𝖪μ is strictly convex and coercive, so
the minimizer exists, is unique and positive: ρ = e^φ.  σ is floored at ρⁿ/4 (where ρ fell by more
than ~3× in one step, i.e. in far tails): there the true minimizer with a negative anchor is
e^{−10^33}, which underflows; ``anchor_floored`` counts the vertices per step.

Discrete energy law (constant steps; metric d_* of the step, K(ρ*)⁻¹-weighted, on the increments):
comparing the minimizer with the competitor ρ = ρⁿ and using d²(ρ^{n+1}, ρ^{n−1}) ≤ 2 d²(ρ^{n+1}, ρⁿ)
+ 2 d²(ρⁿ, ρ^{n−1}),

    F_h(ρ^{n+1}) + (1/2τ) d_*²(ρ^{n+1}, ρⁿ)  ≤  F_h(ρⁿ) + (1/4τ) d_*²(ρⁿ, ρ^{n−1}),

so the modified energy E^n = F_h(ρⁿ) + (1/4τ) d²(ρⁿ, ρ^{n−1}) does not increase (exactly for a fixed
metric; for the frozen, step-dependent metric up to the change of d between steps, O(τ³) per step).
F_h itself need not decrease at every step.  tests/unit/test_scheme2.py checks the inequality
step by step with the metric rebuilt in numpy.

Mass: 1ᵀ𝖠 = 0 and a − (1+ω) + ω²/(1+ω) = 0, so Σ m_i ρ_i is conserved exactly by the transport part
when ρⁿ and ρ^{n−1} have the same mass; the spherical constraint holds through η.

Start and restarts: a step with no usable previous state — the first, or one with ω > 2.4 (beyond
the zero-stability bound 1 + √2 of variable-step BDF2, e.g. after a step shortened to land on a
snapshot) — is a first-order step (a = 1, σ = ρⁿ, ρ* = ρⁿ): one O(τ²) local error each, a bounded
number of times, so the global order stays 2.

Newton: the Jacobian diag(a m∘e^φ/τ) + 𝖪 is SPD, so the first-order scheme's linear solvers, its
bordered multiplier step and its damping are reused as they are.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .scheme import FrozenMobilityScheme, StepResult

OMEGA_MAX = 2.4  # below 1 + √2


class BDF2Scheme(FrozenMobilityScheme):
    """Second-order step (module docstring); the caller passes the last accepted state with
    :meth:`set_history` before each step ((None, None) when there is none)."""

    name = "bdf2"
    order = 2
    # bound on the predictor's extrapolated change of log ρ per step (reference.py; the first-order
    # scheme uses 1): measured, ±1 cost BDF2 a 6th Newton iteration in early steps of hk-kl-gauss-1d
    # and wfr-kl-gauss-2d, ±4 keeps every step after the first at ≤ 5
    predictor_clip = 4.0

    def __init__(self, space, problem, log_pi, options):
        super().__init__(space, problem, log_pi, options)
        self._prev = None  # (φ^{n−1}, τ_{n−1})
        self.first_order_steps = 0

    def set_history(self, phi_prev, tau_prev) -> None:
        self._prev = None if phi_prev is None else (phi_prev, float(tau_prev))

    def step(self, phi_n, tau, t_new, phi_guess, eta_guess) -> StepResult:
        space, m = self.space, self.m
        t0 = time.perf_counter()
        rho_n = np.exp(phi_n)
        omega = tau / self._prev[1] if self._prev is not None else math.inf
        if omega <= OMEGA_MAX:
            phi_prev = self._prev[0]
            a = (1 + 2 * omega) / (1 + omega)
            sigma = ((1 + omega) ** 2 * rho_n - omega ** 2 * np.exp(phi_prev)) / (1 + 2 * omega)
            # Floor of the anchor where ρ fell by more than ~3× in the last step (σ ≤ ρⁿ/4; only in
            # tails where ρ ~ e^{-50}): a negative anchor is allowed by the theory, but the minimizer
            # there is e^{-10^33}, which underflows the next step's mobility to an exact zero
            floor = 0.25 * rho_n
            floored = int(np.count_nonzero(sigma < floor))
            sigma = np.maximum(sigma, floor)
            # clipped like the predictor (reference.py): where ρ ~ e^{-50} one step may change log ρ by
            # tens, and extrapolating that underflows the mobility (a zero row in the Newton matrix)
            rho_star = np.exp(phi_n + np.clip(omega * (phi_n - phi_prev), -1.0, 1.0))
        else:
            a, sigma, rho_star, floored = 1.0, rho_n, rho_n, 0
            self.first_order_steps += 1
        f = m * space.nodal(lambda x: self.source(t_new, x)) if self.source is not None else 0.0
        phi, eta, its, change, lin, extra = self._newton(phi_n, tau, phi_guess, eta_guess, a, sigma, rho_star, f)
        diag = self._diagnostics_bdf2(phi_n, rho_star, sigma, a, phi, eta, tau, f)
        diag["bdf_order"] = 2 if a != 1.0 else 1
        diag["anchor_floored"] = int(space.comm.allreduce(floored))
        return self._result(phi, eta, its, change, lin, diag, extra, t0)

    def _diagnostics_bdf2(self, phi_n, rho_star, sigma, a, phi, eta, tau, f) -> dict:
        """Energy, mass, the dissipation μ̃ᵀ𝖪μ̃ and the residual of the step equation paired with μ̃
        (a check that the step was solved: F-free, so it holds whatever F does)."""
        space, m = self.space, self.m
        rho = np.exp(phi)
        xi = self.xi(phi)
        mu = xi - eta
        Kmu = self._apply_K(xi, rho_star) - eta * self.beta * m * rho_star
        D = space.dot(mu, Kmu)
        pairing = space.dot(mu, a * m * (rho - sigma)) / tau
        work = space.dot(mu, f) if self.source is not None else 0.0
        res = pairing + D - work
        scale = abs(pairing) + abs(D) + abs(work)
        return {
            "energy": self.energy(phi),
            "mass": space.dot(m, rho),
            "dissipation": D,
            "identity_residual": res,
            "identity_residual_rel": abs(res) / scale if scale > 0 else 0.0,
            "eta": eta,
        }
