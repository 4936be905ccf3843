"""Kernels k(x, y) on R^d with gradients, and their sums Σ_j k(x_i, y_j) v_j, Σ_j ∇₁k(x_i, y_j) v_j.

Points are arrays of shape (n, d).  ``gram``/``grad1`` build blocks; ``apply``/``apply_grad1``/
``apply_grad2`` hand the sums to :mod:`pdeflow.approx.sums`, which picks a back-end by N, d and
kernel (NUFFT for the Gaussian in d ≤ 3, compiled exact sums, chunked numpy) — overridable.

* ``gaussian``   k = exp(−|x−y|²/(2ℓ²))
* ``imq``        k = (1 + |x−y|²/ℓ²)^{−1/2}           (inverse multiquadric)
* ``laplace``    k = exp(−|x−y|/ℓ)                     (Matérn ν = 1/2)
* ``matern32``   k = (1 + √3 r/ℓ) exp(−√3 r/ℓ)
* ``energy``     k = −|x−y|                             (conditionally positive definite; MMD = energy distance)
* ``bilinear``   k = 1 + x·y                            (SVGD moment oracle, MATH §3.4 item 4)

Gradients are with respect to the first argument: ∇₁k(x, y).  At r = 0 the non-smooth kernels
(laplace, energy) use the subgradient 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import sums
from .sums.numpy import DEFAULT_CHUNK


def sqdist(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """|x_i − y_j|² for all pairs, clipped at 0 against round-off."""
    d = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * X @ Y.T
    return np.maximum(d, 0.0)


@dataclass(frozen=True)
class Kernel:
    name: str
    bandwidth: float = 1.0

    def __post_init__(self):
        if self.name not in KERNELS:
            raise ValueError(f"unknown kernel {self.name!r}; choose from {', '.join(KERNELS)}")
        if not (self.bandwidth > 0 and np.isfinite(self.bandwidth)):
            raise ValueError("kernel bandwidth must be a positive number")

    # --- blocks ----------------------------------------------------------------------------
    def gram(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The block [k(x_i, y_j)]."""
        ell, name = self.bandwidth, self.name
        if name == "bilinear":
            return 1.0 + X @ Y.T
        # translation invariant: centre both sets on the sources' mean, so that the expansion
        # |x|² + |y|² − 2x·y of sqdist does not lose the digits of |x − y| to |x|² far from the origin
        shift = Y.mean(0) if Y.shape[0] else 0.0
        d2 = sqdist(X - shift, Y - shift)
        if name == "gaussian":
            return np.exp(-0.5 * d2 / ell**2)
        if name == "imq":
            return 1.0 / np.sqrt(1.0 + d2 / ell**2)
        r = np.sqrt(d2)
        if name == "laplace":
            return np.exp(-r / ell)
        if name == "matern32":
            s = np.sqrt(3.0) * r / ell
            return (1.0 + s) * np.exp(-s)
        return -r  # energy

    def grad1(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The block [∇₁k(x_i, y_j)] of shape (n, m, d)."""
        ell, name = self.bandwidth, self.name
        if name == "bilinear":
            return np.broadcast_to(Y[None, :, :], (X.shape[0],) + Y.shape).copy()
        diff = X[:, None, :] - Y[None, :, :]
        d2 = (diff * diff).sum(-1)
        if name == "gaussian":
            return -(np.exp(-0.5 * d2 / ell**2) / ell**2)[..., None] * diff
        if name == "imq":
            return -((1.0 + d2 / ell**2) ** -1.5 / ell**2)[..., None] * diff
        r = np.sqrt(d2)
        safe = np.where(r > 0, r, 1.0)
        unit = np.where((r > 0)[..., None], diff / safe[..., None], 0.0)
        if name == "laplace":
            return -(np.exp(-r / ell) / ell)[..., None] * unit
        if name == "matern32":
            s = np.sqrt(3.0) * r / ell
            return -(3.0 / ell**2 * np.exp(-s))[..., None] * diff
        return -unit  # energy

    # --- products (pdeflow.approx.sums picks the back-end) ----------------------------------
    def apply(self, X: np.ndarray, Y: np.ndarray, V: np.ndarray, chunk: int = DEFAULT_CHUNK,
              tol: float = None, backend: str = None, relative_to: str = "result") -> np.ndarray:
        """Σ_j k(x_i, y_j) V_j for V of shape (m,) or (m, p), to the accuracy ``tol`` of
        :mod:`pdeflow.approx.sums` (default 1e-10 relative to max_i Σ_j |k||V_j|; exact back-ends
        to round-off).  ``chunk``: rows per Gram block of the numpy back-end."""
        return sums.apply(self, X, Y, V, sums.DEFAULT_TOL if tol is None else tol, chunk, backend, relative_to)

    def apply_grad1(self, X: np.ndarray, Y: np.ndarray, v: np.ndarray, chunk: int = DEFAULT_CHUNK,
                    tol: float = None, backend: str = None) -> np.ndarray:
        """Σ_j ∇₁k(x_i, y_j) v_j, shape (n, d), for v of shape (m,)."""
        return sums.apply_grad1(self, X, Y, v, sums.DEFAULT_TOL if tol is None else tol, chunk, backend)

    def apply_grad2(self, X: np.ndarray, Y: np.ndarray, v: np.ndarray, chunk: int = DEFAULT_CHUNK,
                    tol: float = None, backend: str = None) -> np.ndarray:
        """Σ_j ∇₂k(x_i, y_j) v_j = −Σ_j ∇₁k(x_i, y_j) v_j for the translation-invariant kernels;
        for ``bilinear`` ∇₂k(x, y) = x."""
        if self.name == "bilinear":
            return X * v.sum()
        return -self.apply_grad1(X, Y, v, chunk, tol, backend)

    def describe(self) -> dict:
        return {"kernel": self.name, "bandwidth": self.bandwidth}


KERNELS = ("gaussian", "imq", "laplace", "matern32", "energy", "bilinear")


def median_bandwidth(X: np.ndarray, max_points: int = 2000, rng=None) -> float:
    """Median heuristic of Liu & Wang (MATH §5.1): ℓ² = med²/(2 log N), med the median pairwise
    distance (on a subsample of ``max_points`` points for large N)."""
    n = X.shape[0]
    if n > max_points:
        rng = np.random.default_rng(0) if rng is None else rng
        X = X[rng.choice(n, max_points, replace=False)]
    d2 = sqdist(X, X)
    med2 = float(np.median(d2[np.triu_indices(X.shape[0], 1)]))
    return float(np.sqrt(max(med2, 1e-300) / (2.0 * np.log(max(n, 2)))))
