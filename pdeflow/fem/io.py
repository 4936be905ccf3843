"""Outputs of a reference solve: summary.json, snapshots.npz (rank 0) and an XDMF time series.

snapshots.npz holds ``t`` (n_snap), ``x`` (n_dof × d vertex coordinates in lexicographic order,
independent of the number of ranks), ``rho`` (n_snap × n_dof nodal densities in that order) and
``m`` (n_dof lumped masses m_i = ∫ψ_i: the vertex-quadrature weights, so that Σ_i m_i ρ_i g(x_i)
approximates ∫ρ g to O(h²) without dolfinx — used by pdeflow.compare).
The XDMF file (solution.xdmf + .h5) is written collectively and opens in ParaView.
Files are written to a temporary name and renamed, so an interrupted run leaves no half file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import compat
from .reference import Trajectory


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj)}")


def summary_json(traj: Trajectory) -> str:
    return json.dumps(traj.summary(), indent=1, default=_json_default, allow_nan=True)


def write_outputs(traj: Trajectory, out_dir, xdmf: bool = True) -> dict:
    """Write the three outputs; collective over the trajectory's communicator."""
    comm = traj.space.comm
    out = Path(out_dir)
    paths = {"summary": out / "summary.json", "snapshots": out / "snapshots.npz", "xdmf": out / "solution.xdmf"}
    masses = traj.space.gather(traj.space.lumped_mass)  # collective
    error = None
    if comm.rank == 0:
        tmps = [out / ".snapshots.tmp.npz", out / ".summary.tmp.json"]
        try:
            out.mkdir(parents=True, exist_ok=True)
            np.savez(tmps[0], t=traj.times, x=traj.x, rho=traj.rho, m=masses)
            os.replace(tmps[0], paths["snapshots"])
            tmps[1].write_text(summary_json(traj))
            os.replace(tmps[1], paths["summary"])
        except OSError as exc:  # read-only, disk full, a file in the way: no half file, and tell every rank
            for tmp in tmps:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
            error = (exc.errno, exc.strerror or str(exc), str(exc.filename or out))
    # agreement before the next collective (the XDMF write): a rank-0 failure used to hang the others
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(error[0], error[1], error[2])
    if xdmf:
        space = traj.space
        u = space.function(name="rho")
        with compat.xdmf_file(comm, str(paths["xdmf"])) as f:
            f.write_mesh(space.mesh)
            for t, values in zip(traj.times, traj.owned_snapshots):
                compat.set_owned(u, values)
                f.write_function(u, float(t))
    return {k: str(v) for k, v in paths.items()}
