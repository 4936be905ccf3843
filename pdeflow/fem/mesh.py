"""Meshes for the reference solver: structured simplicial meshes of box domains.

``n`` is the number of cells per direction (intervals in 1-D, squares split into 2 triangles in
2-D, cubes split into 6 tetrahedra in 3-D), so h = (upper − lower)/n per direction.
"""
from __future__ import annotations

from ..problem import Domain
from . import compat


def build_mesh(domain: Domain, n: int, comm):
    if n < 2:
        raise ValueError(f"n must be >= 2 cells per direction, got {n}")
    return compat.box_mesh(comm, domain.lower, domain.upper, n)


def mesh_size(domain: Domain, n: int) -> float:
    """Largest cell side length of the structured box mesh."""
    return max(b - a for a, b in zip(domain.lower, domain.upper)) / n
