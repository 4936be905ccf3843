"""`write_reference`: a reference solve as one self-describing file (npz, or HDF5 via h5py), read
back without dolfinx by :class:`pdeflow.Reference` (the layout is in :mod:`pdeflow.reference`).

Collective over the trajectory's communicator (the cells and masses are gathered); rank 0 writes
to a temporary name in the target directory and renames it into place (os.replace), so the file
appears whole or not at all; a failure on rank 0 (full disk, read-only directory) is agreed on
and raised on every rank (:func:`pdeflow.agreement.stage`, stage ``write``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..agreement import inject, stage
from ..jsonable import jsonable_or_repr as _json_default
from ..reference import FORMAT_NAME, FORMAT_VERSION, TIME_ORDER, ReferenceFileError, file_format, import_h5py


def _dumps(obj) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=True)


def reference_data(traj, cells, masses, estimates=None, provenance=None) -> dict:
    """The entries of the file (rank 0: the gathered arrays of ``traj``)."""
    if traj.step_rho is None or traj.step_times is None:
        raise ValueError("the trajectory has no stored steps: solve it with keep_steps=True to export it")
    scheme = traj.params["scheme"]
    summary = traj.summary()
    solve = {k: summary[k] for k in ("statistics", "errors", "initial", "rejected_steps", "wall_time", "mpi_size")}
    return {
        "format": FORMAT_NAME,
        "format_version": np.int64(FORMAT_VERSION),
        "x": np.asarray(traj.x, float),
        "cells": np.asarray(cells, np.int64),
        "m": np.asarray(masses, float),
        "times": np.asarray(traj.times, float),
        "rho": np.asarray(traj.rho, float),
        "step_times": np.asarray(traj.step_times, float),
        "step_rho": np.asarray(traj.step_rho, float),
        "scheme": scheme,
        "time_order": np.int64(TIME_ORDER.get(scheme, 1)),
        "case": _dumps(traj.problem.describe()),
        "params": _dumps(traj.params),
        "versions": _dumps({**traj.versions, "pdeflow": __version__}),
        "estimates": _dumps(estimates),
        "provenance": _dumps(provenance or {}),
        "solve": _dumps(solve),
    }


def _write_npz(fileobj, data: dict) -> None:
    np.savez(fileobj, **{k: (np.array(v) if isinstance(v, str) else v) for k, v in data.items()})


def _write_hdf5(path: str, data: dict) -> None:
    h5py = import_h5py()
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if isinstance(v, (str, np.integer)):
                f.attrs[k] = v
            else:
                f.create_dataset(k, data=v, compression="gzip", compression_opts=4)


def write_atomic(path, data: dict) -> Path:
    """Write ``data`` to ``path`` (format from the suffix) through a temporary file in the same
    directory, renamed into place; the temporary file is removed on failure."""
    path = Path(path)
    kind = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if kind == "npz":
            with os.fdopen(fd, "wb") as f:
                _write_npz(f, data)
        else:
            os.close(fd)
            _write_hdf5(tmp, data)
        inject("write")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_reference(path, traj, estimates=None, provenance=None) -> Path:
    """Export ``traj`` (solved with ``keep_steps=True``) to ``path`` (.npz, or .h5/.hdf5 with h5py);
    collective over ``traj.space.comm`` (module docstring).  ``estimates``: one dict per snapshot
    (t = 0 included) or None; ``provenance``: a JSON-able dict.  Raises ReferenceFileError (a bad
    name or no h5py), ValueError (no stored steps) or OSError on every rank."""
    comm = traj.space.comm
    if file_format(path) == "hdf5":  # the same answer on every rank, before any collective
        import_h5py()
    if estimates is not None and len(estimates) != len(traj.times):
        raise ValueError(f"estimates: {len(estimates)} entries for {len(traj.times)} snapshots")
    cells = traj.space.gathered_cells()  # collective
    masses = traj.space.gather(traj.space.lumped_mass)  # collective
    with stage("write", comm, inject_at_end=False):
        if comm.rank == 0:
            write_atomic(path, reference_data(traj, cells, masses, estimates, provenance))
    return Path(path)


__all__ = ["write_reference", "write_atomic", "reference_data", "ReferenceFileError"]
