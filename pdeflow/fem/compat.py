"""Every difference between dolfinx versions (0.5 on Debian 12 ↔ 0.9/0.10) lives here.

The rest of :mod:`pdeflow.fem` calls these helpers and never tests a version itself.  The
scheme is a hand-written Newton loop on dolfinx assemblers and petsc4py objects, which avoids
dolfinx's NonlinearProblem/NewtonSolver (re-organized in 0.10).

Differences handled:

* function spaces: ``FunctionSpace(mesh, ("Lagrange", 1))`` (≤ 0.6) vs ``functionspace`` (≥ 0.7);
* the PETSc assemblers live in ``dolfinx.fem.petsc``, which ≥ 0.8 no longer imports implicitly;
* the singledispatch signatures of ``assemble_matrix``/``assemble_vector`` (same in 0.5–0.10,
  wrapped here so that a future change is made once);
* the gmsh reader: ``dolfinx.io.gmshio.model_to_mesh`` returns a tuple (mesh, cell tags, facet
  tags) up to 0.9 and a ``MeshData`` object from 0.10;
* the XDMF writer/reader and the built-in box meshes are the same API in all supported versions.
"""
from __future__ import annotations

import importlib

import dolfinx
import dolfinx.fem
import dolfinx.io
import dolfinx.mesh
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

# ≥ 0.8 requires the explicit import; ≤ 0.7 has it already, importing again is harmless.
fem_petsc = importlib.import_module("dolfinx.fem.petsc")

def versions() -> dict:
    """Versions that determine the numbers (written into every summary.json)."""
    import scipy

    return {
        "dolfinx": dolfinx.__version__,
        "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "mpi": MPI.Get_library_version().replace("\x00", "").splitlines()[0].strip(),
    }


def function_space(mesh, family: str = "Lagrange", degree: int = 1):
    if hasattr(dolfinx.fem, "functionspace"):
        return dolfinx.fem.functionspace(mesh, (family, degree))
    return dolfinx.fem.FunctionSpace(mesh, (family, degree))


def box_mesh(comm, lower, upper, n):
    """Simplicial mesh of the box Π[lower_k, upper_k] with ``n`` cells per direction."""
    d = len(lower)
    if d == 1:
        return dolfinx.mesh.create_interval(comm, n, [lower[0], upper[0]])
    if d == 2:
        return dolfinx.mesh.create_rectangle(
            comm, [np.array(lower, dtype=float), np.array(upper, dtype=float)], [n, n], dolfinx.mesh.CellType.triangle
        )
    if d == 3:
        return dolfinx.mesh.create_box(
            comm, [np.array(lower, dtype=float), np.array(upper, dtype=float)], [n, n, n], dolfinx.mesh.CellType.tetrahedron
        )
    raise ValueError(f"dimension {d} is not supported")


def mesh_from_gmsh(model, comm, gdim: int):
    """A dolfinx mesh from the meshed gmsh model on rank 0 of ``comm``, distributed.  (The
    model, not a .msh file: ``read_from_msh`` of dolfinx 0.5.2 fails with a NameError.)"""
    from dolfinx.io import gmshio

    out = gmshio.model_to_mesh(model, comm, 0, gdim=gdim)
    return out[0] if isinstance(out, tuple) else out.mesh


def write_mesh_xdmf(comm, path: str, mesh) -> None:
    with dolfinx.io.XDMFFile(comm, path, "w") as f:
        f.write_mesh(mesh)


def read_mesh_xdmf(comm, path: str):
    """A mesh written by :func:`write_mesh_xdmf` (name "mesh"), read and partitioned in parallel."""
    with dolfinx.io.XDMFFile(comm, path, "r") as f:
        return f.read_mesh(name="mesh")


def mesh_statistics(mesh) -> dict:
    """Vertex/cell counts, volume and smallest/largest cell diameter (serial mesh)."""
    tdim = mesh.topology.dim
    n_cells = mesh.topology.index_map(tdim).size_local
    x = mesh.geometry.x[:, : mesh.geometry.dim]
    cells = mesh.geometry.dofmap
    cells = cells.array.reshape(-1, tdim + 1) if hasattr(cells, "array") else np.asarray(cells)
    edges = [x[cells[:, j]] - x[cells[:, i]] for i in range(tdim + 1) for j in range(i + 1, tdim + 1)]
    diam = np.max([np.linalg.norm(e, axis=1) for e in edges], axis=0)
    vol = np.abs(np.linalg.det(np.stack([x[cells[:, k + 1]] - x[cells[:, 0]] for k in range(tdim)], axis=1)))
    vol /= {1: 1, 2: 2, 3: 6}[tdim]
    return {"vertices": int(x.shape[0]), "cells": int(n_cells), "volume": float(vol.sum()),
            "h_max": float(diam.max()), "h_min": float(diam.min())}


def owned_cell_dofs(V) -> np.ndarray:
    """(owned cells × dofs per cell) local dof indices (dolfinx 0.5: an AdjacencyList; 0.9+: an array)."""
    dofs = V.dofmap.list
    arr = np.asarray(dofs.array if hasattr(dofs, "array") else dofs)
    mesh = V.mesh
    n_owned = mesh.topology.index_map(mesh.topology.dim).size_local
    return arr.reshape(-1, V.dofmap.dof_layout.num_dofs)[:n_owned]


def n_cells_global(mesh) -> int:
    tdim = mesh.topology.dim
    return int(mesh.topology.index_map(tdim).size_global)


def form(expr):
    """Compile a form (FFCx JIT).  Each rank compiles or loads its own, so one rank can fail here
    alone (a full or read-only cache, a compiler error): agreed on over the mesh's communicator
    before the next collective (pdeflow.agreement)."""
    from ..agreement import stage

    with stage("jit", _form_comm(expr)):
        compiled = dolfinx.fem.form(expr)
    return compiled


def _form_comm(expr):
    # the mesh behind the form's domain carries the communicator (dolfinx 0.5: the Mesh itself;
    # 0.9+: its C++ object); None (no agreement) rather than a guess such as COMM_WORLD, which would
    # deadlock the sub-communicators of a study
    try:
        return expr.ufl_domains()[0].ufl_cargo().comm
    except (AttributeError, IndexError):
        return None


def assemble_matrix(a, A=None):
    """Assemble the bilinear form ``a`` (no Dirichlet conditions) into a new or existing Mat."""
    if A is None:
        A = fem_petsc.assemble_matrix(a)
    else:
        A.zeroEntries()
        fem_petsc.assemble_matrix(A, a)
    A.assemble()
    return A


def assemble_owned_vector(L) -> np.ndarray:
    """Assemble a linear form and return the owned entries (ghost contributions summed)."""
    b = fem_petsc.assemble_vector(L)
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    out = b.getArray(readonly=True).copy()
    b.destroy()
    return out


def assemble_scalar(M, comm) -> float:
    return comm.allreduce(dolfinx.fem.assemble_scalar(M), op=MPI.SUM)


def dx(mesh, degree=None):
    md = {} if degree is None else {"quadrature_degree": degree}
    return ufl.Measure("dx", domain=mesh, metadata=md)


def xdmf_file(comm, path: str):
    return dolfinx.io.XDMFFile(comm, path, "w")


def set_owned(u, values: np.ndarray) -> None:
    """Write owned dof values into a Function and update its ghosts."""
    n = values.shape[0]
    u.x.array[:n] = values
    u.x.scatter_forward()
