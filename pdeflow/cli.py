"""The `pdeflow` command.

    pdeflow cases [--json | --markdown]
    pdeflow solve CASE [--set key=value ...] [--out DIR] [--json] [--no-xdmf] [--no-plots] [--quiet]
    pdeflow approx CASE --method M [--set key=value ...] [--reference DIR] [--out DIR] [--json] [--quiet]
    pdeflow check CASE PARTICLES.npz [--continuum C] [--alpha A] [--json]      (exit 0 / 4 / 5)
    pdeflow verify CASE --method M [--continuum C] [--set ...] [--plan P] [--json]  (exit 0 / 4 / 5)
    pdeflow methods [--json]
    pdeflow study SPEC.toml [--out DIR] [--resume] [--ranks-per-run g] [--quiet]
    pdeflow report DIR
    pdeflow solve CASE --discretization fv [--petsc-options OPTS]   (finite volumes, pdeflow/fv)
    pdeflow crosscheck CASE [--set n=.. tol=.. tau_factor=..] [--json]   (exit 0 agree / 4 disagree)
    pdeflow export CASE [--set key=value ...] [--tol TOL] --out FILE.npz|FILE.h5   (a reference as data)

Bad input (unknown case or key, τ ≤ 0, n < 2, a non-numeric value, ...) gives a one-line message
on stderr and exit code 2, on rank 0 only, before any dolfinx object is created.  A solve that
fails (time step below tau_min) exits with code 1 and writes no result files.  ``check`` and
``verify`` exit with 0 (consistent), 4 (inconsistent) or 5 (inconclusive).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from . import cases as case_registry
from .agreement import stage

EXIT_USAGE = 2
EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 — as for every other bad input
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _rank() -> int:
    try:
        from mpi4py import MPI

        return MPI.COMM_WORLD.rank
    except ImportError:  # pragma: no cover
        return 0


def _fail(message: str, code: int) -> int:
    if _rank() == 0:
        print(f"pdeflow: error: {message}", file=sys.stderr)
    return code


def _cases_table(as_json: bool) -> str:
    from .exact import exact_solution

    rows = []
    for name in case_registry.case_names():
        p = case_registry.get_case(name)
        exact = exact_solution(p) is not None
        lo, hi = p.domain.lower, p.domain.upper
        rows.append(
            {
                "name": name,
                "flow": p.flow.name,
                "alpha": p.flow.alpha,
                "beta": p.flow.beta,
                "spherical": p.flow.spherical,
                "dim": p.dim,
                "domain": (" x ".join(f"[{a:g},{b:g}]" for a, b in zip(lo, hi)) if p.domain.is_box
                           else f"mesh {p.domain.mesh}"),
                "exact": (p.exact_kind if exact else "none (self-convergence)"),
                "description": p.description,
            }
        )
    if as_json:
        return json.dumps(rows, indent=1)
    wn = max(len(r["name"]) for r in rows)
    wd = max(len(r["domain"]) for r in rows)
    head = f"{'case':<{wn}} {'flow':<5} {'alpha':>5} {'beta':>5} {'d':>2}  {'domain':<{wd}}  exact solution"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<{wn}} {r['flow']:<5} {r['alpha']:>5g} {r['beta']:>5g} {r['dim']:>2}  {r['domain']:<{wd}}  {r['exact']}"
        )
    return "\n".join(lines)


METHOD_HELP = ("a built-in method (`pdeflow methods`), package.module:function, path/to/file.py:function, or a "
               "plug-in of the entry-point group pdeflow.methods")


def _declared_continuum_name(decl) -> str:
    if decl.continuum is None:
        return "none declared (give --continuum)"
    from .approx.methods import MethodParams
    from .cases import get_case

    try:  # the name does not depend on the case for the built-ins; show it for a case the method accepts
        for case in ("w-kl-gauss-1d", "fr-kl-gauss-1d", "wfr-kl-gauss-1d"):
            problem = get_case(case)
            params = MethodParams(sigma=1.0, extra={k: 1.0 for k in decl.fixed_for_verify})
            if decl.refuse is None or not decl.refuse(problem, params):
                return decl.continuum(problem, params)[0] + (" (depends on dt)" if decl.dt_in_continuum else "")
    except ValueError as exc:
        return f"conditional: {exc}"
    return "declared"


def _methods_table(as_json: bool) -> str:
    from .approx.external import plugin_names
    from .approx.methods import BROKEN, DECLARATIONS

    rows = []
    for name, decl in DECLARATIONS.items():
        rows.append({"name": name, "summary": decl.summary, "uses": list(decl.uses),
                     "keys": {k: key.rule for k, key in (decl.keys or {}).items()},
                     "defaults": dict(decl.defaults or {}),
                     "continuum": _declared_continuum_name(decl)})
    from .approx import sums

    backends = sums.available()
    if as_json:
        return json.dumps({"methods": rows, "plugins": plugin_names(), "broken": BROKEN,
                           "kernel_backends": backends}, indent=1)
    lines = []
    for r in rows:
        lines.append(f"{r['name']:<13} {r['summary']}")
        lines.append(f"{'':<13} uses: {', '.join(r['uses'])}; own keys: "
                     + (", ".join(f"{k} ({v}; default {r['defaults'].get(k, 'unset')})" for k, v in r["keys"].items())
                        or "none"))
        lines.append(f"{'':<13} continuum: {r['continuum']}")
    for p in plugin_names():
        lines.append(f"{p:<13} (plug-in, entry point group pdeflow.methods)")
    for name, err in BROKEN.items():
        lines.append(f"(module {name} failed to import: {err})")
    lines.append("kernel sums (first usable is taken; --kernel-backend or $PDEFLOW_KERNEL_BACKEND overrides): "
                 + "; ".join(f"{k} {'available' if v is None else 'unavailable: ' + v}" for k, v in backends.items()))
    return "\n".join(lines)


def _build_parser() -> _Parser:
    parser = _Parser(prog="pdeflow", description="Reference solutions of Fisher-Rao / Wasserstein / WFR gradient flows")
    parser.add_argument("--kernel-backend", choices=("auto", "nufft", "compiled", "numpy"), default=None,
                        help="back-end of the particle methods' kernel sums (default: $PDEFLOW_KERNEL_BACKEND, else auto: "
                             "NUFFT for the Gaussian kernel in d <= 3, compiled exact sums, chunked numpy)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    p_cases = sub.add_parser("cases", help="list the built-in verification cases")
    p_cases.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    p_cases.add_argument("--markdown", action="store_true", help="print the catalogue docs/cases.md (make docs)")
    p_solve = sub.add_parser("solve", help="solve a case with the finite-element reference solver")
    p_solve.add_argument("case", help="a case name (see `pdeflow cases`)")
    p_solve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override: n, tau, T, alpha, beta, energy (kl|chi2|reverse-kl|power:p=P), scheme (frozen-mobility|hellinger-jko|bdf2), mmd_geometry (fr|mmd; mmd energy), solver (auto|direct|cg-gamg), newton_tol, newton_max_it, tau_min",
    )
    p_solve.add_argument("--out", default=None, help="output directory (default results/<case>)")
    p_solve.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p_solve.add_argument("--no-xdmf", action="store_true", help="skip the XDMF time series")
    p_solve.add_argument("--no-plots", action="store_true", help="skip snapshots.png and diagnostics.png")
    p_solve.add_argument("--allow-large", action="store_true",
                         help="run inputs beyond the resource budget (vertices, steps, particles)")
    p_solve.add_argument("--quiet", action="store_true", help="no progress bar and no report lines")
    p_solve.add_argument("--tol", type=_tol_arg, default=None, metavar="TOL",
                         help="certified solve: ladders in tau and h until the estimated L1 error at every snapshot is "
                              "<= TOL (second-order scheme; n and tau, if given, are where the ladders start)")
    p_solve.add_argument("--no-estimate", action="store_true",
                         help="without --tol: skip the error estimate (two companion solves, at 2*tau and n/2)")
    from .fv import cli as fv_cli  # --discretization, --petsc-options; the crosscheck command (issue #11)

    fv_cli.add_solve_arguments(p_solve)
    fv_cli.add_crosscheck_parser(sub)
    p_approx = sub.add_parser("approx", help="run a particle (kernel) method and compare it with the reference")
    p_approx.add_argument("case", help="a case name (see `pdeflow cases`)")
    p_approx.add_argument("--method", required=True, help=METHOD_HELP)
    p_approx.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="n_particles, lam, sigma|bandwidth, kernel, dt, T, seed, xi (a|b|c), alpha, beta; the method's own keys "
        "(`pdeflow methods`; any key for an external method, passed in params.extra); reference: n, tau",
    )
    p_approx.add_argument("--no-plots", action="store_true", help="skip particles.png")
    p_approx.add_argument("--reference", default=None, help="reuse the reference written by `pdeflow solve` in DIR")
    p_approx.add_argument("--out", default=None, help="output directory (default results/<case>-<method>)")
    p_approx.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p_approx.add_argument("--allow-large", action="store_true",
                         help="run inputs beyond the resource budget (vertices, steps, particles)")
    p_approx.add_argument("--quiet", action="store_true", help="no report lines")
    p_check = sub.add_parser("check", help="check a particle file written by any code against a reference (verdict)")
    p_check.add_argument("case", help="a case name (see `pdeflow cases`)")
    p_check.add_argument("particles", help="npz file with t (n_snap), x (n_snap, N, d) and optionally w (n_snap, N)")
    p_check.add_argument("--continuum", default="flow", metavar="NAME[:key=value,...]",
                         help="the reference: flow (default), stein, lambda-stein, lambda-fr, lambda-wfr, mmd-flow, kde-wfr, lie-split")
    p_check.add_argument("--alpha", type=float, default=0.01, help="false-alarm level over the whole file (default 0.01)")
    p_check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="case keys T, alpha, beta; n: the reference's mesh resolution")
    p_check.add_argument("--out", default=None, help="output directory (default results/<case>-check)")
    p_check.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p_check.add_argument("--no-plots", action="store_true", help="skip particles.png")
    p_check.add_argument("--allow-large", action="store_true",
                         help="run inputs beyond the resource budget (vertices, steps, particles)")
    p_check.add_argument("--quiet", action="store_true", help="no table")
    p_check.add_argument("--reference", default=None, metavar="FILE",
                         help="use the reference file written by `pdeflow export --tol` (continuum flow) instead of solving")
    p_verify = sub.add_parser("verify", help="verify a particle method against its own continuum PDE (verdict)")
    p_verify.add_argument("case", help="a case name (see `pdeflow cases`)")
    p_verify.add_argument("--method", required=True, help=METHOD_HELP)
    p_verify.add_argument("--continuum", default=None, metavar="NAME[:key=value,...]",
                          help="override the method's declared continuum (flow, stein, lambda-stein, lambda-fr, lambda-wfr, mmd-flow, "
                               "kde-wfr, lie-split)")
    p_verify.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="method keys as for approx (n_particles is set by the plan); n: the continuum's mesh resolution")
    p_verify.add_argument("--plan", default="standard", help="sweep size: quick, standard (default) or thorough")
    p_verify.add_argument("--rtol", type=float, default=0.1,
                          help="tolerance on the residual relative to how far the flow moves (default 0.1)")
    p_verify.add_argument("--out", default=None, help="output directory (default results/<case>-<method>-verify)")
    p_verify.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p_verify.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p_verify.add_argument("--allow-large", action="store_true",
                         help="run inputs beyond the resource budget (vertices, steps, particles)")
    p_verify.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p_verify.add_argument("--reference", default=None, metavar="FILE",
                          help="use the reference file written by `pdeflow export --tol` as the flow continuum")
    p_bank = sub.add_parser("bank", help="the bank of certified references of the built-in cases (build, list)")
    bank_sub = p_bank.add_subparsers(dest="bank_command", metavar="{build,list}", parser_class=_Parser)
    bank_sub.required = True
    p_build = bank_sub.add_parser("build", help="compute the missing certified references (resumable, MPI)")
    p_build.add_argument("cases", nargs="*", help="case names (default: every built-in case)")
    for d, default in ((1, "1e-6"), (2, "1e-4"), (3, "1e-3")):
        p_build.add_argument(f"--tol-{d}d", type=_tol_arg, default=None, metavar="TOL",
                             help=f"L1 tolerance of the {d}-D cases (default {default})")
    p_build.add_argument("--dir", default=None, help="bank directory (default $PDEFLOW_BANK or ~/.cache/pdeflow/bank)")
    p_build.add_argument("--allow-large", action="store_true", help="solves beyond the resource budget")
    p_build.add_argument("--quiet", action="store_true")
    p_list = bank_sub.add_parser("list", help="the bank's references with their error bars and provenance")
    p_list.add_argument("--dir", default=None)
    p_list.add_argument("--json", action="store_true")
    p_export = sub.add_parser("export", help="solve a case and write the reference as one file (npz or HDF5)")
    p_export.add_argument("case", help="a case name (see `pdeflow cases`)")
    p_export.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="case keys T, alpha, beta; without --tol also the solver keys of solve (n, tau, scheme, ...)")
    p_export.add_argument("--tol", type=float, default=None,
                          help="certified solve (bdf2) to this error tolerance, with per-snapshot error estimates")
    p_export.add_argument("--out", required=True, metavar="FILE", help="the reference file: .npz, or .h5/.hdf5 (h5py)")
    p_export.add_argument("--allow-large", action="store_true",
                          help="run inputs beyond the resource budget (vertices, steps)")
    p_export.add_argument("--quiet", action="store_true", help="no progress bar and no report lines")
    p_methods = sub.add_parser("methods", help="list the particle methods, their keys and continua")
    p_methods.add_argument("--json", action="store_true", help="print the list as JSON")
    p_study = sub.add_parser("study", help="run a convergence study (MPI task farm, resumable SQLite store)")
    p_study.add_argument("spec", help="study specification (TOML), e.g. studies/quickstart.toml")
    p_study.add_argument("--out", default=None, help="study directory (default results/<study name>)")
    p_study.add_argument("--resume", action="store_true", help="continue a study: skip the runs already stored")
    p_study.add_argument("--retry-failed", action="store_true",
                         help="resume the study and run its failed runs again (implies --resume)")
    p_study.add_argument("--force", action="store_true",
                         help="with --resume: continue although the spec differs from the stored one (pools the runs)")
    p_study.add_argument("--ranks-per-run", type=int, default=1, metavar="g",
                         help="ranks per run: the P-1 worker ranks form (P-1)/g groups (default 1)")
    p_study.add_argument("--quiet", action="store_true", help="no progress bar, no tables")
    p_report = sub.add_parser("report", help="(re)write report.html, plots and tables of a study directory")
    p_report.add_argument("dir", help="the study directory (holds study.sqlite)")
    p_mesh = sub.add_parser("mesh", help="generate the gmsh meshes of meshes/*.geo into the mesh cache")
    p_mesh.add_argument("names", nargs="*", metavar="NAME", help="mesh names (default: all); see --list")
    p_mesh.add_argument("--levels", type=int, default=3, help="number of resolutions n0, 2 n0, 4 n0, ... (default 3)")
    p_mesh.add_argument("--n0", type=int, default=12, help="coarsest resolution: cell size h = L/n0 (default 12)")
    p_mesh.add_argument("--n", type=int, nargs="+", help="explicit resolutions instead of --levels/--n0")
    p_mesh.add_argument("--force", action="store_true", help="regenerate meshes that are cached already")
    p_mesh.add_argument("--list", action="store_true", help="list the meshes and what the cache holds")
    p_mesh.add_argument("--allow-large", action="store_true", help="generate meshes beyond the vertex budget")
    return parser


def _mesh(args) -> int:
    from .shapes import SHAPES

    names = args.names or list(SHAPES)
    bad = [n for n in names if n not in SHAPES]
    if bad:
        raise _UsageError(f"unknown mesh {bad[0]!r}; known meshes: {', '.join(SHAPES)}")
    if args.n is not None:
        ns = args.n
    else:
        if args.levels < 1 or args.n0 < 2:
            raise _UsageError("--levels must be >= 1 and --n0 >= 2")
        if args.levels > 30:  # n0 * 2**29 is beyond any mesh; a list of 10**9 levels would not even be built
            raise _UsageError(f"--levels {args.levels}: at most 30")
        ns = [args.n0 * 2**k for k in range(args.levels)]
    if any(n < 2 for n in ns):
        raise _UsageError("every resolution n must be >= 2")
    vertices_max = case_registry.RESOURCE_LIMITS["vertices"]
    for name in names:  # gmsh would run for hours on n = 10**5 (the budget of solve, on the mesh's dimension)
        dim = SHAPES[name].dim
        big = [n for n in ns if (n + 1) ** dim > vertices_max]
        if big and not args.allow_large:
            raise _UsageError(f"n = {big[0]}: about {(big[0] + 1) ** dim:.3g} vertices of the {dim}-D mesh {name} "
                              f"exceed the budget of {vertices_max:.0e} (--allow-large to generate it anyway)")
    # imported on every rank: petsc4py's start-up is collective, so a rank-0-only import hangs mpirun
    from .fem import meshfiles

    if _rank() != 0:
        return 0

    if args.list:
        print(f"geometry sources: {meshfiles.source_dir()}\ncache: {meshfiles.cache_dir()}")
        for name, shape in SHAPES.items():
            cached = sorted(int(p.name.rsplit("-n", 1)[1]) for p in meshfiles.cache_dir().glob(f"{name}-n*") if p.is_dir())
            print(f"  {name:<8} {shape.dim}-D  {shape.geo:<12} {shape.description}; cached n = {cached or 'none'}")
        return 0
    print(f"{'mesh':<8} {'n':>4} {'h':>7} {'vertices':>9} {'cells':>9} {'volume error':>13}  path")
    for name in names:
        for n in ns:
            try:
                path = meshfiles.generate(name, n, force=args.force)
            except meshfiles.MeshGenerationError as exc:
                return _fail(str(exc), 1)
            m = meshfiles.meta(name, n)
            err = abs(m["volume"] - m["exact_volume"]) / m["exact_volume"]
            print(f"{name:<8} {n:>4} {m['h_target']:>7.4g} {m['vertices']:>9} {m['cells']:>9} {err:>13.2e}  {path}")
    return 0


def _plots(traj, out) -> dict:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("pdeflow: matplotlib is not installed; no plots (pip install pdeflow[plot])", file=sys.stderr)
        return {}
    from .exact import exact_solution
    from .plots import plot_diagnostics, plot_snapshots

    exact = exact_solution(traj.problem)
    paths = {"diagnostics_png": str(plot_diagnostics(traj.summary(), f"{out}/diagnostics.png"))}
    snap = plot_snapshots(traj.problem, traj.times, traj.x, traj.rho, exact, f"{out}/snapshots.png")
    if snap is not None:
        paths["snapshots_png"] = str(snap)
    return paths


def _tol_arg(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not (0 < value < 1):
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _crosscheck(args) -> int:
    from .fv.cli import run_crosscheck

    return run_crosscheck(args)


def _solver_settings(problem, solver_opts: dict, allow_large: bool) -> tuple:
    """(n, τ) popped from the validated --set options of a reference solve, with the checks that
    need several keys at once and the resource budget; the rest stays in ``solver_opts``."""
    n = solver_opts.pop("n", 64 if problem.dim == 1 else 32)
    tau = solver_opts.pop("tau", 0.01)
    if solver_opts.get("scheme") == "hellinger-jko" and problem.flow.alpha != 0:
        raise case_registry.CaseError("scheme: 'hellinger-jko' is the pure Fisher-Rao step and needs alpha = 0")
    if "tau_min" in solver_opts and solver_opts["tau_min"] > tau:
        raise case_registry.CaseError("tau_min: must not exceed tau")
    case_registry.check_budget(problem, n=n, tau=tau, tau_min=solver_opts.get("tau_min"), allow_large=allow_large)
    return n, tau


def _solve(args) -> int:
    if getattr(args, "discretization", "fe") == "fv":
        from .fv.cli import run_solve_fv

        return run_solve_fv(args)
    if getattr(args, "petsc_options", None):
        raise _UsageError("--petsc-options: only with --discretization fv")
    problem = case_registry.get_case(args.case)
    values = case_registry.parse_overrides(args.set)
    problem, solver_opts = case_registry.apply_overrides(problem, values)
    if not problem.energy_functional.local:
        return _solve_mmd(args, problem, values)
    if "mmd_geometry" in values:
        raise case_registry.CaseError(f"mmd_geometry: only for an mmd energy; case {problem.name!r} has energy "
                                      f"{problem.energy}")
    n, tau = _solver_settings(problem, solver_opts, args.allow_large)

    logging.getLogger().setLevel(logging.WARNING)  # dolfinx's JIT logs compiler lines at INFO
    comm = _import_fem()
    from .fem import SolverError, solve_reference
    from .fem.io import summary_json, write_outputs
    from .fem.meshfiles import MeshGenerationError

    out = args.out or f"results/{problem.name}"
    _check_out_dir(out)
    from .fem import certified

    try:
        if args.tol is not None:
            if solver_opts.get("scheme", "bdf2") not in certified.TIME_ORDER:
                raise case_registry.CaseError(f"--tol: scheme {solver_opts['scheme']!r} has no error estimate")
            given = {k: v for k, v in (("n0", values.get("n")), ("tau0", values.get("tau"))) if v is not None}
            opts = {k: v for k, v in solver_opts.items() if k != "scheme"}
            logger = None if args.quiet else (lambda msg: print(f"[tol {args.tol:g}] {msg}", file=sys.stderr))
            traj = certified.solve_certified(problem, args.tol, comm=comm, scheme=solver_opts.get("scheme", "bdf2"),
                                             allow_large=args.allow_large, log=logger, **given, **opts).trajectory
            n, tau = traj.params["n"], traj.params["tau"]
        else:
            traj = solve_reference(problem, n=n, tau=tau, comm=comm, progress=not args.quiet, **solver_opts)
            if not args.no_estimate and n >= 4:
                certified.estimate_error(traj, **{k: v for k, v in solver_opts.items() if k == "tau_min"})
    except (SolverError, MeshGenerationError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    try:
        paths = write_outputs(traj, out, xdmf=not args.no_xdmf)
    except OSError as exc:  # agreed on every rank by write_outputs: one line, exit 1, nobody hangs
        return _fail(f"--out {out}: {exc.strerror or exc}", EXIT_FAILED)
    with _rank0_output(comm):  # rank 0 writes and prints: a failure there is agreed on, one exit code
        if comm.rank == 0:
            _solve_report(args, traj, out, paths, n, tau, summary_json)
    return 0


def _solve_mmd(args, problem, values) -> int:
    """pdeflow solve for the MMD energy: the FR (or, with mmd_geometry=mmd, the MMD-geometry) flow of
    ½MMD²(·, π) on the mesh vertices (pdeflow/fem/mmd_flows.py; dense kernel matrix, ODE to rtol 1e-10);
    writes summary.json and snapshots.npz (t, x, rho, m), whole or not at all."""
    for key in ("tau", "scheme", "solver", "newton_tol", "newton_max_it", "tau_min"):
        if key in values:
            raise case_registry.CaseError(f"{key}: the flows of the mmd energy are vertex ODEs integrated to rtol "
                                          "1e-10 (no time step, scheme or Newton); set n and mmd_geometry only")
    if args.tol is not None:
        raise case_registry.CaseError("--tol: the flows of the mmd energy are vertex ODEs (no error ladder)")
    if problem.flow.alpha != 0:
        raise case_registry.CaseError(f"energy {problem.energy}: the reference solves the FR and MMD-geometry flows "
                                      f"of 1/2 MMD^2 (alpha = 0); case {problem.name!r} has alpha = "
                                      f"{problem.flow.alpha:g} (use --set alpha=0)")
    n = values.get("n", 64 if problem.dim == 1 else 32)
    case_registry.check_budget(problem, n=n, allow_large=args.allow_large)
    geometry = values.get("mmd_geometry", "fr")
    comm = _import_fem()
    import numpy as np

    from .fem.mmd_flows import solve_mmd_flow
    from .jsonable import jsonable_or_repr as json_default

    out = args.out or f"results/{problem.name}"
    _check_out_dir(out)
    try:
        result = solve_mmd_flow(problem, n, geometry=geometry, comm=comm)
    except ValueError as exc:
        raise case_registry.CaseError(str(exc)) from None
    summary = {"problem": problem.describe(), "solver": "mmd-vertex-ode", "geometry": geometry,
               "params": result.get("params"), "wall": result.get("wall"),
               "snapshots": [{"t": float(t), "energy": float(e), "mass": float(mass)}
                             for t, e, mass in zip(result["t"], result["energy"], result["mass"])],
               "edb_residual": result.get("edb_residual")}
    with _rank0_output(comm):
        if comm.rank == 0:
            import tempfile

            outp = Path(out)
            outp.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=outp))
            np.savez(staging / "snapshots.npz", t=result["t"], x=result["x"], rho=result["rho"], m=result["m"])
            (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default))
            (outp / "summary.json").unlink(missing_ok=True)
            os.replace(staging / "snapshots.npz", outp / "snapshots.npz")
            os.replace(staging / "summary.json", outp / "summary.json")
            staging.rmdir()
            if args.json:
                print(json.dumps(summary, default=json_default))
            elif not args.quiet:
                print(f"{problem.name} ({problem.energy}, {geometry} geometry on the vertices): n = {n}, "
                      f"1/2 MMD^2 {summary['snapshots'][0]['energy']:.3e} -> {summary['snapshots'][-1]['energy']:.3e}, "
                      f"EDB residual max {float(np.max(np.abs(summary['edb_residual']))):.1e}, wall {result.get('wall', 0):.2f} s")
                print(f"summary: {out}/summary.json\nsnapshots: {out}/snapshots.npz")
    return 0


def _solve_report(args, traj, out, paths, n, tau, summary_json) -> None:
    problem = traj.problem
    if args.no_plots:  # plots of an earlier run must not be mistaken for this run's
        for name in ("snapshots.png", "diagnostics.png"):
            Path(out, name).unlink(missing_ok=True)
    else:
        paths.update(_plots(traj, out))
    if args.json:
        print(summary_json(traj))
    elif not args.quiet:
        st = traj.summary()["statistics"]
        print(
            f"{problem.name}: n = {n}, tau = {tau:g}, {st['n_steps']} steps ({st['n_rejected']} rejected), "
            f"Newton {st['newton_mean']:.2f} mean / {st['newton_max']} max, wall {traj.wall_time:.2f} s on "
            f"{traj.mpi_size} rank(s)"
        )
        if traj.errors:
            e = traj.errors[-1]
            print(
                f"errors at t = {e['t']:g}: L1 {e['L1']:.3e}  L2 {e['L2']:.3e}  Hellinger {e['hellinger']:.3e}  "
                f"mass {e['mass_rel']:.2e}"
            )
        if traj.error_estimate:
            est = traj.error_estimate
            e = est["snapshots"][-1]
            kind = f"certified to --tol {est['tol']:g}" if est.get("certified") else "asymptotic, not certified"
            print(f"estimated error at t = {e['t']:g}: L1 {e['L1']:.3e} (time {e['L1_time']:.2e}, space "
                  f"{e['L1_space']:.2e}; {kind})")
        width = max(len(k) for k in paths)
        for key, path in paths.items():
            print(f"{key:>{width}}: {path}")


@contextmanager
def _rank0_output(comm):
    """The files and lines that rank 0 alone writes, agreed on (a full disk or a closed stdout on rank 0
    must give every rank the same exit code)."""
    with stage("write", comm):
        yield
        if comm.rank == 0 and sys.stdout is not None:
            sys.stdout.flush()  # inside the agreement: a stdout that cannot be written fails here


def _import_fem():
    """Import petsc4py and dolfinx on every rank (PETSc initializes collectively: a subset of ranks
    importing it used to hang `mpirun -n 2 pdeflow ...`), agreed on before any solver collective.
    Returns COMM_WORLD."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    with stage("import", comm):
        from petsc4py import PETSc  # noqa: F401  (the collective part first)
    with stage("import", comm):
        from . import fem  # noqa: F401
    return comm


def _check_out_dir(out) -> None:
    """An --out that exists and is not a directory is bad input: refused before any solve."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise case_registry.CaseError(f"--out {out}: exists and is not a directory")


def _json_default(obj):
    from .jsonable import jsonable_or_repr

    return jsonable_or_repr(obj)


def _write_json(path: Path, data) -> str:
    text = json.dumps(data, indent=1, default=_json_default)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return text


def _method_setup(args, problem):
    """(decl, problem, params, solver options) for --method and --set, validated before any solve."""
    from .approx import MethodParams, get_method

    try:
        decl = get_method(args.method)
    except ValueError as exc:
        raise case_registry.CaseError(f"--method: {exc}") from None
    values, extra = case_registry.parse_method_overrides(args.set, decl)
    problem, solver_opts = case_registry.apply_overrides(problem, values)
    if "sigma" in values and "bandwidth" in values:
        raise case_registry.CaseError("sigma/bandwidth: give one of them (they are the same parameter)")
    for key in values:  # a key the method never reads would be ignored silently (svgd has no lam)
        field = "sigma" if key == "bandwidth" else key
        if key in case_registry.METHOD_KEYS and field not in decl.uses:
            raise case_registry.CaseError(f"--set {key}: method {decl.name} does not use {field} "
                                          f"(it uses {', '.join(decl.uses)})")
    defaults = MethodParams()
    try:
        params = MethodParams(
            n_particles=values.get("n_particles", defaults.n_particles),
            lam=values.get("lam", defaults.lam),
            sigma=values.get("sigma", values.get("bandwidth")),
            kernel=values.get("kernel", defaults.kernel),
            dt=values.get("dt", defaults.dt),
            seed=values.get("seed", defaults.seed),
            xi=values.get("xi", defaults.xi),
            extra=extra,
        )
    except ValueError as exc:
        raise case_registry.CaseError(str(exc)) from None
    case_registry.check_budget(problem, n_particles=params.n_particles, dt=params.dt if "dt" in decl.uses else None,
                               n=solver_opts.get("n"), tau=solver_opts.get("tau"), allow_large=args.allow_large)
    if decl.refuse is not None:
        reason = decl.refuse(problem, params)
        if reason:
            raise case_registry.CaseError(f"{decl.name}: {reason}" if not reason.startswith(decl.name) else reason)
    return decl, problem, params, solver_opts


def _approx(args) -> int:
    problem = case_registry.get_case(args.case)
    decl, problem, params, solver_opts = _method_setup(args, problem)
    from . import verify

    logging.getLogger().setLevel(logging.WARNING)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    label = decl.name if decl.source == "built-in" else Path(decl.name.rpartition(":")[0]).stem
    out = Path(args.out or f"results/{problem.name}-{label}")
    _check_out_dir(out)
    if args.reference:
        try:
            reference = verify.load_reference(args.reference, problem)
        except verify.ReferenceMismatch as exc:
            raise case_registry.CaseError(str(exc)) from None
    else:
        n = solver_opts.pop("n", 400 if problem.dim == 1 else 48)
        tau = solver_opts.pop("tau", 0.005 if problem.dim == 1 else 0.01)
        from .fem import SolverError
        from .fem.meshfiles import MeshGenerationError

        try:
            reference = verify.solve_reference_for(problem, n, tau, comm)
        except (SolverError, MeshGenerationError) as exc:
            return _fail(f"reference: {exc}", EXIT_FAILED)
    solved = None if args.reference else reference["trajectory"]
    reference = comm.bcast({k: v for k, v in reference.items() if k != "trajectory"} if comm.rank == 0 else None, root=0)
    try:
        run = verify.evaluate(problem, decl, params, reference, comm=comm)
    except ValueError as exc:  # a method refusing this case/parameter combination, or an invalid result
        raise case_registry.CaseError(f"{exc}") from None
    if solved is not None:  # written once the run is accepted: a refused method leaves --out untouched
        from .fem.io import write_outputs

        write_outputs(solved, out / "reference", xdmf=False)
    with _rank0_output(comm):  # rank 0 writes and prints: a failure there is agreed on, one exit code
        if comm.rank == 0:
            import numpy as np

            traj = run["trajectory"]
            summary = {"case": problem.name, "problem": problem.describe(), "mpi_size": comm.size,
                       "method_source": decl.source,
                       "reference": str(args.reference or out / "reference"), **run["result"]}
            out.mkdir(parents=True, exist_ok=True)
            np.savez(out / ".particles.tmp.npz", t=traj.times, x=traj.x, w=traj.w)
            (out / ".particles.tmp.npz").replace(out / "particles.npz")
            text = _write_json(out / "summary.json", summary)
            png = None
            if not args.no_plots:
                from .assess.plots import plot_particles

                png = plot_particles(problem, traj.times, traj.x, traj.w, reference["x"], reference["rho"],
                                     out / "particles.png", title=f"{problem.name} / {decl.name}, N = {traj.n_particles}")
            if args.json:
                print(text)
            elif not args.quiet:
                last = summary["snapshots"][-1]
                ref = last["reference"]
                mmd = ", ".join(f"l={k}: {v:.3e}" for k, v in ref["mmd_gaussian"].items())
                print(f"{problem.name} / {decl.name}: N = {traj.n_particles}, t = {last['t']:g}")
                print(f"  to the reference: MMD {mmd}; mass error {ref['mass_error']:.2e}")
                bl = ref["boundary_layer"]
                if bl.get("measurable", True):
                    print(f"  boundary layer (width {bl['width']:g}): particle mass {bl['particles']:.4e}, reference "
                          f"{bl['reference']:.4e} ({bl['reference_fraction'] * traj.n_particles:.1f} particles' worth), "
                          f"relative error {bl['relative_error']:+.2e}")
                else:
                    print(f"  boundary layer (width {bl['width']:g}): not measurable (the reference holds "
                          f"{bl['reference_fraction']:.1e} of the mass there, below {bl['threshold']:.0e})")
                if "exact" in last:
                    print("  to the exact solution: MMD " + ", ".join(f"l={k}: {v:.3e}" for k, v in last['exact']['mmd_gaussian'].items()))
                fl = summary["mc_floor_at_T"]
                print(f"  Monte-Carlo floor (l={fl['kernel_scale']}): {fl['mean']:.3e} ± {fl['std']:.1e}")
                if "two_stage_split" in summary:
                    st = summary["two_stage_split"]["snapshots"][-1]
                    k = str(summary["metric_scales"][1])
                    print(f"  split at l={k}: particles vs mesh lambda-FRk {st['particles_vs_mesh_method']['mmd_gaussian'][k]:.3e}, "
                          f"mesh lambda-FRk vs reference {st['mesh_method_vs_reference']['mmd_gaussian'][k]:.3e}")
                print(f"  not a verdict: `pdeflow verify {problem.name} --method {args.method}` checks the method against "
                      f"its own continuum")
                print(f"  summary: {out / 'summary.json'}\n  particles: {out / 'particles.npz'}" + (f"\n  plot: {png}" if png else ""))
    return 0


def _continuum_arg(text):
    from .continua import ContinuumError, parse_continuum

    try:
        return parse_continuum(text)
    except ContinuumError as exc:
        raise case_registry.CaseError(str(exc)) from None


def _reference_file_continuum(path, problem, name, solver_opts, scales) -> tuple:
    """(fine, ε_ref per snapshot) from a reference file of `pdeflow export --tol`, for --reference of
    check and verify: the file's snapshots as the solved flow continuum, its stored MMD estimates
    (√Σ_ℓ MMD_ℓ² over the metric scales) as the reference's error.  Refused in one line (exit 2) for
    another continuum, with --set n, for a file of another case, or a file without estimates (an
    export without --tol: its error is unknown, and a check needs it)."""
    from . import verify

    if name != "flow":
        raise case_registry.CaseError(f"--reference: an exported reference is the case's own flow; it cannot stand for "
                                      f"the continuum {name!r}")
    if "n" in solver_opts:
        raise case_registry.CaseError("--set n: the reference file fixes the mesh (give --set n or --reference, not both)")
    try:
        loaded = verify.load_reference_file(path, problem)
        eps = verify.reference_file_errors(loaded["reference"], scales)
    except verify.ReferenceMismatch as exc:
        raise case_registry.CaseError(str(exc)) from None
    ref = loaded["reference"]
    fine = {k: loaded[k] for k in ("t", "x", "rho", "m")}
    fine["params"] = {**ref.params, "solver": f"reference file {path} ({ref.scheme})", "estimates": "certified (file)"}
    return fine, [float(e) for e in eps]


def _check(args) -> int:
    from .assess.check import (STATUS_EXIT, ParticleFileError, check_particles_against, load_particle_file,
                               prepare_reference)

    problem = case_registry.get_case(args.case)
    values = case_registry.parse_overrides(args.set)
    problem, solver_opts = case_registry.apply_overrides(problem, values)
    if not (0 < args.alpha < 1):
        raise case_registry.CaseError(f"--alpha: expected a number in (0, 1), got {args.alpha!r}")
    name, cparams = _continuum_arg(args.continuum)
    unknown = set(solver_opts) - {"n"}
    if unknown:
        raise case_registry.CaseError(f"--set {sorted(unknown)[0]}: check takes only n (the reference resolution) "
                                      "besides the case keys")
    if args.out:  # refused now, not by a mkdir after the whole check
        _check_out_dir(args.out)
    case_registry.check_budget(problem, n=solver_opts.get("n"), allow_large=args.allow_large)
    try:
        t, x, w = load_particle_file(args.particles, problem)  # bad files fail here, before any solve
    except ParticleFileError as exc:
        raise case_registry.CaseError(str(exc)) from None
    logging.getLogger().setLevel(logging.WARNING)
    from mpi4py import MPI

    from .assess import verify as assess_verify
    from .assess.measures import MeshMeasure
    from .continua import ContinuumError

    comm = MPI.COMM_WORLD
    scales = assess_verify.metric_scales(problem)
    if args.reference:  # an exported reference stands for the solved continuum; its estimates for ε_ref
        fine, eps = _reference_file_continuum(args.reference, problem, name, solver_opts, scales)
        n = fine["params"].get("n")
        prepared = prepare_reference(fine, scales)
    else:
        n = solver_opts.get("n") or assess_verify.default_resolution(problem, name)
        try:
            pair = assess_verify.solve_continuum_pair(problem, name, cparams, n, comm)
        except ContinuumError as exc:
            raise case_registry.CaseError(str(exc)) from None
        fine, coarse = pair["fine"], pair["coarse"]
        prepared = prepare_reference(fine, scales)  # the fine measures serve the error estimate and the test
        eps = [(measure.mmd2_to(MeshMeasure(coarse["x"], coarse["rho"][k], coarse["m"], scales))) ** 0.5 / 3.0
               for k, (measure, _) in enumerate(prepared)]
    result = check_particles_against(problem, t, x, w, fine, scales, alpha=args.alpha, reference_error=eps,
                                     prepared=prepared)
    status = result["status"]
    with _rank0_output(comm):  # rank 0 writes and prints: a failure there is agreed on, one exit code
        if comm.rank == 0:
            out = Path(args.out or f"results/{problem.name}-check")
            out.mkdir(parents=True, exist_ok=True)
            summary = {"case": problem.name, "problem": problem.describe(), "particles": str(args.particles),
                       "continuum": {"name": name, "params": cparams, "n": n, "solver": fine.get("params", {}),
                                     "reference_file": args.reference},
                       "verdict": result, "mpi_size": comm.size}
            text = _write_json(out / "summary.json", summary)
            png = None
            if not args.no_plots:
                from .assess.plots import plot_particles

                png = plot_particles(problem, t, x, w, fine["x"], fine["rho"], out / "particles.png",
                                     title=f"{problem.name}: {Path(args.particles).name} vs continuum {name}")
            if args.json:
                print(text)
            elif not args.quiet:
                print(f"{problem.name}: {Path(args.particles).name} ({x.shape[1]} particles) vs continuum {name} (n = {n})")
                print(f"  {'t':>6} {'n_eff':>8} {'MMD':>10} {'null mean':>10} {'p-value':>9} {'ref. error':>10}")
                for r in result["evidence"]["snapshots"]:
                    print(f"  {r['t']:>6g} {r['n_eff']:>8.0f} {r['mmd']:>10.3e} {r['null_mean'] ** 0.5:>10.3e} "
                          f"{r['p_value']:>9.2e} {r.get('reference_error', float('nan')):>10.2e}")
                print(f"verdict: {status} — {result['summary']} (alpha = {args.alpha:g}, Bonferroni over {len(t)} snapshots)")
                print(f"  summary: {out / 'summary.json'}" + (f"\n  plot: {png}" if png else ""))
    return STATUS_EXIT[status]


def _verify(args) -> int:
    from .assess.check import STATUS_EXIT
    from .assess.verify import PLANS, VerifyError, verify_method
    from .assess.verify import metric_scales as assess_metric_scales

    problem = case_registry.get_case(args.case)
    decl, problem, params, solver_opts = _method_setup(args, problem)
    if args.plan not in PLANS:
        raise case_registry.CaseError(f"--plan: unknown plan {args.plan!r}; choose from {', '.join(PLANS)}")
    if not (0 < args.rtol < 1):
        raise case_registry.CaseError(f"--rtol: expected a number in (0, 1), got {args.rtol!r}")
    unknown = set(solver_opts) - {"n"}
    if unknown:
        raise case_registry.CaseError(f"--set {sorted(unknown)[0]}: verify takes only n (the continuum's mesh resolution) "
                                      "besides the case and method keys")
    if any(item.partition("=")[0].strip() == "n_particles" for item in args.set):
        raise case_registry.CaseError("--set n_particles: verify sweeps N itself (--plan sets the particle numbers)")
    if args.out:  # refused now, not by a mkdir after the whole sweep
        _check_out_dir(args.out)
    continuum = _continuum_arg(args.continuum) if args.continuum else None
    plan = PLANS[args.plan]
    case_registry.check_budget(problem, n_particles=max(plan["n_particles"]),
                               dt=params.dt * min(plan["dt_factors"]) if "dt" in decl.uses else None,
                               allow_large=args.allow_large)
    logging.getLogger().setLevel(logging.WARNING)
    from mpi4py import MPI

    from .continua import ContinuumError

    comm = MPI.COMM_WORLD
    reference = None
    if args.reference:  # the file stands for the flow continuum (refused for another one in verify_method)
        fine, eps = _reference_file_continuum(args.reference, problem, "flow", solver_opts,
                                              assess_metric_scales(problem))
        reference = {"fine": fine, "eps": eps}
    try:
        result = verify_method(problem, decl, params, continuum=continuum, plan=args.plan, rtol=args.rtol,
                               n=solver_opts.get("n"), comm=comm, progress=not (args.quiet or args.json),
                               reference=reference)
    except (VerifyError, ContinuumError) as exc:
        raise case_registry.CaseError(str(exc)) from None
    verdict = result["verdict"]
    status = verdict["status"]
    ev = verdict["evidence"]
    with _rank0_output(comm):  # rank 0 writes and prints: a failure there is agreed on, one exit code
        if comm.rank == 0:
            label = decl.name if decl.source == "built-in" else Path(decl.name.rpartition(":")[0]).stem
            out = Path(args.out or f"results/{problem.name}-{label}-verify")
            out.mkdir(parents=True, exist_ok=True)
            ev["status"] = status
            summary = {"case": problem.name, "problem": problem.describe(), "method": decl.name,
                       "method_source": decl.source, "parameters": result["params"], "verdict": verdict,
                       "runs": result.get("runs"), "mpi_size": comm.size}
            text = _write_json(out / "summary.json", summary)
            pngs = []
            if not args.no_plots:
                from .approx.methods import run_approximation
                from .assess.plots import plot_particles, plot_verify_errors

                pngs.append(plot_verify_errors(ev, out / "verify_errors.png"))
                n_show = max(ev["plan"]["n_particles"])
                traj = run_approximation(problem, decl, params.with_changes(n_particles=n_show, seed=params.seed))
                cs = result["continuum_solution"]
                pngs.append(plot_particles(problem, traj.times, traj.x, traj.w, cs["x"], cs["rho"], out / "particles.png",
                                           title=f"{problem.name} / {decl.name}, N = {n_show}, vs continuum "
                                                 f"{ev['continuum']['name']}", ref_label="continuum"))
            if args.json:
                print(text)
            elif not args.quiet:
                c = ev["continuum"]
                print(f"{problem.name} / {decl.name} vs continuum {c['name']}"
                      + (f" ({', '.join(f'{k}={v}' for k, v in c['params'].items())})" if c["params"] else "")
                      + f", mesh n = {c['n']} (error estimate {ev['reference_error']['total']:.2e})")
                for note in ev["notes"]:
                    print(f"  note: {note}")
                print(f"  {'N':>6} {'dt':>9} {'seeds':>5} {'sqrt(mean E)':>13}")
                for row in ev["configs"]:
                    print(f"  {row['n_particles']:>6} {row['dt']:>9.3g} {len(row['E']):>5} {row['sqrt_mean_E']:>13.4e}")
                f = ev["fit"]
                r = ev["rate_N"]
                print(f"  fit {f['model']}: residual {f['residual']:.3e} [{f['residual_ci'][0]:.3e}, {f['residual_ci'][1]:.3e}]; "
                      f"rate in N {r['rate']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]; motion {ev['motion']:.3e}")
                print(f"verdict: {status} — {verdict['summary']}  ({ev['wall_s']:.1f} s)")
                print(f"  summary: {out / 'summary.json'}" + "".join(f"\n  plot: {p}" for p in pngs if p))
    return STATUS_EXIT[status]


def _bank(args) -> int:
    from . import bank

    if args.bank_command == "list":
        if _rank() != 0:
            return 0
        rows = bank.listing(args.dir)
        if args.json:
            print(json.dumps(rows, indent=1))
            return 0
        print(f"bank: {bank.bank_dir(args.dir)}")
        if not rows:
            print("  (empty: pdeflow bank build)")
        for r in rows:
            if r["status"] == "unreadable":
                print(f"  {r['case']:<22} unreadable  {r.get('error', '')}")
                continue
            print(f"  {r['case']:<22} {r['status']:<8} tol {r['tol']:<8g} estimate {r['estimate']:.2e}  n = {r['n']:<5} "
                  f"tau = {r['tau']:<9g} {r['wall']:7.1f} s  built {r.get('built')}  {Path(r['file']).name}")
        return 0
    names = args.cases or case_registry.case_names()
    for name in names:
        case_registry.get_case(name)  # unknown names: one line, exit 2, before any solve
    tols = {d: getattr(args, f"tol_{d}d") for d in (1, 2, 3) if getattr(args, f"tol_{d}d") is not None}
    logging.getLogger().setLevel(logging.WARNING)
    comm = _import_fem()
    from .fem import SolverError
    from .fem.meshfiles import MeshGenerationError

    try:
        done = bank.build(names, tols, args.dir, comm=comm, allow_large=args.allow_large,
                          log=None if args.quiet else print)
    except (SolverError, MeshGenerationError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    with _rank0_output(comm):
        if comm.rank == 0 and not args.quiet:
            built = sum(v == "built" for v in done.values())
            print(f"bank {bank.bank_dir(args.dir)}: {built} built, {len(done) - built} already there")
    return 0


def _export(args) -> int:
    """`pdeflow export`: solve (or, with --tol, solve certified) and write the reference file."""
    import math

    from .reference import ReferenceFileError, file_format, import_h5py

    problem = case_registry.get_case(args.case)
    values = case_registry.parse_overrides(args.set)
    problem, solver_opts = case_registry.apply_overrides(problem, values)
    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", os.sep)):
        raise case_registry.CaseError(f"--out {args.out}: is a directory; give a file name ending in .npz or .h5")
    try:
        if file_format(out) == "hdf5":
            import_h5py()
    except ReferenceFileError as exc:
        raise case_registry.CaseError(f"--out {exc}") from None
    if args.tol is not None:
        if not (math.isfinite(args.tol) and args.tol > 0):
            raise case_registry.CaseError(f"--tol: expected a positive number, got {args.tol!r}")
        if solver_opts:
            raise case_registry.CaseError(f"--set {sorted(solver_opts)[0]}: with --tol the certified solve chooses the "
                                          "mesh, the time step and the scheme (bdf2) itself")
        n = tau = None
    else:
        n, tau = _solver_settings(problem, solver_opts, args.allow_large)

    logging.getLogger().setLevel(logging.WARNING)
    comm = _import_fem()
    import datetime
    import platform

    from .fem import SolverError, solve_reference
    from .fem.export import write_reference
    from .fem.meshfiles import MeshGenerationError

    try:
        if args.tol is not None:
            from .fem.certified import solve_certified

            certified = solve_certified(problem, tol=args.tol, comm=comm, scheme="bdf2", progress=not args.quiet,
                                        allow_large=args.allow_large)
            traj, estimates = certified.trajectory, certified.estimates
            provenance = {"certified": dict(certified.provenance or {})}
        else:
            traj = solve_reference(problem, n=n, tau=tau, comm=comm, progress=not args.quiet, keep_steps=True,
                                   **solver_opts)
            estimates, provenance = None, {}
    except (SolverError, MeshGenerationError) as exc:
        return _fail(str(exc), EXIT_FAILED)
    provenance.update({"command": "pdeflow " + " ".join(sys.argv[1:] if sys.argv[1:2] == ["export"] else
                                                        ["export", args.case]),
                       "tol": args.tol, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "python": platform.python_version(), "mpi_size": comm.size, "wall_time": traj.wall_time})
    try:
        write_reference(out, traj, estimates=estimates, provenance=provenance)
    except OSError as exc:  # agreed on every rank by write_reference: one line, exit 1, nobody hangs
        return _fail(f"--out {out}: {exc.strerror or exc}", EXIT_FAILED)
    with _rank0_output(comm):
        if comm.rank == 0 and not args.quiet:
            p = traj.params
            print(f"{problem.name}: exported {len(traj.x)} vertices, {len(traj.step_times) - 1} steps of {p['scheme']} "
                  f"(n = {p.get('n')}, tau = {p.get('tau')}), {len(traj.times)} snapshots"
                  + (f", error estimates for tol = {args.tol:g}" if estimates is not None else ", no error estimates")
                  + f"; wall {(provenance.get('certified') or {}).get('wall', traj.wall_time):.2f} s on {comm.size} rank(s)")
            print(f"  reference: {out} ({out.stat().st_size / 1e6:.3g} MB; load it with pdeflow.Reference, no dolfinx)")
    return 0


def _print_orders(out_dir) -> None:
    from .study.report import orders_table
    from .study.store import Store

    store = Store(Path(out_dir) / "study.sqlite")
    try:
        rows = orders_table(store)
    finally:
        store.close()
    if rows:
        print(f"{'group':<16} {'case':<20} {'param':<12} {'metric':<14} {'levels':>6}  order [95% CI]")
        for r in rows:
            if not (r["order"] == r["order"]):  # nan: no fit (e.g. a metric at round-off level)
                continue
            print(f"{r['group']:<16} {r['case']:<20} {r['param']:<12} {r['metric']:<14} {r['levels']:>6}  "
                  f"{r['order']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")


def _study(args) -> int:
    from .study.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        raise case_registry.CaseError(str(exc)) from None
    out = Path(args.out or f"results/{spec.name}")
    _check_out_dir(out)
    args.resume = args.resume or args.retry_failed
    if (out / "study.sqlite").exists() and not args.resume:
        raise case_registry.CaseError(f"--out {out}: it already holds a study; use --resume to continue it or another --out")
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if args.resume and (out / "study.sqlite").exists() and not args.force:
        from .study.runner import spec_change
        from .study.store import StoreError

        change = None
        with stage("store", comm):  # rank 0 alone reads the store (a corrupt one is bad input, on every rank)
            if comm.rank == 0:
                try:
                    change = spec_change(spec, out / "study.sqlite")
                except StoreError as exc:
                    raise case_registry.CaseError(f"--resume {out}: {exc}") from None
        change = comm.bcast(change, root=0)
        if change:
            raise case_registry.CaseError(f"--resume {out}: {change}; use another --out, or --force to pool them")
    if args.ranks_per_run < 1:
        raise case_registry.CaseError("--ranks-per-run: expected an integer >= 1")
    logging.getLogger().setLevel(logging.WARNING)
    from .study.runner import run_study

    if comm.size > 1 and (comm.size - 1) % args.ranks_per_run != 0:
        raise case_registry.CaseError(
            f"--ranks-per-run {args.ranks_per_run}: the {comm.size - 1} worker ranks (all but the dispatcher, rank 0) "
            f"must split into groups of that size")
    summary = run_study(spec, out, comm=comm, ranks_per_run=args.ranks_per_run, resume=args.resume,
                        progress=not args.quiet, retry_failed=args.retry_failed)
    with _rank0_output(comm):
        if comm.rank == 0:
            from .study.report import make_report

            html = make_report(out)
            if not args.quiet:
                print(f"study {spec.name}: {summary['done']} runs done, {summary['failed']} failed, {summary['skipped']} "
                      f"already stored; wall {summary['wall']:.1f} s on {comm.size} rank(s)")
                _print_orders(out)
                print(f"report: {html}")
    return 0


def _report(args) -> int:
    if not (Path(args.dir) / "study.sqlite").exists():
        raise case_registry.CaseError(f"{args.dir}: no study.sqlite here (run pdeflow study first)")
    _check_store_file(Path(args.dir) / "study.sqlite")
    if _rank() != 0:  # under mpirun only rank 0 writes the report (it used to be written by every rank)
        return 0
    from .study.report import make_report

    html = make_report(args.dir)
    _print_orders(args.dir)
    print(f"report: {html}")
    return 0


def _check_store_file(path: Path) -> None:
    """A study.sqlite that is no study store is bad input (exit 2), read-only: opening it as a Store
    would write the schema into an empty file, or a report into a directory of that name."""
    import sqlite3

    if not path.is_file():
        raise case_registry.CaseError(f"{path}: not a file (a study store is the file study.sqlite)")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if head != b"SQLite format 3\x00":
            raise case_registry.CaseError(f"{path}: not an SQLite database" + (" (empty file)" if not head else ""))
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:
        raise case_registry.CaseError(f"{path}: unreadable study store ({type(exc).__name__}: {exc})") from None
    if not {"runs", "study"} <= tables:
        raise case_registry.CaseError(f"{path}: an SQLite database without the tables of a study store")


class _BelowWarning(logging.Filter):
    """Drops records below WARNING at the root logger.  A level is not enough: setuptools, used by the
    FFCx JIT on a fresh machine (empty cache), sets the root level back to INFO while it compiles and
    logs every compiler line there, which turned a one-line error into thirty lines on stderr."""

    def filter(self, record) -> bool:
        return record.levelno >= logging.WARNING


def _dispatch(args) -> int:
    if args.command == "cases":
        if _rank() == 0:
            if args.markdown:
                from .catalogue import case_catalogue_markdown

                sys.stdout.write(case_catalogue_markdown())
            else:
                print(_cases_table(args.json))
        return 0
    if args.command == "methods":
        if _rank() == 0:
            print(_methods_table(args.json))
        return 0
    commands = {"approx": _approx, "check": _check, "verify": _verify, "study": _study, "report": _report,
                "export": _export, "bank": _bank,
                "mesh": _mesh, "solve": _solve, "crosscheck": _crosscheck}
    return commands[args.command](args)


def _check_kernel_backend_env() -> None:
    from .approx import sums

    try:
        sums.requested()
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def main(argv=None) -> int:
    root = logging.getLogger()
    if not any(isinstance(f, _BelowWarning) for f in root.filters):
        root.addFilter(_BelowWarning())
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.kernel_backend is not None:  # the environment carries it to every rank and study worker
            os.environ["PDEFLOW_KERNEL_BACKEND"] = args.kernel_backend
        _check_kernel_backend_env()
        code = _dispatch(args)
        if sys.stdout is not None:  # None: started with stdout closed (>&-), print() then writes nothing
            sys.stdout.flush()  # here, not at interpreter exit: a stdout that cannot be written is caught below
        return code
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except case_registry.CaseError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:  # `pdeflow cases | head`
        _silence_stdout()
        return 0
    except OSError as exc:  # an output that cannot be written: stdout to /dev/full or closed, a full disk
        _silence_stdout()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _fail(f"cannot write the output{where}: {exc.strerror or exc}", EXIT_FAILED)
    except Exception as exc:  # noqa: BLE001 — an internal error: its cause in one line, the same exit code on
        # every rank (pdeflow.agreement raises a peer's failure everywhere); the traceback on request
        if os.environ.get("PDEFLOW_TRACEBACK"):
            raise
        text = str(exc).splitlines()[0] if str(exc) else ""
        return _fail(f"{type(exc).__name__}: {text} (PDEFLOW_TRACEBACK=1 shows the traceback)", EXIT_FAILED)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so that the interpreter's final flush of a broken stdout cannot turn
    the one-line error into a traceback."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
