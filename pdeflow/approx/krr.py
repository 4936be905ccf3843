"""The kernel-ridge-regression operator at the heart of the λ-approximations (MATH §2.3, §5.3):

    r = (K_μ + λ)⁻¹ K_μ ξ     on a weighted particle measure μ = Σ_i w_i δ_{x_i},

with (K_μ f)(x_i) = Σ_j k(x_i, x_j) w_j f(x_j), i.e. r = 𝖪𝖶(𝖪𝖶 + λI)⁻¹ξ = 𝖪(𝖶𝖪 + λI)⁻¹𝖶ξ.  It is
computed in the symmetric form: with 𝖶^{1/2}, solve (𝖶^{1/2}𝖪𝖶^{1/2} + λI) z = 𝖶^{1/2}ξ (SPD) and
set r = 𝖪𝖶^{1/2} z — by Cholesky when N ≤ ``dense_limit`` (𝖪 built once, O(N²) memory), else by
CG with chunked Gram products (O(N·chunk) memory).  ξ may have several columns (a gradient field).

Also returns the dissipation ⟨ξ, (K_μ+λ)⁻¹K_μ ξ⟩_{L²_μ} = Σ_i w_i ξ_i · r_i (MATH §2.4 table).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.sparse.linalg import LinearOperator, cg

from .kernels import DEFAULT_CHUNK, Kernel

DENSE_LIMIT = 6000


def krr(kernel: Kernel, x: np.ndarray, w: np.ndarray, xi: np.ndarray, lam: float, dense_limit: int = DENSE_LIMIT,
        rtol: float = 1e-10, gram: np.ndarray = None, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """r = (K_μ + λ)⁻¹ K_μ ξ at the particles; ``xi`` of shape (N,) or (N, p).

    ``gram``: the matrix [k(x_i, x_j)] when the caller keeps it (fixed particles or mesh vertices:
    it does not change between steps), else it is built here (dense path only)."""
    if lam <= 0:
        raise ValueError("the regularization lambda must be positive")
    w = np.asarray(w, float)
    if np.any(w < 0):
        raise ValueError("particle weights must be nonnegative")
    sw = np.sqrt(w)
    rhs = sw[:, None] * (xi if xi.ndim == 2 else xi[:, None])
    n = x.shape[0]
    if gram is not None or n <= dense_limit:
        K = kernel.gram(x, x) if gram is None else gram
        A = sw[:, None] * K * sw[None, :]
        A[np.diag_indices(n)] += lam
        # numpy's Cholesky: its bundled OpenBLAS is ~10x faster here than the LAPACK scipy links to
        L = np.linalg.cholesky(A)
        z = solve_triangular(L.T, solve_triangular(L, rhs, lower=True), lower=False)
        r = K @ (sw[:, None] * z)
    else:
        def mv(v):
            return sw * kernel.apply(x, x, sw * v, chunk=chunk) + lam * v

        op = LinearOperator((n, n), matvec=mv, dtype=float)
        cols = []
        for c in range(rhs.shape[1]):
            z, info = _cg(op, rhs[:, c], rtol, 10 * n)
            if info != 0:
                raise RuntimeError(f"KRR conjugate gradients did not converge (info = {info})")
            cols.append(z)
        r = kernel.apply(x, x, sw[:, None] * np.column_stack(cols), chunk=chunk)
    return r if xi.ndim == 2 else r[:, 0]


def _cg(op, b, rtol, maxiter):
    """scipy's CG: the tolerance keyword is ``rtol`` from scipy 1.12 on, ``tol`` before."""
    try:
        return cg(op, b, rtol=rtol, atol=0.0, maxiter=maxiter)
    except TypeError:
        return cg(op, b, tol=rtol, atol=0.0, maxiter=maxiter)


def krr_dissipation(w: np.ndarray, xi: np.ndarray, r: np.ndarray) -> float:
    """⟨ξ, (K_μ+λ)⁻¹K_μ ξ⟩_{L²_μ} = Σ_i w_i ξ_i·r_i."""
    prod = xi * r if xi.ndim == 1 else (xi * r).sum(1)
    return float(np.dot(w, prod))
