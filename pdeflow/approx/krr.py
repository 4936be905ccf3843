"""The kernel-ridge-regression operator at the heart of the λ-approximations (MATH §2.3, §5.3):

    r = (K_μ + λ)⁻¹ K_μ ξ     on a weighted particle measure μ = Σ_i w_i δ_{x_i},

with (K_μ f)(x_i) = Σ_j k(x_i, x_j) w_j f(x_j), i.e. r = 𝖪𝖶(𝖪𝖶 + λI)⁻¹ξ = 𝖪(𝖶𝖪 + λI)⁻¹𝖶ξ.  It is
computed in the symmetric form: with 𝖶^{1/2}, solve (𝖶^{1/2}𝖪𝖶^{1/2} + λI) z = 𝖶^{1/2}ξ (SPD) and
set r = 𝖪𝖶^{1/2} z — by Cholesky when N ≤ ``dense_limit`` (𝖪 built once, O(N²) memory), else by
preconditioned conjugate gradients whose matrix–vector products are the kernel sums of
:mod:`pdeflow.approx.sums` (NUFFT for the Gaussian kernel: O(N) work and memory per product).

The preconditioner is a Nyström approximation A_r = 𝖶^{1/2}K_{NS}K_{SS}^+K_{SN}𝖶^{1/2} = UΛUᵀ of
A = 𝖶^{1/2}𝖪𝖶^{1/2} from r landmarks S drawn ∝ w (as in FALKON, Rudi–Carratino–Rosasco 2017, in
the form of Frangella–Tropp–Udell 2023):  P⁻¹ = (λ_r + λ) U(Λ + λ)⁻¹Uᵀ + (I − UUᵀ).  It removes the
top of the spectrum, so the CG iteration count depends on the effective dimension of K at λ, not
on N (benchmarks/kernel_step.py reports it).  Memory O(N·r).  ξ may have several columns (a
gradient field); they share the preconditioner.

Also returns the dissipation ⟨ξ, (K_μ+λ)⁻¹K_μ ξ⟩_{L²_μ} = Σ_i w_i ξ_i · r_i (MATH §2.4 table).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.sparse.linalg import LinearOperator, cg

from .kernels import DEFAULT_CHUNK, Kernel

DENSE_LIMIT = 6000
NYSTROM_RANK = 300


def krr(kernel: Kernel, x: np.ndarray, w: np.ndarray, xi: np.ndarray, lam: float, dense_limit: int = DENSE_LIMIT,
        rtol: float = 1e-10, gram: np.ndarray = None, chunk: int = DEFAULT_CHUNK, rank: int = NYSTROM_RANK,
        info: dict = None) -> np.ndarray:
    """r = (K_μ + λ)⁻¹ K_μ ξ at the particles; ``xi`` of shape (N,) or (N, p).

    ``gram``: the matrix [k(x_i, x_j)] when the caller keeps it (fixed particles or mesh vertices:
    it does not change between steps), else it is built here (dense path only).  ``rank``: Nyström
    landmarks of the CG preconditioner (0: none).  ``info``, if given, receives the solver used,
    the CG iterations per column and the preconditioner rank."""
    if lam <= 0:
        raise ValueError("the regularization lambda must be positive")
    w = np.asarray(w, float)
    if np.any(w < 0):
        raise ValueError("particle weights must be nonnegative")
    sw = np.sqrt(w)
    rhs = sw[:, None] * (xi if xi.ndim == 2 else xi[:, None])
    n = x.shape[0]
    info = {} if info is None else info
    if gram is not None or n <= dense_limit:
        K = kernel.gram(x, x) if gram is None else gram
        A = sw[:, None] * K * sw[None, :]
        A[np.diag_indices(n)] += lam
        # numpy's Cholesky: its bundled OpenBLAS is ~10x faster here than the LAPACK scipy links to
        L = np.linalg.cholesky(A)
        z = solve_triangular(L.T, solve_triangular(L, rhs, lower=True), lower=False)
        r = K @ (sw[:, None] * z)
        info.update(solver="cholesky", iterations=[], rank=None)
    else:
        # products accurate to 1% of the CG tolerance on the operator-norm scale Σ_j |V_j|
        # (the NUFFT floor is ~1e-14)
        tol = max(1e-14, 0.01 * rtol)

        def mv(v):
            return sw * kernel.apply(x, x, sw * v, chunk=chunk, tol=tol, relative_to="sources") + lam * v

        op = LinearOperator((n, n), matvec=mv, dtype=float)
        pre = nystrom_preconditioner(kernel, x, w, lam, min(rank, n), chunk) if rank > 0 else None
        cols, its = [], []
        for c in range(rhs.shape[1]):
            z, info_cg, k = _cg(op, rhs[:, c], rtol, 10 * n, pre)
            if info_cg != 0:
                raise RuntimeError(f"KRR conjugate gradients did not converge (info = {info_cg})")
            cols.append(z)
            its.append(k)
        r = kernel.apply(x, x, sw[:, None] * np.column_stack(cols), chunk=chunk, tol=tol, relative_to="sources")
        info.update(solver="pcg" if pre is not None else "cg", iterations=its,
                    rank=None if pre is None else pre.rank)
    return r if xi.ndim == 2 else r[:, 0]


def nystrom_preconditioner(kernel: Kernel, x: np.ndarray, w: np.ndarray, lam: float, rank: int,
                           chunk: int = DEFAULT_CHUNK, seed: int = 0) -> LinearOperator:
    """P⁻¹ ≈ (𝖶^{1/2}𝖪𝖶^{1/2} + λ)⁻¹ from r landmarks drawn ∝ w without replacement (module doc).

    A_r = BBᵀ with B = 𝖶^{1/2}K_{NS}Q_+E_+^{−1/2} (K_SS = QEQᵀ, eigenvalues below 1e-12·max dropped);
    the thin SVD of B from the small eigenproblem BᵀB = VΣ²Vᵀ gives U = BVΣ⁻¹, Λ = Σ²."""
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    p = w / w.sum()
    S = np.sort(rng.choice(n, size=rank, replace=False, p=p if np.count_nonzero(p) >= rank else None))
    E, Q = np.linalg.eigh(kernel.gram(x[S], x[S]))
    keep = E > 1e-12 * max(E.max(), 1e-300)
    T = Q[:, keep] / np.sqrt(E[keep])[None, :]
    B = np.empty((n, T.shape[1]))
    for s in range(0, n, chunk):
        B[s:s + chunk] = np.sqrt(w[s:s + chunk])[:, None] * (kernel.gram(x[s:s + chunk], x[S]) @ T)
    lam2, V = np.linalg.eigh(B.T @ B)
    good = lam2 > 1e-12 * max(lam2.max(), 1e-300)
    lam2, V = lam2[good], V[:, good]
    floor = float(lam2.min()) + lam
    scale = floor / (lam2 + lam) - 1.0
    # P⁻¹y = y + U((λ_r+λ)/(Λ+λ) − 1)Uᵀy with U = BVΣ⁻¹, i.e. y + B M Bᵀy with the r×r matrix
    # M = V diag(scale/Λ) Vᵀ: U (another N×r array and N·r² flops) is never formed
    M = (V * (scale / lam2)[None, :]) @ V.T

    def apply(y):
        return y + B @ (M @ (B.T @ y))

    op = LinearOperator((n, n), matvec=apply, dtype=float)
    op.rank = int(V.shape[1])
    return op


def _cg(op, b, rtol, maxiter, M=None):
    """scipy's CG (the tolerance keyword is ``rtol`` from scipy 1.12 on, ``tol`` before);
    returns (solution, info, iterations)."""
    count = [0]

    def tick(_):
        count[0] += 1

    try:
        z, info = cg(op, b, rtol=rtol, atol=0.0, maxiter=maxiter, M=M, callback=tick)
    except TypeError:
        z, info = cg(op, b, tol=rtol, atol=0.0, maxiter=maxiter, M=M, callback=tick)
    return z, info, count[0]


def krr_dissipation(w: np.ndarray, xi: np.ndarray, r: np.ndarray) -> float:
    """⟨ξ, (K_μ+λ)⁻¹K_μ ξ⟩_{L²_μ} = Σ_i w_i ξ_i·r_i."""
    prod = xi * r if xi.ndim == 1 else (xi * r).sum(1)
    return float(np.dot(w, prod))
