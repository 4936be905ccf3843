"""`solve_reference`: time loop of the reference solver (schemes of MATH §4.1–§4.2).

The loop lands exactly on the snapshot times (the last step before a snapshot is shortened),
predicts each step by linear extrapolation of φ = log ρ (clipped to ±1) and of the multiplier η
from the two previous steps, and
when a step fails (Newton not converged, non-finite values, linear solver breakdown) it is
rejected and replaced by two steps of τ/2, recursively, down to ``tau_min``; below that a
:class:`SolverError` is raised on all ranks (never a NaN result).  Every rejection is recorded.

Initial data: φ0 = I_h log ρ0 shifted by a constant so that the lumped mass Σ m_i e^{φ0_i} equals
∫_Ω ρ0 exactly (computed by high-order quadrature); otherwise an O(h²) mass defect would dominate
every error.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from mpi4py import MPI

from ..agreement import abort_on_unexpected, agree, fault, inject, stage
from ..problem import Problem, initial_density, integrate
from . import compat
from .hellinger import HellingerJKOScheme
from .scheme import FrozenMobilityScheme, NewtonFailure, NewtonOptions
from .scheme2 import BDF2Scheme
from .space import P1Space

SCHEMES = {"frozen-mobility": FrozenMobilityScheme, "hellinger-jko": HellingerJKOScheme,
           "bdf2": BDF2Scheme}


class SolverError(RuntimeError):
    """The time step fell below tau_min: the reference solve is abandoned (on all ranks)."""


@dataclass
class Trajectory:
    """Result of a reference solve.  ``x`` and ``rho`` are gathered on rank 0 (None elsewhere)."""

    problem: Problem
    params: dict
    times: np.ndarray
    x: Optional[np.ndarray]
    rho: Optional[np.ndarray]
    steps: list
    initial: dict
    errors: Optional[list]
    rejected: list
    wall_time: float
    mpi_size: int
    versions: dict
    owned_snapshots: list = field(repr=False, default_factory=list)
    space: object = field(repr=False, default=None)
    # with keep_steps=True: the time and the gathered nodal density after every accepted step,
    # t = 0 included (rank 0; None elsewhere or without keep_steps) — what an exported reference
    # interpolates in time
    step_times: Optional[np.ndarray] = None
    step_rho: Optional[np.ndarray] = None
    # {"method": how it was obtained, "snapshots": [{t, L1, L1_time, L1_space, mmd}], ...} — set by
    # pdeflow.fem.certified (solve --tol, or the companion solves of a plain solve); in summary.json
    error_estimate: Optional[dict] = None

    def summary(self) -> dict:
        """Everything needed to trace a number back to how it was made (JSON-able)."""
        steps = self.steps
        newton = [s["newton_iterations"] for s in steps]
        stats = {
            "n_steps": len(steps),
            "n_rejected": len(self.rejected),
            "newton_mean": float(np.mean(newton)) if newton else 0.0,
            "newton_max": int(max(newton)) if newton else 0,
            "energy_increase_max": float(
                max([0.0] + [b["energy"] - a["energy"] for a, b in zip([self.initial] + steps[:-1], steps)])
            ),
        }
        if steps and "identity_residual_rel" in steps[0]:
            stats["identity_residual_rel_max"] = float(max(s["identity_residual_rel"] for s in steps))
        if self.problem.flow.conserves_mass:
            m0 = self.initial["mass"]
            stats["mass_drift_rel_max"] = float(max(abs(s["mass"] - m0) / m0 for s in steps))
        return {
            "case": self.problem.name,
            "problem": self.problem.describe(),
            "parameters": self.params,
            "versions": self.versions,
            "mpi_size": self.mpi_size,
            "wall_time": self.wall_time,
            "statistics": stats,
            "snapshot_times": [float(t) for t in self.times],
            "errors": self.errors,
            "error_estimate": self.error_estimate,
            "initial": self.initial,
            "steps": steps,
            "rejected_steps": self.rejected,
        }


def _progress(total: float, comm):
    """A tqdm bar on rank 0 when stderr is a terminal; a no-op otherwise."""
    if comm.rank == 0 and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="t", bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
        except ImportError:  # pragma: no cover - tqdm is a dependency
            pass
    return None


def solve_reference(
    problem: Problem,
    n: int = 64,
    tau: float = 0.01,
    comm=MPI.COMM_WORLD,
    scheme: str = "frozen-mobility",
    solver: str = "auto",
    newton_tol: float = 1e-12,
    newton_max_it: int = 30,
    tau_min: Optional[float] = None,
    exact="auto",
    progress: bool = True,
    keep_steps: bool = False,
) -> Trajectory:
    """Solve the KL flow of ``problem`` on an n-per-direction box mesh with time step τ.

    ``exact``: an ExactSolution to measure errors against at each snapshot; ``"auto"`` (default)
    takes :func:`pdeflow.exact.exact_solution` of the problem; None measures no errors.
    """
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive, got {tau!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
    tau_min = tau / 2**12 if tau_min is None else tau_min
    if isinstance(exact, str) and exact == "auto":
        from ..exact import exact_solution

        exact = exact_solution(problem)
    wall0 = time.perf_counter()
    # the set-up (mesh, forms and their JIT, solver objects) is agreed on before the first step
    with stage("setup", comm):
        space = P1Space(problem.domain, int(n), comm)
        log_pi = space.nodal(problem.target.log_density)
        rho0 = initial_density(problem)
        phi = space.nodal(rho0.log_density)
        mass0 = integrate(rho0, problem.domain)
        phi += math.log(mass0 / space.integral(np.exp(phi)))
        options = NewtonOptions(tol=newton_tol, max_it=newton_max_it, solver=solver)
        stepper = SCHEMES[scheme](space, problem, log_pi, options)
        norms = None
        if exact is not None:
            from .errors import ErrorNorms

            norms = ErrorNorms(space)
    initial = {"t": 0.0, "energy": stepper.energy(phi), "mass": space.integral(np.exp(phi))}

    steps, rejected, errors = [], [], []
    owned = [np.exp(phi)]
    kept = [owned[0]] if keep_steps else None
    # A mass-conserving flow on the bounded Ω keeps ∫_Ω ρ0 exactly; a Gaussian reference on R^d
    # would instead report the tail mass outside Ω (3e-7 on [-5,5]^2) as a mass error.
    def exact_mass(t):
        return mass0 if problem.flow.conserves_mass else exact.mass(t)

    if norms is not None:
        errors.append({"t": 0.0, **norms(owned[0], lambda x: exact.density(0.0, x), exact_mass(0.0))})
    history = {"phi_prev": None, "eta_prev": 0.0, "tau_prev": None, "accepted_prev": (None, None)}
    t = 0.0
    bar = _progress(problem.T, comm) if progress else None

    def advance(phi, eta, t, dt):
        """One step of length dt from t; a failed step is halved until it succeeds or would fall below
        tau_min.  Iterative (a stack of pending sub-steps), so a tiny tau_min cannot exhaust the
        recursion limit."""
        pending = [dt]
        while pending:
            h = pending.pop()
            eta_guess = eta
            if history["phi_prev"] is not None:
                ratio = h / history["tau_prev"]
                # clipped: where ρ is tiny one step may change log ρ by tens, and extrapolating that
                # would start Newton far from the solution
                clip = getattr(stepper, "predictor_clip", 1.0)
                guess = phi + np.clip(ratio * (phi - history["phi_prev"]), -clip, clip)
                eta_guess = eta + ratio * (eta - history["eta_prev"])
            else:
                guess = phi
            injected = fault("step")
            if injected == "nan":  # test hook: this rank's values go bad in the middle of a solve
                guess = np.full_like(guess, np.nan)
            failure = error = None
            try:
                # inside the step peers may sit in a PETSc collective: an unexpected exception there
                # cannot be agreed on and aborts the job; a Newton failure or a diverged Krylov
                # solve is decided from global reductions, hence raised on every rank
                with abort_on_unexpected(comm, (NewtonFailure, FloatingPointError), "inside a time step"):
                    if hasattr(stepper, "set_history"):  # second order: the last accepted state, kept
                        stepper.set_history(*history["accepted_prev"])  # through rejections
                    res = stepper.step(phi, h, t + h, guess, eta_guess)
                inject("step", injected)
            except (NewtonFailure, FloatingPointError) as exc:
                failure = exc
            except Exception as exc:  # noqa: BLE001 — agreed on below, then raised on every rank
                error = exc
            # one reduction per attempt: 2 = an error somewhere (agreed, raised on every rank),
            # 1 = a rejected step somewhere (rejected on every rank), 0 = accepted
            outcome = comm.allreduce(2 if error is not None else (1 if failure is not None else 0), op=MPI.MAX)
            if outcome == 2:
                agree(comm, error, "step")
            if outcome == 1 and failure is None:
                failure = NewtonFailure("the step failed on another rank")
            if failure is not None:
                exc = failure
                rejected.append({"t": t, "tau": h, "reason": str(exc)})
                if h / 2 < tau_min:
                    raise SolverError(
                        f"time step fell below tau_min = {tau_min:.3g} at t = {t:.6g} ({exc}); no result written"
                    ) from None
                history["phi_prev"] = None  # the extrapolation that failed is not trusted any more
                pending.extend([h / 2, h / 2])
                continue
            history["phi_prev"], history["eta_prev"], history["tau_prev"] = phi, eta, h
            history["accepted_prev"] = (phi, h)
            steps.append({"t": t + h, "tau": h, **res.diagnostics})
            if keep_steps:
                kept.append(np.exp(res.phi))
            if bar is not None:
                bar.update(h)
            phi, eta, t = res.phi, res.eta, t + h
        return phi, eta

    eta = 0.0
    try:
        for t_snap in problem.snapshots:
            while t_snap - t > 1e-12 * problem.T:
                dt = min(tau, t_snap - t)
                if t_snap - (t + dt) < 1e-9 * tau:  # avoid a sliver step before the snapshot
                    dt = t_snap - t
                phi, eta = advance(phi, eta, t, dt)
                t = t_snap if abs(t + dt - t_snap) < 1e-12 * problem.T else t + dt
            rho = np.exp(phi)
            owned.append(rho)
            if norms is not None:
                errors.append({"t": t_snap, **norms(rho, lambda x, s=t_snap: exact.density(s, x), exact_mass(t_snap))})
    finally:
        if bar is not None:
            bar.close()
        stepper.destroy()

    times = np.array(problem.snapshot_times())
    gathered = [space.gather(r) for r in owned]
    rho_all = np.array(gathered) if comm.rank == 0 else None
    n_dof = space.n_global
    params = {
        "n": int(n),
        "h": space.h,
        "tau": float(tau),
        "tau_min": float(tau_min),
        "scheme": scheme,
        "solver": stepper.linear_solver_kind,
        "newton_tol": newton_tol,
        "newton_max_it": newton_max_it,
        "n_dofs": int(n_dof),
        "dim": problem.dim,
    }
    step_times = step_rho = None
    if keep_steps:
        gathered_steps = [space.gather(r) for r in kept]
        if comm.rank == 0:
            step_times = np.array([0.0] + [s["t"] for s in steps])
            step_rho = np.array(gathered_steps)
    wall = comm.allreduce(time.perf_counter() - wall0, op=MPI.MAX)
    return Trajectory(
        problem=problem,
        params=params,
        times=times,
        x=space.gathered_coords,
        rho=rho_all,
        steps=steps,
        initial=initial,
        errors=errors if norms is not None else None,
        rejected=rejected,
        wall_time=wall,
        mpi_size=comm.size,
        versions=compat.versions(),
        owned_snapshots=owned,
        space=space,
        step_times=step_times,
        step_rho=step_rho,
    )
