"""Finite-volume method of lines for the KL flows (MATH §2.1), time integration by PETSc TS.

Equation (the one the FE reference solves, MATH §2.1/§4.2), in the variable ρ:

    ∂_t ρ = α ∇·(π ∇(ρ/π)) − β ρ (log(ρ/π) − η) + f,      no flux  π ∂_n(ρ/π) = 0 on ∂Ω,

with η = 0 on M+ (FR, HK, and W where β = 0) and, for the spherical flows with β > 0,
η = ⟨log(ρ/π)⟩_ρ = ∫ρ log(ρ/π) / ∫ρ, which keeps ∫ρ fixed (MATH §2.1 "spherical");
f is a manufactured source (MATH §3.5, else 0).  Note α∇·(ρ∇log(ρ/π)) = α∇·(π∇(ρ/π)): the
KL transport part is linear in ρ.

Semi-discretization on control volumes K (cells of a box, or dual cells of a gmsh mesh; see
:mod:`pdeflow.fv.mesh`), unknowns ρ_K, volumes |K|, u_K = ρ_K/π_K with π_K = π(x_K):

    |K| dρ_K/dt = −Σ_L F_KL − β |K| (s(ρ_K) − η ρ_K) + |K| f_K,
    F_KL = α w_KL √(π_K π_L) (u_K − u_L)                   (square-root approximation, SQRA),
    s(ρ) = ρ log(ρ/π) (0 for ρ ≤ 0),   η = Σ_K |K| s(ρ_K) / Σ_K |K| ρ_K   (spherical, β > 0).

* Mass: F_KL = −F_LK, so the transport part conserves Σ|K|ρ_K exactly, and the spherical
  reaction sums to zero by the choice of η — for every ρ, so also for the BDF/ARKIMEX stages.
* Positivity: the transport matrix is an M-matrix (off-diagonals α w √(π_K/π_L)/|K| ≥ 0), and the
  reaction −βρ(log(ρ/π)−η) vanishes at ρ = 0: the semi-discrete flow keeps ρ > 0.
* Energy: F_h(ρ) = Σ|K|(ρ log(ρ/π) − ρ + π) decays along the semi-discrete flow:
  dF_h/dt = −α Σ_KL w √(π_Kπ_L)(u_K−u_L)(log u_K − log u_L) − β Σ_K |K| ρ_K (ξ_K − η)² ≤ 0.
* Consistency: on uniform boxes the two-point flux is second order for the cell-centre values;
  on the vertex-centred dual of a Delaunay mesh it is the P1-exact flux of the box method.

Time integration: PETSc TS (default TSBDF of order 2 with TSADAPTBASIC error control, rtol = tol,
atol = tol·max ρ0), IFunction G = ρ̇ − f(ρ) and its exact IJacobian shift·I − ∂f/∂ρ: the
constant transport matrix (AIJ, assembled once) plus the reaction diagonal; the spherical
multiplier adds the rank-one term −(βρ)(∂η/∂ρ)ᵀ, ∂η/∂ρ_L = |L|(s'(ρ_L) − η)/Σ|K|ρ_K, which is
kept out of the matrix and applied exactly by a Sherman–Morrison preconditioner around an LU
factorization (PETSc LU serially, MUMPS in parallel) with KSPPREONLY, so every Newton step is exact
and the linear invariant Σ|K|ρ_K is kept to round-off.  The -ts_*, -snes_*, -ksp_* options of the
PETSc options database apply (``petsc_options``).  Under MPI the unknowns are distributed in
contiguous ownership ranges of the lexicographic order; every rank holds the (small) geometry,
ghost values come by a VecScatter, so the numbers do not depend on the number of ranks beyond
round-off.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from ..problem import Problem, initial_density, integrate
from .mesh import FVMesh, build

RHO_FLOOR = 1e-300


class FVSolverError(RuntimeError):
    """The time integration failed (TS diverged); raised on all ranks."""


def _s(rho, log_pi):
    """s(ρ) = ρ log(ρ/π) for ρ > 0, 0 otherwise; and s'(ρ) = log(ρ/π) + 1 at max(ρ, floor)."""
    pos = np.maximum(rho, RHO_FLOOR)
    xi = np.log(pos) - log_pi
    return np.where(rho > 0, rho * xi, 0.0), xi + 1.0, xi


class _ShermanMorrison:
    """PCPYTHON context: y = (A − u vᵀ)⁻¹ x with an LU factorization of A (the AIJ Jacobian)."""

    def __init__(self, owner):
        self.owner = owner
        self.inner = None
        self.z = None
        self.denom = 1.0

    def setUp(self, pc):
        A, _ = pc.getOperators()
        if self.inner is None:
            self.inner = PETSc.KSP().create(A.getComm())
            self.inner.setType("preonly")
            ipc = self.inner.getPC()
            ipc.setType("lu")
            if A.getComm().getSize() > 1:
                ipc.setFactorSolverType("mumps")
            self.inner.setOptionsPrefix("fv_inner_")
            self.inner.setFromOptions()
        self.inner.setOperators(A)
        self.inner.setUp()
        own = self.owner
        if own.rank_one:
            if self.z is None:
                self.z = A.createVecRight()
            self.inner.solve(own.u_vec, self.z)
            self.denom = 1.0 - own.v_vec.dot(self.z)

    def apply(self, pc, x, y):
        self.inner.solve(x, y)
        own = self.owner
        if own.rank_one:
            y.axpy(own.v_vec.dot(y) / self.denom, self.z)

    def destroy(self, pc=None):
        for obj in (self.inner, self.z):
            if obj is not None:
                obj.destroy()
        self.inner = self.z = None


@dataclass
class FVTrajectory:
    """Result of a finite-volume solve (plain numpy).  ``x``, ``rho`` and ``m`` are gathered on
    rank 0 in the lexicographic order of the unknowns (None on other ranks)."""

    problem: Problem
    params: dict
    times: np.ndarray
    x: Optional[np.ndarray]
    rho: Optional[np.ndarray]
    m: Optional[np.ndarray]
    masses: np.ndarray
    energies: np.ndarray
    steps: list
    initial: dict
    errors: Optional[list]
    statistics: dict
    wall_time: float
    mpi_size: int
    versions: dict
    error_estimate: Optional[list] = None
    mesh: Optional[FVMesh] = field(default=None, repr=False)

    def summary(self) -> dict:
        return {
            "case": self.problem.name,
            "discretization": "fv",
            "problem": self.problem.describe(),
            "parameters": self.params,
            "versions": self.versions,
            "mpi_size": self.mpi_size,
            "wall_time": self.wall_time,
            "statistics": self.statistics,
            "snapshot_times": [float(t) for t in self.times],
            "masses": [float(v) for v in self.masses],
            "energies": [float(v) for v in self.energies],
            "errors": self.errors,
            "error_estimate": self.error_estimate,
            "initial": self.initial,
            "steps": self.steps,
        }


def versions() -> dict:
    import scipy

    return {
        "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
        "petsc4py": __import__("petsc4py").__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "mpi": MPI.Get_library_version().replace("\x00", "").splitlines()[0].strip(),
    }


class FVSystem:
    """The semi-discrete system on one mesh, distributed over ``comm``; owns the PETSc objects."""

    def __init__(self, problem: Problem, mesh: FVMesh, comm):
        self.problem, self.mesh, self.comm = problem, mesh, comm
        flow = problem.flow
        self.alpha, self.beta = flow.alpha, flow.beta
        self.spherical = flow.has_multiplier
        N = mesh.size
        self.N = N
        self.vec = PETSc.Vec().createMPI((PETSc.DECIDE, N), comm=comm)
        self.lo, self.hi = self.vec.getOwnershipRange()
        lo, hi = self.lo, self.hi
        E, w = mesh.edges, mesh.w
        touch = ((E[:, 0] >= lo) & (E[:, 0] < hi)) | ((E[:, 1] >= lo) & (E[:, 1] < hi))
        self.E = E[touch]
        self.wE = w[touch]
        need = np.unique(np.concatenate([np.arange(lo, hi), self.E.ravel()]))
        self.need = need
        self.loc = {"owned": np.searchsorted(need, np.arange(lo, hi))}
        self.eK = np.searchsorted(need, self.E[:, 0])
        self.eL = np.searchsorted(need, self.E[:, 1])
        self.gvec = PETSc.Vec().createSeq(need.size, comm=PETSc.COMM_SELF)
        iset = PETSc.IS().createGeneral(need.astype(PETSc.IntType), comm=PETSc.COMM_SELF)
        self.scatter = PETSc.Scatter().create(self.vec, iset, self.gvec, None)
        iset.destroy()
        x_need = mesh.x[need]
        self.log_pi_need = np.asarray(problem.target.log_density(x_need.T), dtype=float)
        self.sqrt_pi_need = np.exp(0.5 * self.log_pi_need)
        own = self.loc["owned"]
        self.log_pi = self.log_pi_need[own]
        self.pi = np.exp(self.log_pi)
        self.vol = mesh.vol[lo:hi]
        self.vol_need = mesh.vol[need]
        self.x_own = mesh.x[lo:hi]
        # flux coefficients: F_KL = c_KL (u_K − u_L), c = α w √(π_K π_L)
        self.c = self.alpha * self.wE * self.sqrt_pi_need[self.eK] * self.sqrt_pi_need[self.eL]
        self.source = problem.source
        self.T = self._transport_matrix()
        self.J = self.T.duplicate(copy=True)
        self.u_vec = self.vec.duplicate()
        self.v_vec = self.vec.duplicate()
        self.rank_one = self.spherical
        self.eta = 0.0
        self.n_rhs = 0

    # --- pieces --------------------------------------------------------------------------
    def _transport_matrix(self):
        """d/dρ of the transport part of f (constant): row K = −(1/|K|) Σ_L c_KL (e_K/π_K − e_L/π_L)."""
        lo, hi = self.lo, self.hi
        N = self.N
        nnz_d = np.ones(hi - lo, dtype=PETSc.IntType)
        nnz_o = np.zeros(hi - lo, dtype=PETSc.IntType)
        for a, b in ((0, 1), (1, 0)):
            rows = self.E[:, a]
            cols = self.E[:, b]
            m = (rows >= lo) & (rows < hi)
            inside = (cols[m] >= lo) & (cols[m] < hi)
            np.add.at(nnz_d, rows[m][inside] - lo, 1)
            np.add.at(nnz_o, rows[m][~inside] - lo, 1)
        A = PETSc.Mat().createAIJ(((hi - lo, N), (hi - lo, N)), nnz=(nnz_d, nnz_o), comm=self.comm)
        A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        spi = self.sqrt_pi_need
        diag = np.zeros(hi - lo)
        K, L = self.E[:, 0], self.E[:, 1]
        cK = self.c / (spi[self.eK] ** 2)  # c/π_K
        cL = self.c / (spi[self.eL] ** 2)  # c/π_L
        rows, cols, vals = [], [], []
        mK = (K >= lo) & (K < hi)
        mL = (L >= lo) & (L < hi)
        # row K: −(1/|K|)(c/π_K ρ_K − c/π_L ρ_L)
        np.add.at(diag, K[mK] - lo, -cK[mK] / self.mesh.vol[K[mK]])
        rows.append(K[mK]); cols.append(L[mK]); vals.append(cL[mK] / self.mesh.vol[K[mK]])
        # row L: +(1/|L|)(c/π_K ρ_K − c/π_L ρ_L)
        np.add.at(diag, L[mL] - lo, -cL[mL] / self.mesh.vol[L[mL]])
        rows.append(L[mL]); cols.append(K[mL]); vals.append(cK[mL] / self.mesh.vol[L[mL]])
        r = np.concatenate(rows + [np.arange(lo, hi)])
        cc = np.concatenate(cols + [np.arange(lo, hi)])
        v = np.concatenate(vals + [diag])
        order = np.lexsort((cc, r))
        r, cc, v = r[order], cc[order], v[order]
        # CSR for the owned rows
        counts = np.bincount(r - lo, minlength=hi - lo)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(PETSc.IntType)
        A.setValuesCSR(indptr, cc.astype(PETSc.IntType), v)
        A.assemble()
        return A

    def local(self, X) -> np.ndarray:
        """Owned + ghost values of the global vector X, in the order of ``need``."""
        self.scatter.scatter(X, self.gvec, addv=PETSc.InsertMode.INSERT_VALUES, mode=PETSc.ScatterMode.FORWARD)
        return self.gvec.getArray(readonly=True).copy()

    def multiplier(self, rho_own) -> tuple:
        s, ds, _ = _s(rho_own, self.log_pi)
        S = self.comm.allreduce(float(np.dot(self.vol, s)), op=MPI.SUM)
        M = self.comm.allreduce(float(np.dot(self.vol, rho_own)), op=MPI.SUM)
        return S / M, s, ds, M

    def rhs(self, t: float, rho_need: np.ndarray) -> np.ndarray:
        """f(ρ) on the owned unknowns."""
        self.n_rhs += 1
        lo, hi = self.lo, self.hi
        own = self.loc["owned"]
        rho = rho_need[own]
        out = np.zeros(hi - lo)
        if self.alpha > 0:
            u = rho_need / (self.sqrt_pi_need**2)
            F = self.c * (u[self.eK] - u[self.eL])
            K, L = self.E[:, 0], self.E[:, 1]
            mK = (K >= lo) & (K < hi)
            mL = (L >= lo) & (L < hi)
            acc = np.zeros(hi - lo)
            # contributions in the global order of the edges: the same sums serially and in parallel
            idx = np.concatenate([K[mK] - lo, L[mL] - lo])
            val = np.concatenate([-F[mK], F[mL]])
            perm = np.argsort(np.concatenate([np.nonzero(mK)[0] * 2, np.nonzero(mL)[0] * 2 + 1]), kind="stable")
            np.add.at(acc, idx[perm], val[perm])
            out += acc / self.vol
        if self.beta > 0:
            if self.spherical:
                eta, s, _, _ = self.multiplier(rho)
                self.eta = eta
            else:
                eta = 0.0
                s = _s(rho, self.log_pi)[0]
            out += -self.beta * (s - eta * rho)
        if self.source is not None:
            out += np.asarray(self.source(t, self.x_own.T), dtype=float).reshape(hi - lo)
        return out

    # --- TS callbacks -------------------------------------------------------------------
    def ifunction(self, ts, t, X, Xdot, F):
        rho_need = self.local(X)
        f = self.rhs(t, rho_need)
        F.setArray(Xdot.getArray(readonly=True) - f)

    def ijacobian(self, ts, t, X, Xdot, shift, J, P):
        rho = X.getArray(readonly=True).copy()
        self.T.copy(P, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        P.scale(-1.0)
        d = np.full(rho.size, float(shift))
        if self.beta > 0:
            if self.spherical:
                eta, s, ds, M = self.multiplier(rho)
                d += self.beta * (ds - eta)
                self.u_vec.setArray(self.beta * rho)
                self.v_vec.setArray(self.vol * (ds - eta) / M)
            else:
                d += self.beta * _s(rho, self.log_pi)[1]
        dv = P.createVecLeft()
        dv.setArray(d)
        P.setDiagonal(dv, addv=PETSc.InsertMode.ADD_VALUES)
        dv.destroy()
        P.assemble()
        if J != P:
            J.assemble()
        return True

    # --- functionals ----------------------------------------------------------------------
    def energy(self, rho_own) -> float:
        s = _s(rho_own, self.log_pi)[0]
        return self.comm.allreduce(float(np.dot(self.vol, s - rho_own + self.pi)), op=MPI.SUM)

    def mass(self, rho_own) -> float:
        return self.comm.allreduce(float(np.dot(self.vol, rho_own)), op=MPI.SUM)

    def gather(self, a_own):
        parts = self.comm.gather(np.asarray(a_own), root=0)
        return np.concatenate(parts) if self.comm.rank == 0 else None

    def destroy(self):
        for obj in (self.T, self.J, self.u_vec, self.v_vec, self.vec, self.gvec, self.scatter):
            obj.destroy()


def _errors(system: FVSystem, rho_own, exact, t, exact_mass) -> dict:
    """Discrete norms against the exact solution at the control-volume points (x_K):
    L1 = Σ|K||ρ_K − ρ(t, x_K)|, L2, Hellinger likewise; mass and relative mass error."""
    ex = np.asarray(exact.density(t, system.x_own.T), dtype=float)
    comm = system.comm
    vol = system.vol
    d = rho_own - ex
    L1 = comm.allreduce(float(np.dot(vol, np.abs(d))), op=MPI.SUM)
    L2 = math.sqrt(comm.allreduce(float(np.dot(vol, d * d)), op=MPI.SUM))
    he = math.sqrt(comm.allreduce(float(np.dot(vol, (np.sqrt(np.maximum(rho_own, 0)) - np.sqrt(ex)) ** 2)), op=MPI.SUM))
    mass = system.mass(rho_own)
    return {"L1": L1, "L2": L2, "hellinger": he, "mass": mass, "exact_mass": exact_mass,
            "mass_rel": abs(mass - exact_mass) / abs(exact_mass)}


def _petsc_options(options):
    """'-ts_type arkimex -ts_adapt_type none' or a dict → list of (key, value) pairs."""
    if not options:
        return []
    if isinstance(options, dict):
        return [(k.lstrip("-"), None if v is None else str(v)) for k, v in options.items()]
    if isinstance(options, (list, tuple)) and all(isinstance(o, tuple) and len(o) == 2 for o in options):
        return [(str(k).lstrip("-"), v) for k, v in options]
    toks = options.split() if isinstance(options, str) else list(options)
    out, i = [], 0
    while i < len(toks):
        key = toks[i]
        if not key.startswith("-"):
            raise ValueError(f"petsc options: expected an option name starting with '-', got {key!r}")
        val = None
        if i + 1 < len(toks) and not (toks[i + 1].startswith("-") and not _is_number(toks[i + 1])):
            val = toks[i + 1]
            i += 1
        out.append((key.lstrip("-"), val))
        i += 1
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def solve_fv(problem: Problem, n: int = 64, tol: float = 1e-6, comm=None, ts_type: str = "bdf",
             petsc_options=None, exact="auto", dt0: Optional[float] = None, max_steps: int = 1_000_000,
             mesh: Optional[FVMesh] = None) -> FVTrajectory:
    """Solve the KL flow of ``problem`` by finite volumes on the mesh of resolution n (box: n cells
    per direction; gmsh: the cached mesh of size h = L/n) with PETSc TS to tolerance ``tol``.

    ``petsc_options``: a string ('-ts_type arkimex -ts_arkimex_type 4') or dict put into the PETSc
    options database for this solve only (removed afterwards).  ``exact``: ExactSolution, "auto"
    (the problem's) or None.  No error estimate here; see :func:`pdeflow.fv.estimate`."""
    comm = comm or MPI.COMM_WORLD
    if problem.energy != "kl":
        # the finite-volume fluxes and reaction are written for ξ = log(ρ/π); the FE scheme handles
        # the other local energies (fem/scheme.py)
        raise ValueError(f"the finite-volume solver handles the KL flows only; case {problem.name!r} has "
                         f"energy {problem.energy} (use the finite-element reference, --discretization fe)")
    if not (tol > 0 and tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    opts = _petsc_options(petsc_options)
    if isinstance(exact, str) and exact == "auto":
        from ..exact import exact_solution

        exact = exact_solution(problem)
    wall0 = time.perf_counter()
    mesh = mesh if mesh is not None else build(problem.domain, n, comm)
    system = FVSystem(problem, mesh, comm)
    rho0f = initial_density(problem)
    rho0 = np.asarray(rho0f(system.x_own.T), dtype=float)
    mass0 = integrate(rho0f, problem.domain)
    rho0 *= mass0 / system.mass(rho0)  # the discrete mass is ∫_Ω ρ0 exactly (as the FE solve does)
    X = system.vec.duplicate()
    X.setArray(rho0)
    scale = comm.allreduce(float(rho0.max()) if rho0.size else 0.0, op=MPI.MAX)

    ts = PETSc.TS().create(comm)
    ts.setProblemType(PETSc.TS.ProblemType.NONLINEAR)
    ts.setType(ts_type)
    ts.setEquationType(PETSc.TS.EquationType.IMPLICIT)
    F = system.vec.duplicate()
    ts.setIFunction(system.ifunction, F)
    ts.setIJacobian(system.ijacobian, system.J, system.J)
    ts.setTime(0.0)
    ts.setTimeStep(dt0 if dt0 is not None else min(problem.T, 1.0) * 1e-3)
    ts.setMaxSteps(max_steps)
    ts.setExactFinalTime(PETSc.TS.ExactFinalTime.MATCHSTEP)
    ts.setTolerances(rtol=tol, atol=tol * scale)
    ts.setMaxSNESFailures(-1)
    if hasattr(ts, "setMaxStepRejections"):
        ts.setMaxStepRejections(-1)
    snes = ts.getSNES()
    snes.setType("newtonls")
    snes.setTolerances(rtol=1e-12, atol=1e-14 * max(scale, 1e-300), stol=1e-14, max_it=25)
    ksp = snes.getKSP()
    ksp.setType("preonly")
    pc = ksp.getPC()
    pc.setType("python")
    sm = _ShermanMorrison(system)
    pc.setPythonContext(sm)
    db = PETSc.Options()
    for k, v in opts:
        db.setValue(k, v if v is not None else "")
    defaults = [("ts_adapt_type", "basic"), ("snes_linesearch_type", "basic")] + ([("ts_bdf_order", "2")] if ts_type == "bdf" else [])
    for k, v in defaults:
        if not any(key == k for key, _ in opts):
            opts.append((k, v))
            db.setValue(k, v)
    steps = []

    def monitor(ts_, i, t, U):
        if i == 0:
            return
        r = U.getArray(readonly=True)
        steps.append({"t": float(t), "tau": float(ts_.getTimeStep()), "energy": system.energy(r),
                      "mass": system.mass(r), "rho_min": comm.allreduce(float(r.min()) if r.size else math.inf, op=MPI.MIN)})

    try:
        ts.setFromOptions()
        ksp.setType("preonly")  # the Sherman–Morrison PC is exact; -ksp_type can still override below
        ksp.setFromOptions()
        ts.setMonitor(monitor)
        ts.setSolution(X)
        ts.setUp()
        owned = [rho0.copy()]
        initial = {"t": 0.0, "energy": system.energy(rho0), "mass": system.mass(rho0)}
        energies, masses = [initial["energy"]], [initial["mass"]]
        errors = [] if exact is not None else None

        def exact_mass(t):
            return mass0 if problem.flow.conserves_mass else exact.mass(t)

        if errors is not None:
            errors.append({"t": 0.0, **_errors(system, rho0, exact, 0.0, exact_mass(0.0))})
        failure = None
        for t_snap in problem.snapshots:
            ts.setMaxTime(t_snap)
            try:
                ts.solve(X)
            except PETSc.Error as exc:  # pragma: no cover - reported below on all ranks
                failure = f"PETSc TS failed before t = {t_snap:g}: {exc}"
            reason = ts.getConvergedReason()
            if failure is None and (reason < 0 or abs(ts.getTime() - t_snap) > 1e-10 * max(1.0, t_snap)):
                failure = f"PETSc TS stopped at t = {ts.getTime():.6g} before the snapshot t = {t_snap:g} (reason {reason})"
            failure = comm.bcast(failure, root=0) if comm.size > 1 else failure
            if failure is not None:
                raise FVSolverError(failure)
            r = X.getArray(readonly=True).copy()
            owned.append(r)
            energies.append(system.energy(r))
            masses.append(system.mass(r))
            if errors is not None:
                errors.append({"t": float(t_snap), **_errors(system, r, exact, t_snap, exact_mass(t_snap))})
        stats = {
            "n_steps": int(ts.getStepNumber()),
            "n_rejected": int(ts.getStepRejections()),
            "snes_failures": int(ts.getSNESFailures()),
            "snes_iterations": int(ts.getSNESIterations()),
            "rhs_evaluations": int(comm.allreduce(system.n_rhs, op=MPI.MAX)),
            "energy_increase_max": float(max([0.0] + [b["energy"] - a["energy"] for a, b in zip([initial] + steps[:-1], steps)])),
            "rho_min": float(min([s["rho_min"] for s in steps] + [comm.allreduce(float(rho0.min()), op=MPI.MIN)])),
            "rho_min_rel": 0.0,
        }
        stats["rho_min_rel"] = stats["rho_min"] / scale
        if problem.flow.conserves_mass:
            m0 = initial["mass"]
            stats["mass_drift_rel_max"] = float(max([abs(s["mass"] - m0) / m0 for s in steps] + [0.0]))
        params = {
            "discretization": "fv",
            "n": int(mesh.n),
            "h": float(mesh.h),
            "tol": float(tol),
            "ts_type": ts.getType(),
            "ts_options": {k: v for k, v in opts},
            "mesh": mesh.describe(),
            "n_dofs": int(mesh.size),
            "dim": problem.dim,
            "linear_solver": "LU (MUMPS in parallel) + Sherman-Morrison for the spherical rank-one term"
            if system.rank_one else "LU (MUMPS in parallel)",
            "variable": "rho",
            "flux": "SQRA two-point: F_KL = alpha w_KL sqrt(pi_K pi_L) (rho_K/pi_K - rho_L/pi_L)",
        }
        if ts.getType() == "bdf":
            params["bdf_order"] = int(dict(opts).get("ts_bdf_order", 2))
    finally:
        for k, _ in opts:
            db.delValue(k)
        ts.destroy()
        sm.destroy()
        F.destroy()
    x_all = mesh.x if comm.rank == 0 else None
    m_all = mesh.vol.copy() if comm.rank == 0 else None
    gathered = [system.gather(r) for r in owned]
    rho_all = np.array(gathered) if comm.rank == 0 else None
    X.destroy()
    system.destroy()
    wall = comm.allreduce(time.perf_counter() - wall0, op=MPI.MAX)
    return FVTrajectory(problem=problem, params=params, times=np.array(problem.snapshot_times()), x=x_all,
                        rho=rho_all, m=m_all, masses=np.array(masses), energies=np.array(energies), steps=steps,
                        initial=initial, errors=errors, statistics=stats, wall_time=wall, mpi_size=comm.size,
                        versions=versions(), mesh=mesh)
