"""Distances between densities (MATH §6) — numpy only, usable without dolfinx.

Currently: distances between two 1-D P1 densities on nested meshes (self-convergence of cases
without a closed form).  The coarse function is interpolated at the fine vertices (exact for
nested P1), and the piecewise-linear difference d is integrated exactly on every fine cell:

    ∫ |d| = h(|a|+|b|)/2 if ab ≥ 0 else h(a²+b²)/(2(|a|+|b|)),     ∫ d² = h(a²+ab+b²)/3,

with a, b the values of d at the cell's end points.
"""
from __future__ import annotations

import numpy as np


def _check_1d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise ValueError("nested P1 distances are implemented in 1-D only")
        x = x[:, 0]
    if np.any(np.diff(x) <= 0):
        raise ValueError("vertex coordinates must be sorted and distinct")
    return x


def p1_distances_1d(x_coarse, rho_coarse, x_fine, rho_fine) -> dict:
    """L1 and L2 distances between two P1 functions, the first on a mesh nested in the second."""
    xc, xf = _check_1d(x_coarse), _check_1d(x_fine)
    if not np.all(np.isin(np.round(xc, 12), np.round(xf, 12))):
        raise ValueError("the coarse mesh is not nested in the fine one")
    d = np.interp(xf, xc, np.asarray(rho_coarse, float)) - np.asarray(rho_fine, float)
    a, b, h = d[:-1], d[1:], np.diff(xf)
    same = a * b >= 0
    denom = np.where(same, 1.0, np.abs(a) + np.abs(b))
    l1 = np.where(same, h * (np.abs(a) + np.abs(b)) / 2, h * (a * a + b * b) / (2 * denom))
    l2 = h * (a * a + a * b + b * b) / 3
    return {"L1": float(l1.sum()), "L2": float(np.sqrt(l2.sum()))}
