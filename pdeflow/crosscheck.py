"""FE ↔ FV cross-check (`pdeflow crosscheck CASE`): two independent discretizations of the same
flow, compared at matched resolutions, each with its own error estimate.

At resolution n (box: n cells per direction for both; gmsh: the same mesh, FE P1 and
vertex-centred FV on its vertices):

* FE: the frozen-mobility P1 reference (pdeflow.fem) at (n, τ = c_τ h²) and at (n/2, c_τ (2h)²);
  its error is estimated by Richardson with the joint order 2 (τ ∝ h²):
  E_FE = d(u_n, u_{n/2}) / (r² − 1), r = n / (n/2);
* FV: the finite-volume solution (pdeflow.fv) at (n, tol), (n/2, tol) and (n, 10·tol); space
  E_s = d(v_n, v_{n/2}) / (r² − 1), time E_t = d(v_n(tol), v_n(10 tol)) / (10^q − 1) with
  q = p/(p+1) (the error of a local-error-controlled method of order p scales as tol^q; BDF2:
  q = 2/3, measured 0.64–0.68), E_FV = E_s + E_t;
* their difference D = d(u_n, v_n) at every snapshot, for d = L1 and d = MMD (pdeflow.fv.fields:
  the same reconstruction rule for every level of both), and the verdict **agree** when
  D ≤ F_s (E_FE + E_FV) + floor for both distances at every snapshot (the triangle inequality
  for the true errors, with the estimates in their place; F_s = 1.25 is Roache's factor of safety
  for a verified order; floor: the round-off floor of the MMD evaluation), else **disagree**.

Richardson estimates assume the asymptotic range; a verdict on a too-coarse ladder can be wrong
either way, so the table reports the numbers and the observed ratio D/(E_FE + E_FV).
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np
from mpi4py import MPI

from .fv import fields
from .problem import Problem

# Roache's factor of safety of the grid convergence index for a ladder whose order is verified
# (order 2 of both discretizations: docs/verification.md, tests/unit/test_fv.py)
SAFETY = 1.25


def _fe_field(traj, fv_mesh):
    """The FE solution as a Field (rank 0; None elsewhere).  Collective (gathers the masses)."""
    m = traj.space.gather(traj.space.lumped_mass)
    if traj.space.comm.rank != 0:
        return None
    p = traj.problem
    if p.domain.is_box:
        return fields.grid_field(traj.x, m, traj.rho, p.domain.lower, p.domain.upper)
    if fv_mesh is None or np.max(np.abs(traj.x - fv_mesh.x)) > 1e-9:
        raise RuntimeError("FE and FV vertices of the same gmsh mesh do not match")
    return fields.simplicial_field(traj.x, m, traj.rho, fv_mesh.cells)


def _fv_field(traj):
    if traj.rho is None:
        return None
    p = traj.problem
    if p.domain.is_box:
        return fields.grid_field(traj.x, traj.m, traj.rho, p.domain.lower, p.domain.upper)
    return fields.simplicial_field(traj.x, traj.m, traj.rho, traj.mesh.cells)


def _dist(a, b, k, ell, floor=None):
    mmd, fl = fields.mmd_distance(a, b, k, ell, with_floor=True)
    if floor is not None:
        floor["MMD"] = fl
    return {"L1": fields.l1_distance(a, b, k), "MMD": mmd}


def crosscheck(problem: Problem, n: int, tol: float = 1e-7, tau_factor: float = 0.5, comm=None,
               petsc_options=None, fe_options: Optional[dict] = None, safety: float = SAFETY) -> dict:
    """Run both discretizations (5 FV/FE solves in all) and compare them; the result (JSON-able) on
    rank 0, None on the other ranks.  ``safety`` multiplies the sum of the estimates."""
    from .fem import solve_reference
    from .fv import solve_fv

    comm = comm or MPI.COMM_WORLD
    fe_options = dict(fe_options or {})
    nc = n // 2
    if nc < 2:
        raise ValueError(f"n = {n}: the cross-check needs n >= 4 (the coarse level is n/2)")
    r = n / nc
    h = problem.domain.diameter_box / n
    tau = tau_factor * h * h
    tau_c = tau_factor * (problem.domain.diameter_box / nc) ** 2
    wall = {}
    t0 = time.perf_counter()
    fv_f = solve_fv(problem, n=n, tol=tol, comm=comm, petsc_options=petsc_options)
    fv_c = solve_fv(problem, n=nc, tol=tol, comm=comm, petsc_options=petsc_options)
    fv_t = solve_fv(problem, n=n, tol=10 * tol, comm=comm, petsc_options=petsc_options)
    wall["fv"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fe_f = solve_reference(problem, n=n, tau=min(tau, problem.T), comm=comm, progress=False, **fe_options)
    fe_c = solve_reference(problem, n=nc, tau=min(tau_c, problem.T), comm=comm, progress=False, **fe_options)
    wall["fe"] = time.perf_counter() - t0
    A_f, A_c = _fe_field(fe_f, fv_f.mesh), _fe_field(fe_c, fv_c.mesh)
    if comm.rank != 0:
        return None
    B_f, B_c, B_t = _fv_field(fv_f), _fv_field(fv_c), _fv_field(fv_t)
    ell = fields.mmd_scale(problem.domain)
    order = fv_f.params.get("bdf_order", 2)
    q = order / (order + 1.0)
    rows = []
    verdict = "agree"
    for k, t in enumerate(fv_f.times):
        floor = {"L1": 0.0}
        D = _dist(A_f, B_f, k, ell, floor)
        e_fe = {key: v / (r * r - 1) for key, v in _dist(A_f, A_c, k, ell).items()}
        e_s = {key: v / (r * r - 1) for key, v in _dist(B_f, B_c, k, ell).items()}
        e_t = {key: v / (10**q - 1) for key, v in _dist(B_f, B_t, k, ell).items()}
        row = {"t": float(t)}
        ok_all = True
        for key in ("L1", "MMD"):
            e_fv = e_s[key] + e_t[key]
            bound = safety * (e_fe[key] + e_fv) + floor[key]
            ok = D[key] <= bound
            ok_all &= ok
            row[key] = {"difference": D[key], "fe_estimate": e_fe[key], "fv_estimate": e_fv,
                        "fv_space": e_s[key], "fv_time": e_t[key], "round_off_floor": floor[key],
                        "ratio": D[key] / bound if bound > 0 else math.inf, "agree": bool(ok)}
        row["agree"] = bool(ok_all)
        if not ok_all:
            verdict = "disagree"
        rows.append(row)
    return {
        "case": problem.name,
        "problem": problem.describe(),
        "verdict": verdict,
        "n": int(n), "n_coarse": int(nc), "h": h, "tol": tol, "tau": min(tau, problem.T), "tau_factor": tau_factor,
        "mmd_ell": ell, "safety": safety, "time_exponent_q": q,
        "fe": {"params": fe_f.params, "wall_time": fe_f.wall_time + fe_c.wall_time},
        "fv": {"params": fv_f.params, "statistics": fv_f.statistics,
               "wall_time": fv_f.wall_time + fv_c.wall_time + fv_t.wall_time},
        "snapshots": rows,
        "mpi_size": comm.size,
        "wall": wall,
        "representation": "box: multilinear interpolant of the FE vertex values / FV cell-centre values, L1 by "
                          "tensor Gauss quadrature; gmsh: P1 on the mesh for both; MMD between the quadrature "
                          "measures sum m_i rho_i delta_x_i, Gaussian kernel of width mmd_ell",
    }


def format_table(result: dict) -> str:
    lines = [f"{result['case']}: FE (n = {result['n']}, tau = {result['tau']:.3g}) vs FV (n = {result['n']}, "
             f"tol = {result['tol']:.0e}); estimates by Richardson from n = {result['n_coarse']}"]
    head = f"{'t':>6} | {'L1 diff':>9} {'E_FE':>9} {'E_FV':>9} {'ok':>3} | {'MMD diff':>9} {'E_FE':>9} {'E_FV':>9} {'ok':>3}"
    lines += [head, "-" * len(head)]
    for row in result["snapshots"]:
        a, b = row["L1"], row["MMD"]
        lines.append(f"{row['t']:>6.3g} | {a['difference']:>9.2e} {a['fe_estimate']:>9.2e} {a['fv_estimate']:>9.2e} "
                     f"{'yes' if a['agree'] else 'NO':>3} | {b['difference']:>9.2e} {b['fe_estimate']:>9.2e} "
                     f"{b['fv_estimate']:>9.2e} {'yes' if b['agree'] else 'NO':>3}")
    lines.append(f"verdict: {result['verdict']}")
    return "\n".join(lines)
