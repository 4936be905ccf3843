"""Failure agreement under MPI: one mechanism for every stage that can fail on some ranks only.

A collective that one rank never reaches hangs the job: the failing rank sits in ``MPI_Finalize``
at exit and its peers in the collective (a cluster allocation burnt, no message).  So every stage
whose work can raise on a subset of ranks — imports, the JIT compile of a form, the set-up of a
solve, a time step, rank-0 file and store writes, a run inside a group — ends in :func:`agree`
before the next collective:

* every rank passes its local exception (or None); one ``allreduce`` of a flag when nothing failed
  (a few microseconds), an ``allgather`` of the failures only when something did;
* if any rank failed, **every** rank raises: the failing rank its own exception, the others the
  same exception type rebuilt from the lowest failing rank's message (``OSError`` with its errno),
  so the same ``except`` clause runs everywhere and every rank exits with the same code; the
  message names the rank it came from when that is not rank 0, and only rank 0 prints it.

:func:`stage` wraps a block in that agreement.  It is only sound where the block's work between
its last collective and the agreement is local — true of imports, a compile, a rank-0 write.  Inside
a time step, where peers may be waiting in a PETSc collective that the failing rank will never
reach, agreement is impossible; there :func:`abort_on_unexpected` prints the one line and calls
``MPI_Abort`` (exit 1 for the whole job, no hang), while the outcomes that solvers decide from
global reductions (a Newton failure, a diverged Krylov solve) pass through to the per-step agreement.

Fault injection (tests/reliability): ``PDEFLOW_FAULT="stage:rank[:kind[:count]]"`` (several,
comma-separated) makes world rank ``rank`` fail at the ``count``-th time (default: every time) it
reaches the injection point of ``stage``; ``kind`` is ``error`` (RuntimeError, default),
``oserror`` (ENOSPC, as from a full disk) or ``nan`` (read by the caller through :func:`fault`:
a step's local values become NaN).  The stages with injection points are listed in
:data:`STAGES`.
"""
from __future__ import annotations

import errno as _errno
import importlib
import os
import sys
from contextlib import contextmanager

FAULT_ENV = "PDEFLOW_FAULT"

# every injection point in the package, with where it sits (tests/reliability walks this table)
STAGES = {
    "import": "cli: after importing petsc4py/dolfinx on every rank, before the first solver collective",
    "jit": "fem/compat.form: after the JIT compile of a form (each rank compiles or loads its own)",
    "setup": "fem/reference.solve_reference: mesh, spaces, forms and solver objects built",
    "step": "fem/reference.solve_reference: the end of one time-step attempt",
    "newton": "fem/scheme: inside a Newton iteration, between two solver collectives (abort path)",
    "write": "fem/io.write_outputs: rank 0 writes snapshots.npz and summary.json",
    "xdmf": "fem/io.write_outputs: the collective XDMF write",
    "publish": "fem/io.write_outputs: rank 0 moves the finished outputs into --out (summary.json last)",
    "store": "study/runner: rank 0 commits a result to the SQLite store",
    "run": "study/runner.execute: the set-up of one run inside its group",
}

_KINDS = ("error", "oserror", "nan")
_counts: dict = {}


def _world_rank() -> int:
    try:
        from mpi4py import MPI

        return MPI.COMM_WORLD.rank
    except ImportError:  # pragma: no cover - mpi4py is a dependency
        return 0


def _faults():
    text = os.environ.get(FAULT_ENV, "").strip()
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) < 2 or parts[0] not in STAGES or not parts[1].isdigit() or (
                len(parts) > 2 and parts[2] not in _KINDS) or (len(parts) > 3 and not parts[3].isdigit()):
            raise ValueError(f"{FAULT_ENV}={text!r}: expected stage:rank[:kind[:count]] with stage in "
                             f"{', '.join(STAGES)} and kind in {', '.join(_KINDS)}")
        out.append((parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "error",
                    int(parts[3]) if len(parts) > 3 else None))
    return out


def fault(name: str):
    """The kind of fault injected at this passage through stage ``name`` on this rank, or None."""
    if FAULT_ENV not in os.environ:
        return None
    rank = _world_rank()
    hits = [(kind, count) for stage_, r, kind, count in _faults() if stage_ == name and r == rank]
    if not hits:
        return None
    _counts[name] = _counts.get(name, 0) + 1
    for kind, count in hits:
        if count is None or count == _counts[name]:
            return kind
    return None


def inject(name: str, kind="passage") -> None:
    """Raise the fault injected at stage ``name`` on this rank, if any (``nan`` is for the caller).
    ``kind``: the fault already read by the caller with :func:`fault` at this passage."""
    if kind == "passage":
        kind = fault(name)
    if kind == "error":
        raise RuntimeError(f"injected fault at stage {name!r}")
    if kind == "oserror":
        raise OSError(_errno.ENOSPC, os.strerror(_errno.ENOSPC), f"<injected at stage {name!r}>")


def _describe(exc: BaseException):
    if isinstance(exc, OSError):
        args = (exc.errno, exc.strerror or str(exc), exc.filename)
    else:
        args = (str(exc).splitlines()[0][:2000] if str(exc) else type(exc).__name__,)
    return type(exc).__module__, type(exc).__qualname__, args


def _rebuild(described, rank: int) -> BaseException:
    module, qualname, args = described
    where = f" (on rank {rank})" if rank != 0 else ""
    try:
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError
        if issubclass(cls, OSError):
            return cls(args[0], f"{args[1]}{where}", args[2]) if args[0] is not None else cls(f"{args[1]}{where}")
        return cls(f"{args[0]}{where}")
    except Exception:  # noqa: BLE001 — a type that cannot be rebuilt from its message
        return AgreedError(f"{qualname}: {args[-1] if len(args) == 1 else args[1]}{where}")


class AgreedError(RuntimeError):
    """A peer's failure whose exception type could not be rebuilt on this rank."""


def agree(comm, error, stage_name: str = "") -> None:
    """Collective over ``comm``: if ``error`` is not None on any rank, raise on every rank.

    The failing rank re-raises ``error`` itself; the others raise the lowest failing rank's
    exception rebuilt (same type, its message).  Serial (``comm`` None or of size 1): ``error`` is
    re-raised as it is.
    """
    if comm is None or comm.size == 1:
        if error is not None:
            raise error
        return
    from mpi4py import MPI

    if not comm.allreduce(1 if error is not None else 0, op=MPI.MAX):
        return
    described = comm.allgather(_describe(error) if error is not None else None)
    if error is not None:
        raise error
    rank = next(r for r, d in enumerate(described) if d is not None)
    raise _rebuild(described[rank], rank)


@contextmanager
def stage(name: str, comm, inject_at_end: bool = True):
    """Run the block, pass its injection point (at its end, unless the block places it itself), then
    agree over ``comm`` (see the module docstring)."""
    error = None
    try:
        yield
        if inject_at_end:
            inject(name)
    except Exception as exc:  # noqa: BLE001 — agreed on, then re-raised on every rank
        error = exc
    agree(comm, error, name)


def abort_with_message(comm, exc: BaseException, where: str) -> None:
    """Last resort where agreement is impossible (see the module docstring): one line, MPI_Abort(1)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    print(f"pdeflow: error: {type(exc).__name__} on rank {_world_rank()} {where}: {message}; "
          f"aborting the MPI job (its peers may be waiting in a collective it will not reach)", file=sys.stderr, flush=True)
    comm.Abort(1)


@contextmanager
def abort_on_unexpected(comm, expected: tuple, where: str):
    """Inside a block that holds solver collectives: exceptions of the ``expected`` types (decided
    from global reductions, hence raised on every rank) pass; any other aborts the job under MPI."""
    try:
        yield
    except expected:
        raise
    except Exception as exc:  # noqa: BLE001
        if comm is None or comm.size == 1:
            raise
        abort_with_message(comm, exc, where)
