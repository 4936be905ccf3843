"""Outputs of a finite-volume solve, in the formats of the FE solve (README "Outputs"):

* ``summary.json`` — :meth:`FVTrajectory.summary` (``discretization: "fv"``; parameters n, h, tol,
  ts_type, ts_options, mesh; statistics n_steps, n_rejected, snes_iterations, energy_increase_max,
  mass_drift_rel_max, rho_min_rel; errors per snapshot as for FE; per-step t, tau, energy, mass);
* ``snapshots.npz`` — ``t`` (n_snap), ``x`` (N, d), ``rho`` (n_snap, N), ``m`` (N,) in the
  lexicographic order (first coordinate slowest).  On a box, x are the **cell centres** (n^d
  of them, ``rho[k].reshape((n,)*d)``) and m the cell volumes; on a gmsh mesh x are the mesh
  **vertices** (the FE convention) and m the dual-cell volumes (= the FE lumped masses).  Σ m_i ρ_i
  is the (exactly conserved) discrete mass; Σ m_i ρ_i g(x_i) ≈ ∫ρ g to O(h²);
* ``solution.xdmf`` — a self-contained XDMF time series (inline XML data, no HDF5): cell data on
  the box cells (Polyline / Quadrilateral / Hexahedron), or vertex data on the gmsh simplices.

Rank 0 writes; files are written under a temporary name and renamed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..jsonable import jsonable as _json_default
from .solver import FVTrajectory


def summary_json(traj: FVTrajectory) -> str:
    return json.dumps(traj.summary(), indent=1, default=_json_default, allow_nan=True)


def _fmt(a: np.ndarray, fmt: str) -> str:
    a = np.atleast_2d(a)
    return "\n".join(" ".join(fmt % v for v in row) for row in a)


def _box_cells(mesh):
    d, n = mesh.dim, mesh.n
    axes = [np.linspace(mesh.lower[k], mesh.upper[k], n + 1) for k in range(d)]
    nodes = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    idx = np.arange((n + 1) ** d).reshape((n + 1,) * d)
    if d == 1:
        cells = np.stack([idx[:-1], idx[1:]], axis=1)
        kind = "Polyline"
        nodes = np.concatenate([nodes, np.zeros((nodes.shape[0], 1))], axis=1)
    elif d == 2:
        cells = np.stack([idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()], axis=1)
        kind = "Quadrilateral"
    else:
        c = [idx[:-1, :-1, :-1], idx[1:, :-1, :-1], idx[1:, 1:, :-1], idx[:-1, 1:, :-1],
             idx[:-1, :-1, 1:], idx[1:, :-1, 1:], idx[1:, 1:, 1:], idx[:-1, 1:, 1:]]
        cells = np.stack([a.ravel() for a in c], axis=1)
        kind = "Hexahedron"
    return nodes, cells, kind, "Cell"


def xdmf_text(traj: FVTrajectory) -> str:
    mesh = traj.mesh
    if mesh.kind == "box":
        nodes, cells, kind, center = _box_cells(mesh)
    else:
        nodes, cells = mesh.x, mesh.cells
        kind = {2: "Triangle", 3: "Tetrahedron"}.get(mesh.dim, "Polyline")
        center = "Node"
        if mesh.dim == 1:
            nodes = np.concatenate([nodes, np.zeros((nodes.shape[0], 1))], axis=1)
    gtype = "XY" if nodes.shape[1] == 2 else "XYZ"
    geo = _fmt(nodes, "%.17g")
    top = _fmt(cells, "%d")
    grids = []
    for t, rho in zip(traj.times, traj.rho):
        grids.append(
            f'<Grid Name="rho" GridType="Uniform"><Time Value="{float(t)!r}"/>'
            f'<Topology TopologyType="{kind}" NumberOfElements="{cells.shape[0]}" NodesPerElement="{cells.shape[1]}">'
            f'<DataItem Dimensions="{cells.shape[0]} {cells.shape[1]}" NumberType="Int" Format="XML">\n{top}\n</DataItem></Topology>'
            f'<Geometry GeometryType="{gtype}"><DataItem Dimensions="{nodes.shape[0]} {nodes.shape[1]}" Format="XML">\n{geo}\n'
            f'</DataItem></Geometry>'
            f'<Attribute Name="rho" AttributeType="Scalar" Center="{center}"><DataItem Dimensions="{rho.size} 1" Format="XML">\n'
            f'{_fmt(rho[:, None], "%.17g")}\n</DataItem></Attribute></Grid>')
    return ('<?xml version="1.0"?>\n<Xdmf Version="3.0"><Domain><Grid Name="TimeSeries" GridType="Collection" '
            'CollectionType="Temporal">\n' + "\n".join(grids) + "\n</Grid></Domain></Xdmf>\n")


def write_outputs(traj: FVTrajectory, out_dir, comm, xdmf: bool = True) -> dict:
    """Write the outputs on rank 0; an OSError there is raised on every rank (agreed by bcast)."""
    out = Path(out_dir)
    paths = {"summary": out / "summary.json", "snapshots": out / "snapshots.npz"}
    if xdmf:
        paths["xdmf"] = out / "solution.xdmf"
    error = None
    if comm.rank == 0:
        tmps = []
        try:
            out.mkdir(parents=True, exist_ok=True)
            tmp = out / ".snapshots.tmp.npz"
            tmps.append(tmp)
            np.savez(tmp, t=traj.times, x=traj.x, rho=traj.rho, m=traj.m)
            os.replace(tmp, paths["snapshots"])
            tmp = out / ".summary.tmp.json"
            tmps.append(tmp)
            tmp.write_text(summary_json(traj))
            os.replace(tmp, paths["summary"])
            if xdmf:
                tmp = out / ".solution.tmp.xdmf"
                tmps.append(tmp)
                tmp.write_text(xdmf_text(traj))
                os.replace(tmp, paths["xdmf"])
            else:
                for name in ("solution.xdmf", "solution.h5"):
                    (out / name).unlink(missing_ok=True)
        except OSError as exc:
            for tmp in tmps:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
            error = (exc.errno, exc.strerror or str(exc), str(exc.filename or out))
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OSError(error[0], error[1], error[2])
    return {k: str(v) for k, v in paths.items()}
