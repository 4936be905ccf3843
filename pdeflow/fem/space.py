"""The lumped P1 space shared by all reference schemes.

Holds the mesh, the P1 space V_h, the lumped masses m_i = ∫ ψ_i (the vertex-quadrature weights:
(u, v)_L = Σ_i m_i u_i v_i, MATH §4.2) and the map that gathers owned nodal values to rank 0 in an
order fixed by the coordinates, so that output does not depend on the number of ranks.
"""
from __future__ import annotations

import numpy as np
import ufl
from mpi4py import MPI

from ..problem import Domain
from . import compat
from .mesh import build_mesh, mesh_size


class P1Space:
    def __init__(self, domain: Domain, n: int, comm=MPI.COMM_WORLD):
        self.comm = comm
        self.domain = domain
        self.n = n
        self.h = mesh_size(domain, n)
        self.mesh = build_mesh(domain, n, comm)
        self.V = compat.function_space(self.mesh, "Lagrange", 1)
        imap = self.V.dofmap.index_map
        self.n_owned = imap.size_local
        self.n_global = imap.size_global
        self.dim = domain.dim
        self.coords = self.V.tabulate_dof_coordinates()[: self.n_owned, : self.dim].copy()
        v = ufl.TestFunction(self.V)
        self.lumped_mass = compat.assemble_owned_vector(compat.form(v * ufl.dx))
        self._order = None
        # Gather the coordinates once; rank 0 keeps the permutation to the lexicographic order.
        all_x = comm.gather(self.coords, root=0)
        if comm.rank == 0:
            X = np.concatenate(all_x, axis=0)
            # rounded keys: a vertex may get coordinates differing in the last bit on another
            # partition, which would reorder whole columns of a structured mesh
            key = np.round(X / self.h, 6)
            self._order = np.lexsort(tuple(key[:, k] for k in reversed(range(self.dim))))
            self.gathered_coords = X[self._order]
        else:
            self.gathered_coords = None

    # --- global reductions on owned arrays ---------------------------------------------
    def sum(self, a: np.ndarray) -> float:
        return self.comm.allreduce(float(np.sum(a)), op=MPI.SUM)

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.comm.allreduce(float(np.dot(a, b)), op=MPI.SUM)

    def max_abs(self, a: np.ndarray) -> float:
        local = float(np.max(np.abs(a))) if a.size else 0.0
        return self.comm.allreduce(local, op=MPI.MAX)

    def integral(self, a: np.ndarray) -> float:
        """Lumped integral (a, 1)_L = Σ_i m_i a_i."""
        return self.dot(self.lumped_mass, a)

    # --- nodal values ----------------------------------------------------------------------
    def nodal(self, fn) -> np.ndarray:
        """Owned nodal values of a callable f(x), x of shape (d, n)."""
        return np.asarray(fn(self.coords.T), dtype=float).reshape(self.n_owned)

    def gather(self, a: np.ndarray):
        """Owned values → all values on rank 0 in coordinate order (None on other ranks)."""
        parts = self.comm.gather(np.asarray(a), root=0)
        if self.comm.rank != 0:
            return None
        return np.concatenate(parts)[self._order]

    def gathered_cells(self):
        """The cells (simplices or boxes' simplices) as rows of vertex indices into the gathered
        coordinate order, on rank 0 (None elsewhere); collective.  With ``gathered_coords`` it is the
        mesh a P1 function can be evaluated on without dolfinx (pdeflow.Reference)."""
        imap = self.V.dofmap.index_map
        local = compat.owned_cell_dofs(self.V)
        glob = np.asarray(imap.local_to_global(local.ravel()), dtype=np.int64).reshape(local.shape)
        parts = self.comm.gather(glob, root=0)
        if self.comm.rank != 0:
            return None
        cells = np.concatenate(parts)
        # global dof numbers are the positions in the rank-ordered concatenation of owned values;
        # _order maps output positions to those
        inverse = np.empty_like(self._order)
        inverse[self._order] = np.arange(self._order.size)
        return inverse[cells]

    def function(self, values=None, name="rho"):
        import dolfinx.fem

        u = dolfinx.fem.Function(self.V, name=name)
        if values is not None:
            compat.set_owned(u, values)
        return u
