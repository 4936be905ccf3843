"""Command-line parts of the finite-volume solve and of the cross-check (hooked into pdeflow/cli.py).

    pdeflow solve CASE --discretization fv [--set n=.. tol=.. T=.. alpha=.. beta=..] [--petsc-options '-ts_type arkimex']
    pdeflow crosscheck CASE [--set n=.. tol=.. tau_factor=.. T=.. alpha=.. beta=..] [--petsc-options ..] [--json]

Error conventions of pdeflow: bad input (unknown key, a FE-only key with fv, a refused mesh, bad
PETSc options) → one line ``pdeflow: error: ...`` on stderr (rank 0), exit 2; a failed solve →
exit 1; the cross-check exits 0 when FE and FV agree within their error estimates, 4 when not.
"""
from __future__ import annotations

import math
import sys

from .. import cases as case_registry
from ..cases import CaseError, Key

EXIT_FAILED = 1
EXIT_DISAGREE = 4

FV_KEYS = {
    "n": case_registry.SOLVER_KEYS["n"],
    "tol": Key(float, lambda v: 0 < v < 0.1 and math.isfinite(v), "a number in (0, 0.1) (PETSc TS rtol; atol = tol max rho0)"),
}
CROSSCHECK_KEYS = {
    **FV_KEYS,
    "tau_factor": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number (FE time step tau = tau_factor h^2)"),
}
FE_ONLY = ("tau", "scheme", "solver", "newton_tol", "newton_max_it", "tau_min")

PETSC_HELP = ("PETSc options for the FV time integration, e.g. '-ts_type arkimex -ts_arkimex_type 3' or "
              "'-ts_bdf_order 3 -ts_adapt_type basic' (TS, SNES, KSP options of the options database)")


def add_solve_arguments(p_solve) -> None:
    p_solve.add_argument("--discretization", choices=("fe", "fv"), default="fe",
                         help="fe: the finite-element reference (default); fv: the finite-volume solver (keys n, tol, T, "
                              "alpha, beta)")
    p_solve.add_argument("--petsc-options", default=None, metavar="OPTIONS", help=PETSC_HELP + " (fv only)")


def add_crosscheck_parser(sub) -> None:
    p = sub.add_parser("crosscheck", help="solve a case by FE and by FV and check that they agree within their error "
                                          "estimates (exit 0 agree / 4 disagree)")
    p.add_argument("case", help="a case name (see `pdeflow cases`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="n (both discretizations; default 128 in 1-D, 32 in 2-D, 16 in 3-D), tol (FV, default 1e-7), "
                        "tau_factor (FE tau = tau_factor h^2, default 0.5), T, alpha, beta")
    p.add_argument("--petsc-options", default=None, metavar="OPTIONS", help=PETSC_HELP)
    p.add_argument("--out", default=None, help="output directory for crosscheck.json (default results/<case>-crosscheck)")
    p.add_argument("--json", action="store_true", help="print crosscheck.json on stdout")
    p.add_argument("--allow-large", action="store_true", help="run inputs beyond the resource budget")
    p.add_argument("--quiet", action="store_true", help="no table")


def _parse(args, keys):
    problem = case_registry.get_case(args.case)
    pairs = list(args.set or ())
    for item in pairs:
        key = item.split("=", 1)[0].strip()
        if key in FE_ONLY:
            raise CaseError(f"{key}: a key of the finite-element solve; the fv discretization takes n, tol, T, alpha, beta"
                            + (", tau_factor" if "tau_factor" in keys else ""))
    specs = {**case_registry.PROBLEM_KEYS, **keys}
    values = {}
    for item in pairs:
        if "=" not in item:
            raise CaseError(f"--set expects key=value, got {item!r}")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key not in specs:
            raise CaseError(f"unknown key {key!r}; known keys: {', '.join(specs)}")
        values[key] = case_registry._convert(key, raw, specs[key])
    problem, _ = case_registry.apply_overrides(problem, {k: v for k, v in values.items() if k in case_registry.PROBLEM_KEYS})
    return problem, values


def _petsc_options(args):
    from .solver import _petsc_options as parse

    try:
        return parse(args.petsc_options)
    except ValueError as exc:
        raise CaseError(f"--petsc-options: {exc}") from None


def _rank(comm) -> int:
    return comm.rank


def _fail(comm, message: str, code: int) -> int:
    if comm.rank == 0:
        print(f"pdeflow: error: {message}", file=sys.stderr)
    return code


def _mesh_or_refuse(problem, n, comm):
    """Build the FV mesh on every rank; a refused mesh is bad input (CaseError, exit 2)."""
    from .mesh import MeshNotAdmissible, build

    try:
        return build(problem.domain, n, comm)
    except MeshNotAdmissible as exc:
        raise CaseError(str(exc)) from None


def run_solve_fv(args) -> int:
    problem, values = _parse(args, FV_KEYS)
    n = values.get("n", 64 if problem.dim == 1 else 32)
    tol = values.get("tol", 1e-7)
    opts = _petsc_options(args)
    case_registry.check_budget(problem, n=n, allow_large=args.allow_large)
    if problem.energy != "kl":
        raise case_registry.CaseError(f"--discretization fv: the finite-volume solver handles KL flows only; "
                                      f"case {problem.name!r} has energy {problem.energy}")
    from mpi4py import MPI

    from .io import summary_json, write_outputs
    from .mesh import MeshUnavailable
    from .solver import FVSolverError, solve_fv

    comm = MPI.COMM_WORLD
    out = args.out or f"results/{problem.name}-fv"
    try:
        mesh = _mesh_or_refuse(problem, n, comm)
        traj = solve_fv(problem, n=n, tol=tol, comm=comm, petsc_options=opts, mesh=mesh)
    except (FVSolverError, MeshUnavailable) as exc:
        return _fail(comm, str(exc), EXIT_FAILED)
    except __import__("petsc4py").PETSc.Error as exc:
        return _fail(comm, f"PETSc failed: {exc}".splitlines()[0], EXIT_FAILED)
    try:
        paths = write_outputs(traj, out, comm, xdmf=not args.no_xdmf)
    except OSError as exc:
        return _fail(comm, f"--out {out}: {exc.strerror or exc}", EXIT_FAILED)
    if comm.rank == 0:
        if not args.no_plots:
            try:
                from ..exact import exact_solution
                from ..plots import plot_snapshots

                snap = plot_snapshots(problem, traj.times, traj.x, traj.rho, exact_solution(problem), f"{out}/snapshots.png")
                if snap is not None:
                    paths["snapshots_png"] = str(snap)
            except ImportError:
                print("pdeflow: matplotlib is not installed; no plots (pip install pdeflow[plot])", file=sys.stderr)
        if args.json:
            print(summary_json(traj))
        elif not args.quiet:
            st = traj.statistics
            print(f"{problem.name} (fv, {traj.mesh.kind} mesh): n = {n}, tol = {tol:g}, {st['n_steps']} TS steps "
                  f"({st['n_rejected']} rejected), {st['snes_iterations']} Newton iterations, wall {traj.wall_time:.2f} s "
                  f"on {traj.mpi_size} rank(s)")
            if traj.errors:
                e = traj.errors[-1]
                print(f"errors at t = {e['t']:g}: L1 {e['L1']:.3e}  L2 {e['L2']:.3e}  Hellinger {e['hellinger']:.3e}  "
                      f"mass {e['mass_rel']:.2e}")
            print("outputs: " + ", ".join(paths.values()))
    return 0


def run_crosscheck(args) -> int:
    problem, values = _parse(args, CROSSCHECK_KEYS)
    n = values.get("n", {1: 128, 2: 32, 3: 16}[problem.dim])
    if n < 4:
        raise CaseError("n: the cross-check needs n >= 4 (its coarse level is n/2)")
    tol = values.get("tol", 1e-7)
    tau_factor = values.get("tau_factor", 0.5)
    opts = _petsc_options(args)
    h = problem.domain.diameter_box / n
    case_registry.check_budget(problem, n=n, tau=tau_factor * h * h, allow_large=args.allow_large)
    if problem.energy != "kl":
        raise case_registry.CaseError(f"crosscheck: the finite-volume solver handles KL flows only; "
                                      f"case {problem.name!r} has energy {problem.energy}")
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from mpi4py import MPI

    from ..crosscheck import crosscheck, format_table
    from ..fem import SolverError
    from ..fem.meshfiles import MeshGenerationError
    from .mesh import MeshUnavailable
    from .solver import FVSolverError

    comm = MPI.COMM_WORLD
    try:
        _mesh_or_refuse(problem, n, comm)
        _mesh_or_refuse(problem, n // 2, comm)
        result = crosscheck(problem, n=n, tol=tol, tau_factor=tau_factor, comm=comm, petsc_options=opts)
    except (FVSolverError, SolverError, MeshGenerationError, MeshUnavailable) as exc:
        return _fail(comm, str(exc), EXIT_FAILED)
    out = args.out or f"results/{problem.name}-crosscheck"
    error = None
    if comm.rank == 0:
        import json
        import os
        from pathlib import Path

        try:
            Path(out).mkdir(parents=True, exist_ok=True)
            tmp = Path(out, ".crosscheck.tmp.json")
            tmp.write_text(json.dumps(result, indent=1, default=float))
            os.replace(tmp, Path(out, "crosscheck.json"))
        except OSError as exc:
            error = f"--out {out}: {exc.strerror or exc}"
    error = comm.bcast(error, root=0)
    if error is not None:
        return _fail(comm, error, EXIT_FAILED)
    agree = comm.bcast(result["verdict"] == "agree" if comm.rank == 0 else None, root=0)
    if comm.rank == 0:
        if args.json:
            import json

            print(json.dumps(result, indent=1, default=float))
        elif not args.quiet:
            print(format_table(result))
    return 0 if agree else EXIT_DISAGREE
