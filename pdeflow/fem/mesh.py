"""Meshes for the reference solver.

Boxes: structured simplicial meshes; ``n`` is the number of cells per direction (intervals in
1-D, squares split into 2 triangles in 2-D, cubes split into 6 tetrahedra in 3-D), so
h = (upper − lower)/n per direction.  Other domains (:attr:`Domain.mesh`): the gmsh mesh of
:mod:`pdeflow.fem.meshfiles` with target cell size h = L/n, L the largest side of the bounding box.
"""
from __future__ import annotations

from ..problem import Domain
from . import compat


def build_mesh(domain: Domain, n: int, comm):
    if n < 2:
        raise ValueError(f"n must be >= 2 cells per direction, got {n}")
    if domain.mesh is not None:
        from . import meshfiles

        return meshfiles.load(domain.mesh, int(n), comm)
    return compat.box_mesh(comm, domain.lower, domain.upper, n)


def mesh_size(domain: Domain, n: int) -> float:
    """Largest cell side of the structured box mesh; the target cell size of a gmsh mesh."""
    return domain.diameter_box / n
