"""Discrete densities of either discretization as functions on Ω, and distances between them (numpy/scipy).

Two representations, chosen so that the same rule is applied to the FE and the FV solution, at
every level of a refinement ladder (which is what makes a Richardson estimate of each comparable
with their difference):

* ``grid`` (box domains): values on a tensor grid — the FE vertex grid (n+1 points per axis, the
  end points on ∂Ω) or the FV cell centres (n points per axis, h/2 from ∂Ω) — reconstructed as
  the **multilinear interpolant** of the values (linearly extrapolated in the half-cell layer
  between the outermost centres and ∂Ω).  This is an O(h²) reconstruction of either solution;
  for the FE solution it differs from the P1 function by O(h²) (the P1 function depends on the
  diagonal of each square, which is not part of the output convention).
* ``simplicial`` (gmsh domains): values at the vertices of a simplicial mesh, reconstructed as
  the **P1 function** on that mesh (the FE function itself, and the natural reconstruction of
  the vertex-centred FV solution); evaluated elsewhere by point location (points of a finer mesh
  that fall outside the inscribed polygon of a curved boundary take the value of the nearest
  simplex, clipped barycentric coordinates).

Distances between two fields at a snapshot:

* ``L1``: ∫ |r_a − r_b| by a tensor Gauss rule (3 points per axis and per cell of the finer grid;
  2 in 3-D) on Ω, or a degree-2 rule on every simplex of the finer mesh;
* ``MMD``: the maximum mean discrepancy with the Gaussian kernel exp(−|x−y|²/(2ℓ²)) between the
  quadrature measures Σ_i m_i ρ_i δ_{x_i} (MATH §6 (a)); m_i are the lumped masses (FE) or the
  control volumes (FV).  On grids it is evaluated exactly by separable (mode-product) sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Field:
    kind: str  # "grid" | "simplicial"
    x: np.ndarray  # (N, d)
    m: np.ndarray  # (N,)
    rho: np.ndarray  # (S, N)
    axes: Optional[list] = None  # grid: the 1-D coordinates per axis
    cells: Optional[np.ndarray] = field(default=None, repr=False)  # simplicial: (Nc, d+1)
    lower: Optional[tuple] = None
    upper: Optional[tuple] = None

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    @property
    def resolution(self) -> int:
        return max(len(a) for a in self.axes) if self.kind == "grid" else self.cells.shape[0]


def grid_field(x, m, rho, lower, upper) -> Field:
    d = x.shape[1]
    axes = [np.unique(np.round(x[:, k], 12)) for k in range(d)]
    assert int(np.prod([a.size for a in axes])) == x.shape[0], "values do not lie on a tensor grid"
    return Field("grid", x, m, np.atleast_2d(rho), axes=axes, lower=tuple(lower), upper=tuple(upper))


def simplicial_field(x, m, rho, cells) -> Field:
    return Field("simplicial", x, m, np.atleast_2d(rho), cells=cells)


# --- evaluation -------------------------------------------------------------------------------
def _eval_grid(f: Field, k: int, pts: np.ndarray) -> np.ndarray:
    from scipy.interpolate import RegularGridInterpolator

    vals = f.rho[k].reshape([a.size for a in f.axes])
    it = RegularGridInterpolator(f.axes, vals, method="linear", bounds_error=False, fill_value=None)
    return it(pts)


class _Locator:
    """P1 evaluation on a simplicial mesh at arbitrary points (nearest simplex outside)."""

    def __init__(self, x, cells):
        from scipy.spatial import cKDTree

        self.x, self.cells = x, cells
        P = x[cells]
        self.x0 = P[:, 0, :]
        self.Binv = np.linalg.inv(np.transpose(P[:, 1:, :] - P[:, :1, :], (0, 2, 1)))  # λ_{1..d} = Binv (p − x0)
        self.tree = cKDTree(P.mean(axis=1))

    def locate(self, pts, k=12):
        k = min(k, self.cells.shape[0])
        _, cand = self.tree.query(pts, k=k)
        cand = cand.reshape(pts.shape[0], k)
        lam = np.einsum("pkij,pkj->pki", self.Binv[cand], pts[:, None, :] - self.x0[cand])
        full = np.concatenate([1 - lam.sum(axis=2, keepdims=True), lam], axis=2)
        score = full.min(axis=2)
        best = np.argmax(score, axis=1)
        idx = np.arange(pts.shape[0])
        cell = cand[idx, best]
        bary = np.clip(full[idx, best], 0.0, None)
        bary /= bary.sum(axis=1, keepdims=True)
        return cell, bary


def _simplex_rule(d: int):
    """Degree-2 rule on the reference simplex: barycentric points (q, d+1) and weights (sum 1)."""
    if d == 1:
        g = 0.5 / math.sqrt(3.0)
        return np.array([[0.5 + g, 0.5 - g], [0.5 - g, 0.5 + g]]), np.array([0.5, 0.5])
    if d == 2:
        return np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]), np.full(3, 1 / 3)
    a, b = 0.5854101966249685, 0.1381966011250105
    pts = np.full((4, 4), b)
    np.fill_diagonal(pts, a)
    return pts, np.full(4, 0.25)


def _quadrature(a: Field, b: Field):
    """Points (Q, d) and weights of the rule on the finer of the two fields' meshes."""
    fine = a if a.resolution >= b.resolution else b
    if fine.kind == "grid":
        d = fine.dim
        g = 3 if d < 3 else 2
        gl, gw = np.polynomial.legendre.leggauss(g)
        n = max(len(ax) for ax in (a.axes if a.kind == "grid" else []) + (b.axes if b.kind == "grid" else []))
        pts1, wts1 = [], []
        for k in range(d):
            lo, hi = fine.lower[k], fine.upper[k]
            edges = np.linspace(lo, hi, n + 1)
            mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
            pts1.append((mid[:, None] + half[:, None] * gl).ravel())
            wts1.append((half[:, None] * gw).ravel())
        P = np.stack([g_.ravel() for g_ in np.meshgrid(*pts1, indexing="ij")], axis=1)
        W = np.prod(np.stack([w_.ravel() for w_ in np.meshgrid(*wts1, indexing="ij")], axis=1), axis=1)
        return P, W, None
    bary, w = _simplex_rule(fine.dim)
    Pc = fine.x[fine.cells]  # (Nc, d+1, d)
    B = Pc[:, 1:, :] - Pc[:, :1, :]
    vol = np.abs(np.linalg.det(B)) / math.factorial(fine.dim)
    P = np.einsum("qv,cvd->cqd", bary, Pc).reshape(-1, fine.dim)
    W = (vol[:, None] * w[None, :]).ravel()
    return P, W, (fine, bary)


def _values(f: Field, k: int, P: np.ndarray, own) -> np.ndarray:
    if f.kind == "grid":
        return _eval_grid(f, k, P)
    if own is not None and own[0] is f:
        bary = own[1]
        vals = f.rho[k][f.cells]  # (Nc, d+1)
        return (vals @ bary.T).ravel()
    loc = f.__dict__.setdefault("_locator", _Locator(f.x, f.cells))
    key = ("_located", P.shape, float(P[:3].sum()))
    if f.__dict__.get("_loc_key") != key:
        f.__dict__["_loc_key"] = key
        f.__dict__["_loc"] = loc.locate(P)
    cell, bary = f.__dict__["_loc"]
    return np.einsum("pv,pv->p", f.rho[k][f.cells[cell]], bary)


def l1_distance(a: Field, b: Field, ka: int, kb: Optional[int] = None) -> float:
    kb = ka if kb is None else kb
    P, W, own = _quadrature(a, b)
    return float(np.dot(W, np.abs(_values(a, ka, P, own) - _values(b, kb, P, own))))


# --- MMD ---------------------------------------------------------------------------------------
def _gauss(x, y, ell):
    return np.exp(-((x[:, None] - y[None, :]) ** 2) / (2 * ell * ell))


def _kernel_sum(f: Field, wf: np.ndarray, g: Field, wg: np.ndarray, ell: float) -> float:
    """Σ_ij wf_i wg_j k(x_i, y_j)."""
    if f.kind == "grid" and g.kind == "grid":
        A = wf.reshape([a.size for a in f.axes])
        B = wg.reshape([a.size for a in g.axes])
        C = B
        for k in range(f.dim):  # mode-k product with the 1-D kernel matrix K_k (f-axis × g-axis)
            Kk = _gauss(f.axes[k], g.axes[k], ell)
            C = np.moveaxis(np.tensordot(Kk, C, axes=([1], [k])), 0, k)
        return float(np.sum(A * C))
    total = 0.0
    X, Y = f.x, g.x
    chunk = max(1, 4_000_000 // max(Y.shape[0], 1))
    for s in range(0, X.shape[0], chunk):
        d2 = ((X[s : s + chunk, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
        total += float(wf[s : s + chunk] @ np.exp(-d2 / (2 * ell * ell)) @ wg)
    return total


def mmd_distance(a: Field, b: Field, ka: int, ell: float, kb: Optional[int] = None, with_floor: bool = False):
    """MMD between the two quadrature measures; with ``with_floor`` also the round-off floor of the
    evaluation, √(64 ε (Kaa + Kbb)) (MMD² is a difference of O(Kaa) sums)."""
    kb = ka if kb is None else kb
    wa, wb = a.m * a.rho[ka], b.m * b.rho[kb]
    kaa, kbb = _kernel_sum(a, wa, a, wa, ell), _kernel_sum(b, wb, b, wb, ell)
    s = kaa - 2 * _kernel_sum(a, wa, b, wb, ell) + kbb
    value = math.sqrt(max(s, 0.0))
    if with_floor:
        return value, math.sqrt(64 * np.finfo(float).eps * (abs(kaa) + abs(kbb)))
    return value


def mmd_scale(domain) -> float:
    """The kernel width ℓ of the cross-check MMD: 1/20 of the largest side of Ω's bounding box."""
    return domain.diameter_box / 20.0
