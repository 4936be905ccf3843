"""Certified references: a solve to a requested accuracy, with an error estimate at every snapshot
(``pdeflow solve CASE --tol TOL``; ``pdeflow export --tol``).

The estimate is Richardson's, separately in time and in space, from ladders of solves of the
second-order scheme (scheme2.BDF2Scheme, τ-order p = 2) on P1 (h-order q = 2, in L1):

1. time step: on the coarsest mesh n₀, τ is halved from τ₀ until the time estimate of the finer of
   the last two solves, E_τ = ‖ρ_τ − ρ_{2τ}‖/(2^p − 1), times the safety factor F_s, is ≤ tol/2;
2. mesh: with that τ, n is doubled from n₀ until E_h = ‖ρ_n − ρ_{n/2}‖/(2^q − 1), times F_s, is ≤ tol/2;
3. on the finest mesh the time estimate is measured again (a solve with 2τ on that mesh) and τ is
   halved further if it is above tol/2 there.

The result is the finest solve (n, τ); its estimate at each snapshot is F_s (E_h + E_τ), in L1 and
in the Gaussian MMD at the metric scales (each the same Richardson quotient of the distance of the
two solves; MMD by vertex quadrature of the difference on the coarser mesh of each pair).  Norms are
taken at every snapshot and the ladders are driven by their maximum.  Distances between meshes use
the P1 interpolant of the coarser solution at the finer vertices (pdeflow.p1; exact for the nested
box meshes) and the finer mesh's lumped quadrature.

F_s = 2 (SAFETY): in the asymptotic range the Richardson quotient equals the error of the finer
solve, so the estimate is about twice the true error; tests/unit/test_certified.py measures the
effectivity (estimate / true error against the exact solutions) at every snapshot of every exact
case and asserts it lies in [1, 10].
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from ..problem import Problem
from .reference import SolverError, Trajectory, solve_reference

SAFETY = 2.0
TIME_ORDER = {"bdf2": 2, "frozen-mobility": 1, "hellinger-jko": 1}
SPACE_ORDER = 2
N0 = {1: 50, 2: 16, 3: 8}
TAU0 = 0.1
MAX_HALVINGS = 10


@dataclass
class CertifiedResult:
    trajectory: Trajectory  # the finest solve, with keep_steps=True
    estimates: list  # one dict per snapshot (t = 0 included): t, L1, L1_time, L1_space, mmd{scale}
    provenance: dict = field(default_factory=dict)


def _distances(a: Trajectory, b: Trajectory, scales) -> list:
    """Per snapshot: L1 and per-scale Gaussian MMD between the P1 solutions a and b (b the finer or
    the same mesh), on rank 0 (None elsewhere); collective (gathers the cells)."""
    from ..p1 import P1Mesh

    cells_a, cells_b = a.space.gathered_cells(), b.space.gathered_cells()
    ma, mb = a.space.gather(a.space.lumped_mass), b.space.gather(b.space.lumped_mass)
    if a.space.comm.rank != 0:
        return None
    from ..approx.kernels import Kernel

    mesh_a, mesh_b = P1Mesh(a.x, cells_a), P1Mesh(b.x, cells_b)
    same = a.x.shape == b.x.shape and np.array_equal(a.x, b.x)
    a_on_b = a.rho if same else mesh_a.evaluate(a.rho, b.x)
    l1 = [float(np.dot(mb, np.abs(a_on_b[k] - b.rho[k]))) for k in range(len(a.times))]
    # the MMD of the difference by the coarser mesh's vertex quadrature (smaller Gram matrices; the
    # difference is smooth, so its quadrature error is a higher-order term)
    b_on_a = b.rho if same else mesh_b.evaluate(b.rho, a.x)
    D = ma * (a.rho - b_on_a)  # snapshots × vertices of a
    grid = _tensor_axes(a.x)
    mmd2 = {str(s): (_separable_forms(float(s), grid, D) if grid is not None
                     else _quadratic_forms(Kernel("gaussian", float(s)), a.x, D)) for s in scales}
    return [{"t": float(t), "L1": l1[k], "mmd": {s: math.sqrt(max(v[k], 0.0)) for s, v in mmd2.items()}}
            for k, t in enumerate(a.times)]


def _tensor_axes(x: np.ndarray):
    """The 1-D axes of x if its rows are a tensor grid in lexicographic order (first coordinate slowest,
    as the gathered box-mesh vertices are), else None."""
    scale = float(np.max(np.abs(x))) or 1.0
    # coordinates of one grid line may differ in the last bits between partitions: rounded keys
    axes = [np.unique(np.round(x[:, k] / scale, 10)) * scale for k in range(x.shape[1])]
    if int(np.prod([len(ax) for ax in axes])) != len(x):
        return None
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, x.shape[1])
    return axes if np.allclose(mesh, x, rtol=0, atol=1e-9 * scale) else None


def _separable_forms(ell: float, axes, D) -> np.ndarray:
    """dₖᵀ G dₖ for the Gaussian kernel on a tensor grid: G = G₁ ⊗ … ⊗ G_d, applied factor by factor
    (O(N^{1+1/d}) instead of O(N²))."""
    shape = tuple(len(ax) for ax in axes)
    factors = [np.exp(-0.5 * (ax[:, None] - ax[None, :]) ** 2 / ell ** 2) for ax in axes]
    out = np.empty(D.shape[0])
    for k, d in enumerate(D):
        v = d.reshape(shape)
        w = v
        for axis, G in enumerate(factors):
            w = np.moveaxis(np.tensordot(G, w, axes=([1], [axis])), 0, axis)
        out[k] = float(np.sum(v * w))
    return out


def _quadratic_forms(kern, x, D, block_entries: int = 10_000_000) -> np.ndarray:
    """dₖᵀ G dₖ for every row dₖ of D, G the kernel's Gram matrix on x, in row blocks of G of at most
    ``block_entries`` entries (80 MB; a fixed 2000 rows took gigabytes on large meshes)."""
    chunk = max(1, block_entries // max(len(x), 1))
    total = np.zeros(D.shape[0])
    for i in range(0, len(x), chunk):
        total += np.einsum("kj,kj->k", D[:, i:i + chunk] @ kern.gram(x[i:i + chunk], x), D)
    return total


def _richardson(dist: list, order: int) -> list:
    f = 1.0 / (2.0 ** order - 1.0)
    return [{"t": r["t"], "L1": f * r["L1"], "mmd": {s: f * v for s, v in r["mmd"].items()}} for r in dist]


def _kept(traj, comm) -> bool:
    """Whether the solve kept its steps (decided on rank 0, where they are)."""
    return bool(comm.bcast(traj.step_rho is not None if comm.rank == 0 else None, root=0))


def _worst(est) -> float:
    return max(r["L1"] for r in est[1:]) if est else math.inf


def solve_certified(problem: Problem, tol: float, comm=MPI.COMM_WORLD, scheme: str = "bdf2", n0=None, tau0=None,
                    safety: float = SAFETY, allow_large: bool = False, progress: bool = False, exact="auto",
                    log=None, **solver_opts) -> CertifiedResult:
    """Solve ``problem`` so that the estimated L1 error at every snapshot is ≤ ``tol`` (module
    docstring); SolverError if the resource budget (pdeflow.cases.RESOURCE_LIMITS) stops the ladders
    first.  ``log(message)`` (rank 0) is told each solve of the ladders."""
    from ..assess.verify import metric_scales
    from ..cases import CaseError, check_budget

    if not (isinstance(tol, float) and math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    p = TIME_ORDER[scheme]
    n = int(n0 or N0[problem.dim])
    tau = float(tau0 or min(TAU0, problem.T / 4))
    scales = metric_scales(problem)
    runs = []
    wall0 = time.perf_counter()

    def solve(n_, tau_, keep=False):
        try:
            check_budget(problem, n=n_, tau=tau_, allow_large=allow_large)
        except CaseError as exc:
            raise SolverError(f"--tol {tol:g} not reached within the resource budget: {exc}") from None
        t0 = time.perf_counter()
        tr = solve_reference(problem, n=n_, tau=tau_, comm=comm, scheme=scheme, progress=False, exact=exact,
                             keep_steps=keep, **solver_opts)
        runs.append({"n": n_, "tau": tau_, "wall": time.perf_counter() - t0})
        if log is not None and comm.rank == 0:
            log(f"solve n = {n_}, tau = {tau_:g}: {runs[-1]['wall']:.2f} s")
        return tr

    def estimate(a, b, order):
        dist = _distances(a, b, scales)
        est = _richardson(dist, order) if dist is not None else None
        return comm.bcast(est, root=0)

    # 1. the time step, on the coarsest mesh
    coarse_t, fine_t = solve(n, tau), solve(n, tau / 2)
    tau /= 2
    est_t = estimate(coarse_t, fine_t, p)
    halvings = 0
    while safety * _worst(est_t) > tol / 2:
        halvings += 1
        if halvings > MAX_HALVINGS:
            raise SolverError(f"--tol {tol:g}: the time estimate did not fall below tol/2 in {MAX_HALVINGS} halvings "
                              f"of tau (last {safety * _worst(est_t):.2e} at tau = {tau:g})")
        coarse_t, fine_t = fine_t, solve(n, tau / 2)
        tau /= 2
        est_t = estimate(coarse_t, fine_t, p)
    # 2. the mesh, with that time step
    # (the states of every step are kept on a solve expected to be the last: its estimate, 2^-q of the
    # last one, within the target; a wrong guess costs one more solve of that mesh)
    def likely_last(est):
        return safety * _worst(est) / 2 ** SPACE_ORDER <= tol / 2

    coarse_h, fine_h = fine_t, solve(2 * n, tau)
    n *= 2
    est_h = estimate(coarse_h, fine_h, SPACE_ORDER)
    while safety * _worst(est_h) > tol / 2:
        coarse_h, fine_h = fine_h, solve(2 * n, tau, keep=likely_last(est_h))
        n *= 2
        est_h = estimate(coarse_h, fine_h, SPACE_ORDER)
    # 3. the time estimate again, on the finest mesh
    final = fine_h if _kept(fine_h, comm) else solve(n, tau, keep=True)
    est_t = estimate(solve(n, 2 * tau), final, p)
    while safety * _worst(est_t) > tol / 2:
        halvings += 1
        if halvings > MAX_HALVINGS:
            raise SolverError(f"--tol {tol:g}: the time estimate on the finest mesh did not fall below tol/2")
        previous, final = final, solve(n, tau / 2, keep=True)
        tau /= 2
        est_t = estimate(previous, final, p)
    estimates = _combine(est_t, est_h, safety)
    provenance = {
        "method": (f"Richardson in time (tau ladder, order {p}) and in space (mesh ladder, order {SPACE_ORDER}), "
                   f"safety factor {safety:g}; tol/2 each"),
        "tol": tol, "safety": safety, "time_order": p, "space_order": SPACE_ORDER, "scheme": scheme,
        "n": n, "tau": tau, "runs": runs, "wall": time.perf_counter() - wall0, "metric_scales": list(scales),
    }
    final.error_estimate = {"method": provenance["method"], "certified": True, "tol": tol, "snapshots": estimates,
                            "ladder": runs, "safety": safety}
    return CertifiedResult(trajectory=final, estimates=estimates, provenance=provenance)


def _combine(est_t, est_h, safety) -> list:
    out = []
    for rt, rh in zip(est_t, est_h):
        mmd = {s: safety * (rt["mmd"][s] + rh["mmd"][s]) for s in rt["mmd"]}
        out.append({"t": rt["t"], "L1": safety * (rt["L1"] + rh["L1"]), "L1_time": safety * rt["L1"],
                    "L1_space": safety * rh["L1"], "mmd": mmd})
    return out


def estimate_error(traj: Trajectory, safety: float = SAFETY, allow_large: bool = False, **solver_opts) -> dict:
    """The error estimate of a plain solve (no --tol), from two companion solves — the same mesh with
    2τ (time) and the mesh n/2 with τ (space) — and Richardson quotients with the scheme's orders,
    times the safety factor: about 1/2 + 1/2^d of the solve's own cost.  Asymptotic, not certified:
    a plain solve does not check that its (n, τ) is in the asymptotic range, which the ladders of
    :func:`solve_certified` do.  Sets ``traj.error_estimate`` and returns it."""
    from ..assess.verify import metric_scales

    problem, params = traj.problem, traj.params
    comm = traj.space.comm
    scheme, n, tau = params["scheme"], int(params["n"]), float(params["tau"])
    if n < 4:
        raise ValueError("an error estimate needs n >= 4 (its companion solve uses n/2)")
    p = TIME_ORDER[scheme]
    kw = {k: params[k] for k in ("solver", "newton_tol", "newton_max_it") if k in params}
    kw.update(solver_opts)
    scales = metric_scales(problem)
    t0 = time.perf_counter()
    coarse_tau = solve_reference(problem, n=n, tau=2 * tau, comm=comm, scheme=scheme, progress=False, exact=None, **kw)
    coarse_h = solve_reference(problem, n=n // 2, tau=tau, comm=comm, scheme=scheme, progress=False, exact=None, **kw)

    def est(a, b, order):
        dist = _distances(a, b, scales)
        return comm.bcast(_richardson(dist, order) if dist is not None else None, root=0)

    snapshots = _combine(est(coarse_tau, traj, p), est(coarse_h, traj, SPACE_ORDER), safety)
    traj.error_estimate = {
        "method": (f"Richardson quotients of companion solves at 2*tau (time, order {p}) and n/2 (space, order "
                   f"{SPACE_ORDER}), safety factor {safety:g}; asymptotic, not certified (use --tol for a "
                   f"certified estimate)"),
        "certified": False, "snapshots": snapshots, "safety": safety,
        "companion_wall": comm.allreduce(time.perf_counter() - t0, op=MPI.MAX),
    }
    return traj.error_estimate
