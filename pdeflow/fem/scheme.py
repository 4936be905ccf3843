"""Frozen-mobility minimizing movement for the flows of local energies (MATH §4.2), P1, lumped,
log variable.

One step from ρⁿ solves, for φ = log ρ^{n+1} at the vertices (ρ_i = e^{φ_i}, so positivity is
automatic) and the nodal first variation μ = ξ(ρ) = φ'(ρ/π) of the energy F = ∫ π φ(ρ/π)
(:mod:`pdeflow.energies`; for KL μ = φ − I_h log π),

    m∘(e^φ − ρⁿ)/τ + 𝖪(ρⁿ)(μ − η) = m∘f^{n+1},        𝖪(ρⁿ) = α 𝖠(ρⁿ) + β diag(m∘ρⁿ),

with 𝖠(ρⁿ)_ij = ∫ ρⁿ_h ∇ψ_i·∇ψ_j (exact with one-point quadrature for P1: ρⁿ_h enters through its
cell mean), m_i = ∫ψ_i the lumped masses and f a manufactured source (MATH §3.5, else 0).  In the
spherical case (β > 0) the multiplier η ∈ R enforces Σ m_i(ρ_i − ρⁿ_i) = 0; otherwise η = 0.
This is the Euler–Lagrange equation of the discrete minimizing movement
ρ^{n+1} = argmin F_h(ρ) + (1/2τ)⟨ρ−ρⁿ, 𝕂(ρⁿ)⁻¹(ρ−ρⁿ)⟩ written in the log variable.

Quadrature: the time derivative, the reaction term and the energy use the *lumped* (vertex)
rule.  Lumping is what makes the scheme exactly energy-consistent — pairing the equation with
μ − η gives the discrete identity

    F_h(ρ^{n+1}) + τ (μ−η)ᵀ𝖪(μ−η) + D_F(ρⁿ ‖ ρ^{n+1}) − τ (μ−η)ᵀ(m∘f) = F_h(ρⁿ),

(MATH §4.2 box; the last term only with a source) which holds to round-off and is recorded at
every step — and it keeps the nonlinearity e^φ pointwise, so the Newton matrix is
diag(m∘e^φ/τ) + 𝖪, SPD.  The transport form 𝖠 is assembled exactly (not lumped).

Other local energies (χ², reverse KL, the power entropies φ_p): the same equation with
μ_i = φ'(e^{φ_i}/π_i), F_h(ρ) = Σ m_i π_i φ(ρ_i/π_i) and the Bregman divergence of that F_h in the
identity (it holds for any energy: it is the pairing of the step equation with μ − η).  Newton is
done in the chemical potential: with D = diag(ρ ∂ξ/∂ρ) = diag(s φ''(s)) the Jacobian in φ is
diag(m∘e^φ/τ) + 𝖪D, and δμ = Dδφ turns it into the SPD system (diag(m∘e^φ/(τD)) + 𝖪)δμ = −R,
solved with the same linear solvers and bordered step; δφ = D⁻¹δμ (for KL D = 1: the KL step).
For energies other than KL the ξ-term is not linear in φ.  Where φ ↦ φ'(e^φ/π) is convex (χ², p ≥ 1)
Newton overshoots only increases, which are damped as for KL (below); where it is concave (p < 1,
reverse KL) it overshoots only decreases, which are bounded by NONKL_DECREASE_CAP per iteration,
and increases are taken as they are.  Measured (tests/unit/test_energies.py cases): ≤ 5 iterations
per step after the first few; up to 12 in the first steps of the reverse-KL FR flow, whose tails
rise from e^{-18} to the level of π in one step (Newton in φ gains about one unit of log ρ per
iteration there).

Newton: exact Jacobian; the spherical multiplier is handled by a bordered step (two solves with
the same matrix, MATH §4.2), not by an outer iteration on η.  Damping: increases δ > 0 of φ_i are
taken as log(1 + δ) (see ``step``); the predictor (reference.py) is clipped.  Together they keep
Newton at 3–5 iterations (up to 8 on a first step, which has no predictor) even where
ρ ~ e^{-90} (the corners of the 2-D cases) and one step changes log ρ by tens.  Convergence is
declared on the relative change of ρ, max_i ρ_i|δφ_i| /
max ρ, so that nodes with ρ ~ e^{-50} (irrelevant in every norm) do not hold it up.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import ufl
from petsc4py import PETSc

from ..agreement import inject
from ..problem import Problem
from . import compat
from .linalg import LinearSolver, choose
from .space import P1Space


# bound on a decrease of log ρ per Newton iteration for energies other than KL (module docstring)
NONKL_DECREASE_CAP = 8


class NewtonFailure(RuntimeError):
    """A step did not converge; the caller halves τ and retries."""


@dataclass
class NewtonOptions:
    tol: float = 1e-12  # on max_i ρ_i|δφ_i| / max ρ and on |δη|
    max_it: int = 30
    solver: str = "auto"
    ksp_rtol: float = 1e-12  # floor of the inexact-Newton forcing term
    ksp_rtol_max: float = 1e-2  # forcing term of the first iteration
    pc_lag: int = 10  # AMG set-up kept for at most this many steps
    iterative_cap: float = 5.0  # bound on |δφ_i| per iteration with an iterative linear solver
    stall_factor: float = 1e3  # stagnation (no halving of the change) below stall_factor·tol ends Newton
    stall_factor_iterative: float = 1e5  # the same with CG+GAMG, whose accuracy floor is ~1e-9 in places


@dataclass
class StepResult:
    phi: np.ndarray
    eta: float
    iterations: int
    linear_iterations: int
    diagnostics: dict = field(default_factory=dict)


class FrozenMobilityScheme:
    """Owns the forms, matrices and solver of the frozen-mobility step on one P1 space."""

    name = "frozen-mobility"

    def __init__(self, space: P1Space, problem: Problem, log_pi: np.ndarray, options: NewtonOptions):
        self.space = space
        self.problem = problem
        self.flow = problem.flow
        self.opts = options
        self.m = space.lumped_mass
        self.log_pi = log_pi
        self.pi = np.exp(log_pi)
        self.energy_functional = problem.energy_functional
        if not self.energy_functional.local:
            raise ValueError(
                f"energy {problem.energy}: the frozen-mobility scheme handles local energies only "
                f"(the flows of the MMD energy are solved on the vertices by pdeflow.fem.mmd_flows)")
        self.is_kl = self.energy_functional.name == "kl"
        # φ'(e^φ/π) is convex in φ for p ≥ 1 (χ²: the damping of increases is needed, as for KL) and
        # concave for p < 1, where Newton undershoots increases and damping them only slows it
        self._damp_increases = not (self.energy_functional.name == "power" and self.energy_functional.p < 1)
        self.source = problem.source
        self.multiplier = self.flow.has_multiplier
        self.alpha, self.beta = self.flow.alpha, self.flow.beta
        self.K = self.J = None
        if self.alpha > 0:
            self.rho_n_fn = space.function(name="rho_n")
            u, v = ufl.TrialFunction(space.V), ufl.TestFunction(space.V)
            # degree 1 integrates ρⁿ_h ∇ψ_i·∇ψ_j exactly for P1 (gradients are cell-constant)
            self.a_form = compat.form(
                self.alpha * self.rho_n_fn * ufl.inner(ufl.grad(u), ufl.grad(v)) * compat.dx(space.mesh, degree=1)
            )
            self.linear = LinearSolver(space.comm, choose(options.solver, space.dim), rtol=options.ksp_rtol)
            self._vecs = None
            self._pc_age = None  # steps since the AMG hierarchy was built (None: build now)
            self._pc_its0 = None  # CG iterations per solve right after the last build
        self.linear_solver_kind = self.linear.kind if self.alpha > 0 else "diagonal"

    # --- energy --------------------------------------------------------------------------
    def energy(self, phi: np.ndarray) -> float:
        """Lumped energy F_h(ρ) = Σ m_i π_i φ(ρ_i/π_i); for KL Σ m_i (ρ_i log(ρ_i/π_i) − ρ_i + π_i)."""
        rho = np.exp(phi)
        if self.is_kl:
            return self.space.dot(self.m, rho * (phi - self.log_pi) - rho + self.pi)
        return self.space.dot(self.m, self.energy_functional.density(rho, self.pi))

    def xi(self, phi: np.ndarray) -> np.ndarray:
        """The nodal first variation μ = φ'(ρ/π) at ρ = e^φ (KL: φ − log π)."""
        return self.energy_functional.xi_from_log(phi, self.log_pi)

    def bregman(self, phi_a: np.ndarray, phi_b: np.ndarray) -> float:
        """D_{F_h}(ρ_a‖ρ_b) = F_h(ρ_a) − F_h(ρ_b) − ⟨ξ(ρ_b), ρ_a − ρ_b⟩_m (≥ 0)."""
        ra, rb = np.exp(phi_a), np.exp(phi_b)
        if self.is_kl:
            return self.space.dot(self.m, ra * (phi_a - phi_b) - ra + rb)
        sa, sb = ra / self.pi, rb / self.pi
        e = self.energy_functional
        return self.space.dot(self.m, self.pi * (e.phi(sa) - e.phi(sb) - e.dphi(sb) * (sa - sb)))

    # --- operator pieces ------------------------------------------------------------------
    def _assemble(self, rho_n: np.ndarray) -> None:
        compat.set_owned(self.rho_n_fn, rho_n)
        self.K = compat.assemble_matrix(self.a_form, self.K)
        if self.beta > 0:
            d = self.K.createVecLeft()
            d.setArray(self.beta * self.m * rho_n)
            self.K.setDiagonal(d, addv=PETSc.InsertMode.ADD_VALUES)
            d.destroy()
        self.K_diag = self.K.getDiagonal().getArray().copy()
        if self.J is None:  # same sparsity as 𝖪; its values are set in _solve
            self.J = self.K.duplicate(copy=False)
        if self._vecs is None:
            self._vecs = [self.K.createVecLeft() for _ in range(3)]

    def _age_preconditioner(self, its_per_solve: float) -> None:
        """Keep the AMG hierarchy across time steps (the scaled Newton matrix has unit diagonal and
        changes by O(τ) per step) until it is ``pc_lag`` steps old or CG needs 1.5× the iterations
        it needed right after it was built."""
        if self._pc_age is None:
            self._pc_age, self._pc_its0 = 0, its_per_solve
        else:
            self._pc_age += 1
        if self._pc_age >= self.opts.pc_lag or its_per_solve > 1.5 * max(self._pc_its0, 1.0):
            self._pc_age = None

    def _apply_K(self, x: np.ndarray, rho_n: np.ndarray) -> np.ndarray:
        if self.alpha == 0:
            return self.beta * self.m * rho_n * x
        vin, vout, _ = self._vecs
        vin.setArray(x)
        self.K.mult(vin, vout)
        return vout.getArray().copy()

    def _solve(self, diag: np.ndarray, rhs_list, first: bool, rtol: float):
        """Solve (diag(diag) + 𝖪) y = rhs for each rhs."""
        if self.alpha == 0:
            full = diag + self.beta * self.m * self._rho_n
            return [r / full for r in rhs_list]
        # Symmetric Jacobi scaling S J S, S = diag(J)^{-1/2}: where ρ ~ e^{-50} the rows of J are
        # ~1e-22 and LU would take them for zero pivots (and AMG thresholds would ignore them).
        vd, vb, vx = self._vecs
        full = self.K_diag + diag
        s = 1.0 / np.sqrt(full)
        self.K.copy(self.J, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        vd.setArray(full)
        self.J.setDiagonal(vd, addv=PETSc.InsertMode.INSERT_VALUES)
        vd.setArray(s)
        self.J.diagonalScale(vd, vd)
        self.linear.set_operator(self.J, reuse_preconditioner=not (first and self._pc_age is None))
        self.linear.set_rtol(rtol)
        out = []
        for r in rhs_list:
            vb.setArray(s * r)
            vx.set(0.0)
            self.linear.solve(vb, vx)
            out.append(s * vx.getArray())
        return out

    # --- one step -------------------------------------------------------------------------
    def step(self, phi_n: np.ndarray, tau: float, t_new: float, phi_guess: np.ndarray, eta_guess: float) -> StepResult:
        t0 = time.perf_counter()
        rho_n = np.exp(phi_n)
        f = self.m * self.space.nodal(lambda x: self.source(t_new, x)) if self.source is not None else 0.0
        phi, eta, its, change, lin, extra = self._newton(phi_n, tau, phi_guess, eta_guess, 1.0, rho_n, rho_n, f)
        diag = self._diagnostics(phi_n, rho_n, phi, eta, tau, f)
        return self._result(phi, eta, its, change, lin, diag, extra, t0)

    def _newton(self, phi_n, tau, phi_guess, eta_guess, a, sigma, rho_mob, f):
        """Newton for φ (and η) in  a m∘(e^φ − σ)/τ + 𝖪(ρ_mob)(φ − ℓ − η) = f: the frozen-mobility step
        (a = 1, σ = ρ_mob = ρⁿ) and the BDF2 step of scheme2.py (their a, σ, ρ*).  Returns (φ, η,
        iterations, last change, linear iterations, extra diagnostics); NewtonFailure if not converged."""
        space, m, lp = self.space, self.m, self.log_pi
        self._rho_n = rho_mob  # the frozen mobility (read by _apply_K / _solve when α = 0)
        if self.alpha > 0:
            self._assemble(rho_mob)
            lin0, rebuilds0 = self.linear.iterations, self.linear.rebuilds
        b = self.beta * m * rho_mob  # ∂R/∂η = −b  (𝖪1 = b: 𝖠1 = 0)
        mass_n = space.dot(m, np.exp(phi_n))
        phi = phi_guess.copy()
        eta = eta_guess if self.multiplier else 0.0
        converged = False
        its = 0
        change = prev_change = None
        kl = self.is_kl
        for its in range(1, self.opts.max_it + 1):
            e = np.exp(phi)
            mu = phi - lp if kl else self.xi(phi)
            # D = ρ∂ξ/∂ρ: the Newton step is solved for δμ = Dδφ (module docstring); KL: D = 1
            Dg = 1.0 if kl else self.energy_functional.rho_dxi(e, self.pi)
            R = a * m * (e - sigma) / tau + self._apply_K(mu, rho_mob) - eta * b - f
            rhs = [-R, b] if self.multiplier else [-R]
            # Inexact Newton: the linear tolerance follows the size of the last update, so early
            # iterations are cheap and the last ones are solved to ~1e-12 (quadratic convergence kept)
            rtol = self.opts.ksp_rtol_max if change is None else min(self.opts.ksp_rtol_max, max(self.opts.ksp_rtol, change))
            inject("newton")  # test hook: a one-rank failure between two solver collectives
            try:
                ys = self._solve(a * m * e / (tau * Dg), rhs, first=(its == 1), rtol=rtol)
            except FloatingPointError:
                self._pc_age = None
                raise
            dphi, deta = ys[0], 0.0
            if self.multiplier:
                w = m * e / Dg  # δ(Σ m ρ) = Σ m ρ δφ = Σ (m ρ/D) δμ
                # with a source the constraint is (ρ − ρⁿ, 1)_L = τ (f, 1)_L (MATH §3.5)
                G = space.dot(m, e) - mass_n - (tau * space.sum(f) if self.source is not None else 0.0)
                deta = -(G + space.dot(w, ys[0])) / space.dot(w, ys[1])
                dphi = ys[0] + deta * ys[1]
            if not kl:
                dphi = dphi / Dg
                if not self._damp_increases:  # concave ξ(e^φ): decreases overshoot
                    dphi = np.maximum(dphi, -NONKL_DECREASE_CAP)
            size = max(space.max_abs(dphi), abs(deta))
            if not math.isfinite(size):
                raise NewtonFailure("non-finite Newton update")
            # change of ρ relative to max ρ: nodes where ρ ~ e^{-50} do not hold up convergence
            change = max(space.max_abs(e * dphi) / space.max_abs(e), abs(deta))
            # Damping where ρ is tiny: an increase δ of log ρ is taken as log(1 + δ), the Newton
            # step for ρ itself.  The residual is convex and increasing in each φ_i, so Newton
            # steps that lower φ_i never overshoot, while raising steps do (by e^δ), after which
            # plain Newton would need one iteration per unit of overshoot.
            if self.alpha > 0 and self.linear.kind != "direct":
                # An iterative solve is accurate in a global norm only: at nodes where ρ is ~e^{-50}
                # below its maximum the update is round-off noise amplified by 1/√J_ii.  Bound it.
                dphi = np.clip(dphi, -self.opts.iterative_cap, self.opts.iterative_cap)
            if kl or self._damp_increases:
                phi = phi + np.where(dphi > 0, np.log1p(np.maximum(dphi, 0.0)), dphi)
            else:
                phi = phi + dphi
            eta = eta + deta
            # Converged when this update, or the error left after it, is below tol.  With exact
            # linear solves the error left is estimated from the contraction (Newton:
            # c_{k+1} ≈ c_k²/c_{k-1}), which saves the last solve, one that would only confirm.
            # Not with CG: its tolerance bounds a 2-norm residual, not the max-norm change of ρ, and
            # on 2 ranks of an L-shape (PETSc 3.22) stopping on that estimate left errors of 4e-10
            # relative; there the last solve must show the change.  Also stop when stalled at the
            # accuracy floor (no contraction within 1e3·tol; with CG within 1e5·tol: its floor
            # reaches ~5e-9 in some steps, depending on GAMG's random eigenvalue estimates).
            remaining = math.inf
            stalled = False
            exact_solves = self.alpha == 0 or self.linear.kind == "direct"
            if prev_change is not None and prev_change > 0:
                if exact_solves:
                    remaining = change * change / prev_change
                window = self.opts.stall_factor if exact_solves else self.opts.stall_factor_iterative
                stalled = change > 0.5 * prev_change and change <= window * self.opts.tol
            if change <= self.opts.tol or remaining <= self.opts.tol or stalled:
                converged = True
                break
            prev_change = change
        if not converged:
            if self.alpha > 0:
                self._pc_age = None  # the retry with τ/2 builds a fresh AMG hierarchy
            raise NewtonFailure(
                f"Newton did not converge in {self.opts.max_it} iterations "
                f"(last relative change of rho {change:.2e}, max |dphi| {size:.2e})"
            )
        lin = (self.linear.iterations - lin0) if self.alpha > 0 else its
        extra = {}
        if self.alpha > 0:
            self._age_preconditioner(lin / (its * len(rhs)))
            if self.linear.kind != "direct":
                extra["pc_rebuilds"] = self.linear.rebuilds - rebuilds0  # fresh AMG after a failed CG solve
        return phi, eta, its, change, lin, extra

    @staticmethod
    def _result(phi, eta, its, change, lin, diag, extra, t0) -> StepResult:
        diag["newton_iterations"] = its
        diag["newton_change"] = change
        diag["linear_iterations"] = lin
        diag.update(extra)
        diag["wall"] = time.perf_counter() - t0
        return StepResult(phi, eta, its, lin, diag)

    def _diagnostics(self, phi_n, rho_n, phi, eta, tau, f) -> dict:
        space, m = self.space, self.m
        rho = np.exp(phi)
        xi = self.xi(phi)
        mu = xi - eta
        Kmu = self._apply_K(xi, rho_n) - eta * self.beta * m * rho_n
        D = space.dot(mu, Kmu)
        F_n, F_new = self.energy(phi_n), self.energy(phi)
        breg = self.bregman(phi_n, phi)
        work = space.dot(mu, f) if self.source is not None else 0.0
        dmass = space.dot(m, rho - rho_n)
        # pairing the step equation with μ − η: see the module docstring
        # η·Σm(ρ−ρⁿ) vanishes by the constraint; kept so that the identity does not depend on how
        # accurately the constraint was met
        res = F_new - F_n + breg - eta * dmass + tau * D - tau * work
        scale = abs(F_n) + abs(F_new) + tau * abs(D) + abs(breg) + tau * abs(work)
        return {
            "energy": F_new,
            "mass": space.dot(m, rho),
            "dissipation": D,
            "bregman": breg,
            "identity_residual": res,
            "identity_residual_rel": abs(res) / scale if scale > 0 else 0.0,
            "eta": eta,
        }

    def destroy(self) -> None:
        for obj in (self.K, self.J):
            if obj is not None:
                obj.destroy()
        if self.alpha > 0:
            for v in self._vecs or ():
                v.destroy()
            self.linear.destroy()
