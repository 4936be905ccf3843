"""P1 functions on simplicial meshes without dolfinx: evaluation at points, cell masses and exact
sampling (numpy/scipy only; used by pdeflow.Reference and by the certified solve's comparisons of
solutions on different meshes).

A P1 function is its nodal values ``u`` at the vertices ``x`` (N × d) of the cells ``cells``
(M × (d+1) vertex indices; 1-D: intervals, 2-D: triangles, 3-D: tetrahedra).  Inside a cell with
barycentric coordinates λ, u = Σ_k λ_k u_{cells[k]}.
"""
from __future__ import annotations

import numpy as np


class P1Mesh:
    """Point location and geometry of a simplicial mesh (built once, queried many times)."""

    def __init__(self, x: np.ndarray, cells: np.ndarray):
        self.x = np.asarray(x, dtype=float)
        if self.x.ndim == 1:
            self.x = self.x[:, None]
        self.cells = np.asarray(cells, dtype=np.int64)
        self.dim = self.x.shape[1]
        if self.cells.ndim != 2 or self.cells.shape[1] != self.dim + 1:
            raise ValueError(f"cells must have {self.dim + 1} vertices each in {self.dim}-D, got shape {self.cells.shape}")
        if self.cells.size and (self.cells.min() < 0 or self.cells.max() >= len(self.x)):
            raise ValueError("cells refer to vertices that do not exist")
        v = self.x[self.cells]  # M × (d+1) × d
        self._origin = v[:, 0, :]
        edges = v[:, 1:, :] - v[:, :1, :]  # M × d × d (rows: edges)
        det = np.linalg.det(edges)
        if np.any(np.abs(det) == 0):
            raise ValueError("the mesh has degenerate cells")
        self._inv = np.linalg.inv(edges)  # barycentric λ_{1..d} = (p − v0) · inv
        fact = {1: 1.0, 2: 2.0, 3: 6.0}[self.dim]
        self.volumes = np.abs(det) / fact
        self._centroids = v.mean(axis=1)
        self._radius = np.max(np.linalg.norm(v - self._centroids[:, None, :], axis=2), axis=1)
        from scipy.spatial import cKDTree

        self._tree = cKDTree(self._centroids)

    def _barycentric(self, cell: np.ndarray, p: np.ndarray) -> np.ndarray:
        lam = np.einsum("nd,nde->ne", p - self._origin[cell], self._inv[cell])
        return np.concatenate([1.0 - lam.sum(axis=1, keepdims=True), lam], axis=1)

    def locate(self, points: np.ndarray):
        """(cell index, barycentric coordinates) of each point; points outside the mesh (within
        round-off of a curved boundary, say) get the nearest cell's coordinates clipped to it."""
        p = np.asarray(points, dtype=float)
        if p.ndim == 1:
            p = p[:, None] if self.dim == 1 else p[None, :]
        n = len(p)
        cell = np.full(n, -1, dtype=np.int64)
        lam = np.zeros((n, self.dim + 1))
        k = min(len(self.cells), 4 * (self.dim + 1) ** 2)
        _, near = self._tree.query(p, k=k)
        near = np.asarray(near).reshape(n, -1)
        best = np.full(n, -np.inf)
        for j in range(near.shape[1]):
            c = near[:, j]
            b = self._barycentric(c, p)
            score = b.min(axis=1)  # ≥ 0 inside
            better = score > best
            best[better], cell[better], lam[better] = score[better], c[better], b[better]
            if np.all(best >= -1e-12):
                break
        outside = best < -1e-12
        if np.any(outside):
            lam[outside] = np.clip(lam[outside], 0.0, None)
            lam[outside] /= lam[outside].sum(axis=1, keepdims=True)
        return cell, lam, outside

    def evaluate(self, u: np.ndarray, points: np.ndarray, outside: str = "clamp") -> np.ndarray:
        """Values of the P1 function(s) ``u`` (N,) or (k, N) at ``points``; ``outside="zero"`` gives 0
        at points outside the mesh, "clamp" the value at the nearest cell's closest point."""
        cell, lam, out = self.locate(points)
        u = np.asarray(u, dtype=float)
        vals = np.einsum("...nk,nk->...n", u[..., self.cells[cell]], lam)
        if outside == "zero":
            vals = np.where(out, 0.0, vals)
        return vals

    def cell_masses(self, u: np.ndarray) -> np.ndarray:
        """∫_cell u for each cell (exact for P1: volume × mean of the vertex values)."""
        return self.volumes * np.asarray(u, dtype=float)[self.cells].mean(axis=1)

    def sample(self, u: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n independent draws from the density u/∫u (u ≥ 0), exactly: a cell with probability ∝ its
        mass, then inside it from the linear density Σ_k u_k λ_k — the mixture over k, weights ∝ u_k,
        of Dirichlet(1, …, 2 (at k), …, 1) laws of λ (each λ_k Dirac(1,…,1) density is ∝ λ_k)."""
        u = np.asarray(u, dtype=float)
        if np.any(u < 0) or not np.all(np.isfinite(u)):
            raise ValueError("the density must be finite and non-negative")
        masses = self.cell_masses(u)
        total = masses.sum()
        if not total > 0:
            raise ValueError("the density has zero mass")
        cell = rng.choice(len(masses), size=n, p=masses / total)
        vert = u[self.cells[cell]]  # n × (d+1)
        s = vert.sum(axis=1, keepdims=True)
        k = (rng.random((n, 1)) * s > np.cumsum(vert, axis=1)).sum(axis=1)  # vertex k with prob ∝ u_k
        k = np.minimum(k, self.dim)
        alpha = np.ones((n, self.dim + 1))
        alpha[np.arange(n), k] = 2.0
        g = rng.gamma(alpha)
        lam = g / g.sum(axis=1, keepdims=True)
        v = self.x[self.cells[cell]]
        return np.einsum("nk,nkd->nd", lam, v)


def l1_distance(mesh_a: P1Mesh, u_a: np.ndarray, mesh_b: P1Mesh, u_b: np.ndarray, weights_b: np.ndarray) -> float:
    """∫|u_a − u_b| by the vertex (lumped) quadrature of mesh b, with u_a evaluated at b's vertices:
    for two meshes of one domain, b the finer (exact interpolation where a's cells are unions of b's)."""
    ua_on_b = mesh_a.evaluate(u_a, mesh_b.x)
    return float(np.dot(weights_b, np.abs(ua_on_b - u_b)))
