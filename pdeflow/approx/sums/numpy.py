"""The exact kernel sums in row chunks of the Gram matrix: memory O(chunk · m), always available."""
from __future__ import annotations

import numpy as np

NAME = "numpy"
DEFAULT_CHUNK = 2048


def available():
    return None


def supports(kernel, n, m, d):
    return None


def apply(kernel, X, Y, V, tol, chunk):
    """Σ_j k(x_i, y_j) V_j, V of shape (m, p)."""
    chunk = chunk or DEFAULT_CHUNK
    out = np.empty((X.shape[0], V.shape[1]))
    for s in range(0, X.shape[0], chunk):
        out[s:s + chunk] = kernel.gram(X[s:s + chunk], Y) @ V
    return out


def apply_grad1(kernel, X, Y, v, tol, chunk):
    """Σ_j ∇₁k(x_i, y_j) v_j; the (rows, m, d) gradient block limits the chunk."""
    chunk = max(1, (chunk or DEFAULT_CHUNK) // max(1, X.shape[1]))
    out = np.empty(X.shape)
    for s in range(0, X.shape[0], chunk):
        out[s:s + chunk] = np.einsum("imd,m->id", kernel.grad1(X[s:s + chunk], Y), v)
    return out
