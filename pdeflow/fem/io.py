"""Outputs of a reference solve: summary.json, snapshots.npz (rank 0) and an XDMF time series.

snapshots.npz holds ``t`` (n_snap), ``x`` (n_dof × d vertex coordinates in lexicographic order,
independent of the number of ranks), ``rho`` (n_snap × n_dof nodal densities in that order) and
``m`` (n_dof lumped masses m_i = ∫ψ_i: the vertex-quadrature weights, so that Σ_i m_i ρ_i g(x_i)
approximates ∫ρ g to O(h²) without dolfinx — used by pdeflow.compare).
The XDMF file (solution.xdmf + .h5) is written collectively and opens in ParaView.
Outputs appear whole or not at all (see :func:`write_outputs`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..agreement import abort_with_message, inject, stage
from . import compat
from .reference import Trajectory
from ..jsonable import jsonable as _json_default


def summary_json(traj: Trajectory) -> str:
    return json.dumps(traj.summary(), indent=1, default=_json_default, allow_nan=True)


OUTPUT_NAMES = ("snapshots.npz", "solution.xdmf", "solution.h5", "summary.json")  # summary.json last


def write_outputs(traj: Trajectory, out_dir, xdmf: bool = True) -> dict:
    """Write summary.json, snapshots.npz and (``xdmf``) solution.xdmf/.h5; collective over the
    trajectory's communicator.

    Whole or not at all: everything is written into a staging directory ``out/.partial-*`` (rank 0
    for the numpy/JSON files, collectively for the XDMF pair), and only when all of it is there are
    the files moved into ``out`` — after the outputs of an earlier run there are removed, summary.json
    first and last back in, so a directory holding summary.json holds a complete result (readers
    such as ``--reference`` rely on it).  A failure at any stage (disk full, read-only, on any rank)
    is agreed on by every rank (pdeflow.agreement), removes the staging directory and raises the
    OSError everywhere.
    """
    comm = traj.space.comm
    out = Path(out_dir)
    masses = traj.space.gather(traj.space.lumped_mass)  # collective
    staging = None
    try:
        with stage("write", comm):
            if comm.rank == 0:
                out.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
                np.savez(staging / "snapshots.npz", t=traj.times, x=traj.x, rho=traj.rho, m=masses)
                (staging / "summary.json").write_text(summary_json(traj))
        staging = Path(comm.bcast(str(staging) if comm.rank == 0 else None, root=0))
        if xdmf:
            with stage("xdmf", comm):  # before the HDF5 collectives: see _check_room
                if comm.rank == 0:
                    _check_room(staging, _xdmf_bytes(traj))
            with stage("xdmf", comm):
                _write_xdmf(traj, staging / "solution.xdmf")
        with stage("publish", comm, inject_at_end=False):
            if comm.rank == 0:
                _publish(staging, out)
    except BaseException:
        if comm.rank == 0 and staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    paths = {"summary": out / "summary.json", "snapshots": out / "snapshots.npz"}
    if xdmf:
        paths["xdmf"] = out / "solution.xdmf"
    return {k: str(v) for k, v in paths.items()}


def _xdmf_bytes(traj: Trajectory) -> int:
    """An upper estimate of the XDMF pair's size: float64 geometry (3 components) and values, int64
    topology, and HDF5's metadata per dataset (an over-estimate: 150 KB for the 120 KB written at
    n = 2000 in 1-D with 6 snapshots)."""
    space = traj.space
    n_v = space.n_global
    n_c = compat.n_cells_global(space.mesh)
    n_snap = len(traj.times)
    return 8 * (3 * n_v + (space.dim + 1) * n_c + n_snap * n_v) + 4096 * (n_snap + 2)


def _check_room(directory: Path, needed: int) -> None:
    """A full disk met inside parallel HDF5 cannot be agreed on (one rank's write fails inside a
    collective that its peers wait in: the job hung), so the room is checked on rank 0 before the
    collective write starts.  A disk that fills up during the write from elsewhere is not covered."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the XDMF output needs about "
                                    f"{needed / 1e6:.2g} MB, {free / 1e6:.2g} MB free; --no-xdmf skips it)",
                      str(directory))


def _write_xdmf(traj: Trajectory, path: Path) -> None:
    """The XDMF pair, written collectively.  HDF5 reports a failed write (a full disk) by printing
    its error stack from C on stderr (forty lines) and dolfinx by a RuntimeError: the C-level
    stderr is held while writing — shown as it was if the write succeeds — and a failure becomes
    the OSError that HDF5 saw (its errno), so the CLI says it in one line."""
    space = traj.space
    u = space.function(name="rho")
    error = None
    with _held_c_stderr() as held:
        try:
            with compat.xdmf_file(traj.space.comm, str(path)) as f:
                f.write_mesh(space.mesh)
                for t, values in zip(traj.times, traj.owned_snapshots):
                    compat.set_owned(u, values)
                    f.write_function(u, float(t))
        except RuntimeError as exc:
            held.swallow = True
            found = re.search(r"errno = (\d+)", held.text())
            code = int(found.group(1)) if found else errno.EIO
            error = OSError(code, os.strerror(code) if found else f"the XDMF/HDF5 write failed ({exc})", str(path))
    if error is not None:  # stderr is back
        if traj.space.comm.size > 1:
            # inside parallel HDF5 the peers may wait in a collective this rank will not reach
            abort_with_message(traj.space.comm, error, "while writing the XDMF output")
        raise error


class _HeldStderr:
    def __init__(self, file):
        self.file, self.swallow = file, False

    def text(self) -> str:
        self.file.seek(0)
        return self.file.read().decode(errors="replace")


@contextlib.contextmanager
def _held_c_stderr():
    """fd 2 goes to a temporary file for the block (C libraries write there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        held = _HeldStderr(tmp)
        os.dup2(tmp.fileno(), 2)
        try:
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not held.swallow:
                text = held.text()
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


def _publish(staging: Path, out: Path) -> None:
    """Move the finished outputs from ``staging`` into ``out`` (same file system: renames)."""
    inject("publish")
    for name in reversed(OUTPUT_NAMES):  # an earlier run's summary.json goes first
        (out / name).unlink(missing_ok=True)
    for name in OUTPUT_NAMES:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
    staging.rmdir()
    for left in out.glob(".partial-*"):  # left by a run that was killed while writing
        shutil.rmtree(left, ignore_errors=True)
