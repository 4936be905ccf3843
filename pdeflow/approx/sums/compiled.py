"""The exact kernel sums compiled by numba: a threaded loop over the rows, each row summing over all
sources with no Gram block in memory — O(N·M) work, O(N + M) memory, every kernel and dimension.

The kernel formulas are those of :class:`pdeflow.approx.kernels.Kernel` (k and ∇₁k, with the
subgradient 0 at r = 0 for laplace and energy); the tests compare the two on random inputs.
"""
from __future__ import annotations

import math

import numpy as np

NAME = "compiled"
CODES = {"gaussian": 0, "imq": 1, "laplace": 2, "matern32": 3, "energy": 4, "bilinear": 5}

try:  # numba is optional: without it (or with a numba built for another numpy) this back-end declines
    from numba import njit, prange
    _why = None
except Exception as exc:
    _why = f"numba: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; pip install numba"

    def njit(*args, **kwargs):
        return lambda f: f

    prange = range


def available():
    return _why


def supports(kernel, n, m, d):
    return None if kernel.name in CODES else f"kernel {kernel.name!r} not compiled"


@njit(cache=True, inline="always")
def value(code, d2, dot, ell):
    if code == 0:
        return math.exp(-0.5 * d2 / (ell * ell))
    if code == 1:
        return 1.0 / math.sqrt(1.0 + d2 / (ell * ell))
    if code == 5:
        return 1.0 + dot
    r = math.sqrt(d2)
    if code == 2:
        return math.exp(-r / ell)
    if code == 3:
        s = math.sqrt(3.0) * r / ell
        return (1.0 + s) * math.exp(-s)
    return -r

@njit(cache=True, inline="always")
def radial(code, d2, ell):
    """∇₁k = radial(r) · (x − y) for the translation-invariant kernels."""
    if code == 0:
        return -math.exp(-0.5 * d2 / (ell * ell)) / (ell * ell)
    if code == 1:
        return -((1.0 + d2 / (ell * ell)) ** -1.5) / (ell * ell)
    if code == 3:
        return -3.0 / (ell * ell) * math.exp(-math.sqrt(3.0) * math.sqrt(d2) / ell)
    if d2 == 0.0:
        return 0.0
    r = math.sqrt(d2)
    if code == 2:
        return -math.exp(-r / ell) / (ell * r)
    return -1.0 / r  # energy

@njit(parallel=True, cache=True)
def ksum(X, Y, V, code, ell, out):
    n, d = X.shape
    m, p = V.shape
    for i in prange(n):
        acc = np.zeros(p)
        for j in range(m):
            d2 = 0.0
            dot = 0.0
            for k in range(d):
                t = X[i, k] - Y[j, k]
                d2 += t * t
                dot += X[i, k] * Y[j, k]
            kv = value(code, d2, dot, ell)
            for c in range(p):
                acc[c] += kv * V[j, c]
        for c in range(p):
            out[i, c] = acc[c]

@njit(parallel=True, cache=True)
def gsum(X, Y, v, code, ell, out):
    n, d = X.shape
    m = Y.shape[0]
    for i in prange(n):
        acc = np.zeros(d)
        for j in range(m):
            if code == 5:  # bilinear: ∇₁(1 + x·y) = y
                for k in range(d):
                    acc[k] += Y[j, k] * v[j]
                continue
            d2 = 0.0
            for k in range(d):
                t = X[i, k] - Y[j, k]
                d2 += t * t
            g = radial(code, d2, ell) * v[j]
            for k in range(d):
                acc[k] += g * (X[i, k] - Y[j, k])
        for k in range(d):
            out[i, k] = acc[k]


def apply(kernel, X, Y, V, tol, chunk):
    if _why is not None:
        raise RuntimeError(_why)
    out = np.empty((X.shape[0], V.shape[1]))
    ksum(X, Y, V, CODES[kernel.name], float(kernel.bandwidth), out)
    return out


def apply_grad1(kernel, X, Y, v, tol, chunk):
    if _why is not None:
        raise RuntimeError(_why)
    out = np.empty(X.shape)
    gsum(X, Y, v, CODES[kernel.name], float(kernel.bandwidth), out)
    return out
