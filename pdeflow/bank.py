"""The reference bank: certified references of the built-in cases, computed once and cached
(``pdeflow bank build``, ``pdeflow bank list``; issue #10).

Each entry is an exported reference file (pdeflow.fem.export, read by pdeflow.Reference) named
``<case>-<key>.npz`` in the bank directory (``$PDEFLOW_BANK``, else ``$XDG_CACHE_HOME/pdeflow/bank``,
else ``~/.cache/pdeflow/bank``).  The key pins the entry: the first 12 hex digits of the SHA-256 of
the case definition (``Problem.describe()``), the scheme, the tolerance, the estimator and the file
format version.  A case whose definition changed, or a bank built by another estimator, has another
key: its old file is listed as *stale* and never returned by :func:`lookup`, and ``bank build``
replaces it.  ``bank build`` is resumable (an entry already there is skipped; files appear whole,
written under a temporary name) and runs under MPI (each solve on all ranks).

Stated tolerances (L1, at every snapshot): :data:`DEFAULT_TOL` — 1-D 1e-6, 2-D 1e-4, 3-D 1e-3.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DEFAULT_TOL = {1: 1e-6, 2: 1e-4, 3: 1e-3}
SCHEME = "bdf2"
# the estimator of pdeflow.fem.certified, spelled out here so that this module imports without
# dolfinx; tests/unit/test_bank.py checks it against certified's constants (a change of the
# estimator changes every key: the old entries become stale)
ESTIMATOR_ID = "richardson tau-order 2, h-order 2, safety 2"


def bank_dir(path=None) -> Path:
    if path:
        return Path(path)
    if os.environ.get("PDEFLOW_BANK"):
        return Path(os.environ["PDEFLOW_BANK"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pdeflow" / "bank"


def entry_key(problem, tol: float) -> str:
    from .reference import FORMAT_NAME, FORMAT_VERSION

    text = json.dumps({"case": problem.describe(), "scheme": SCHEME, "tol": float(tol), "estimator": ESTIMATOR_ID,
                       "format": [FORMAT_NAME, FORMAT_VERSION]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def entry_path(problem, tol: float, directory=None) -> Path:
    return bank_dir(directory) / f"{problem.name}-{entry_key(problem, tol)}.npz"


def lookup(problem, tol=None, directory=None):
    """The bank's current file for ``problem`` at ``tol`` (default: the stated tolerance of its
    dimension), or None — never a stale one."""
    path = entry_path(problem, DEFAULT_TOL[problem.dim] if tol is None else tol, directory)
    return path if path.is_file() else None


def listing(directory=None) -> list:
    """One row per file in the bank: case, status (current / stale / unreadable), tol, the largest
    estimated L1 error, n, τ, wall time, file."""
    from .cases import case_names, get_case
    from .reference import Reference, ReferenceFileError

    rows = []
    names = set(case_names())
    for path in sorted(bank_dir(directory).glob("*.npz")):
        case, _, key = path.stem.rpartition("-")
        row = {"case": case, "file": str(path), "status": "unreadable"}
        try:
            ref = Reference(path)
        except (ReferenceFileError, OSError, ValueError) as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        prov = ref.provenance or {}
        tol = prov.get("tol")
        row.update({"tol": tol, "n": prov.get("n"), "tau": prov.get("tau"), "wall": prov.get("wall"),
                    "estimate": max((e["L1"] for e in (ref.estimates or [])[1:]), default=None),
                    "built": prov.get("built")})
        current = case in names and tol is not None and entry_key(get_case(case), tol) == key
        row["status"] = "current" if current else "stale"
        rows.append(row)
    return rows


def build(cases, tol_by_dim=None, directory=None, comm=None, allow_large=False, log=print) -> dict:
    """Build the missing entries (collective over ``comm``); returns {case: "built" | "present"}.
    Stale files of a case are removed once its current entry is written."""
    import time

    from mpi4py import MPI

    from .agreement import stage
    from .cases import get_case
    from .fem.certified import solve_certified
    from .fem.export import write_reference

    comm = comm or MPI.COMM_WORLD
    tols = {**DEFAULT_TOL, **(tol_by_dim or {})}
    directory = bank_dir(directory)
    with stage("write", comm):
        if comm.rank == 0:
            directory.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in cases:
        problem = get_case(name)
        tol = tols[problem.dim]
        path = entry_path(problem, tol, directory)
        if comm.bcast(path.is_file() if comm.rank == 0 else None, root=0):
            done[name] = "present"
            continue
        t0 = time.perf_counter()
        result = solve_certified(problem, tol, comm=comm, allow_large=allow_large, exact=None)
        provenance = dict(result.provenance, built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          key=entry_key(problem, tol), case_name=name)
        write_reference(path, result.trajectory, estimates=result.estimates, provenance=provenance)
        with stage("write", comm):
            if comm.rank == 0:
                for old in directory.glob(f"{name}-*.npz"):
                    if old != path and old.stem.rpartition("-")[0] == name:
                        old.unlink()
        done[name] = "built"
        if log is not None and comm.rank == 0:
            est = max(e["L1"] for e in result.estimates[1:])
            log(f"{name}: tol {tol:g}, estimate {est:.2e}, n = {result.provenance['n']}, tau = "
                f"{result.provenance['tau']:g}, {time.perf_counter() - t0:.1f} s -> {path}")
    return done
