"""Gaussian kernel sums in d ≤ 3 by two non-uniform FFTs (finufft).

On a box [c − P/2, c + P/2]^d that holds every x_i and y_j with a margin, the Gaussian
k(z) = exp(−|z|²/(2ℓ²)) is replaced by its periodization, whose Fourier series is

    k_P(z) = Σ_κ ĝ_κ e^{2πi κ·z/P},   ĝ_κ = Π_d (√(2π) ℓ/P_d) exp(−2π² κ_d² ℓ²/P_d²),

truncated at |κ_d| ≤ K_d.  Then

    Σ_j k(x_i − y_j) V_j ≈ Σ_κ ĝ_κ e^{iκ·θ(x_i)} [Σ_j V_j e^{−iκ·θ(y_j)}],   θ(x) = 2π(x − c)/P,

the bracket a type-1 NUFFT and the outer sum a type-2 NUFFT; ∇₁k multiplies ĝ_κ by 2πiκ/P.
Three errors, each made ≤ ε relative to Σ_j |V_j|:
  * periodization: the margin P_d − L_d = aℓ puts every image at distance ≥ aℓ, k ≤ e^{−a²/2} = ε;
  * truncation: ĝ_κ/ĝ_0 ≤ e^{−a²/2} = ε beyond K_d = ⌈a P_d/(2πℓ)⌉;
  * the NUFFTs, asked for ε.
The accuracy contract of :mod:`pdeflow.approx.sums` is relative to R = max_i Σ_j k(x_i, y_j)|V_j|,
which can be far below Σ_j |V_j| when the sources spread over many bandwidths: ε = 0.1·tol·R_low/Σ|V|,
with R_low ≤ R the exact sums at the targets in the cells (side ℓ) of largest source mass.  When that asks for ε below what double precision
delivers (:data:`EPS_FLOOR`), or for more modes than :data:`MAX_MODES`, the call is declined and
the next back-end (exact) takes it.
"""
from __future__ import annotations

import math

import numpy as np

NAME = "nufft"
EPS_FLOOR = 1e-14
MAX_MODES = {1: 2 ** 21, 2: 2 ** 22, 3: 2 ** 21}
PROBES = 4

_why = "not checked"
_finufft = None


def available():
    global _why, _finufft
    if _why == "not checked":
        try:
            import finufft
            _finufft = finufft
            _why = None
        except Exception as exc:
            _why = f"finufft: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; pip install finufft"
    return _why


def supports(kernel, n, m, d):
    if kernel.name != "gaussian":
        return f"the {kernel.name} kernel has no NUFFT sum here (Gaussian only)"
    if d > 3:
        return f"d = {d} > 3"
    return None


class Plan:
    """The box, the mode counts and the Fourier multipliers of one (kernel, X, Y, |V|, tol) call."""

    def __init__(self, kernel, X, Y, absV, tol, grad=False, relative_to="result"):
        ell = float(kernel.bandwidth)
        d = X.shape[1]
        lo = np.minimum(X.min(0), Y.min(0))
        hi = np.maximum(X.max(0), Y.max(0))
        # each column's error is ε relative to its own Σ|V_c| (the transforms of a batch are
        # independent), so ε is set by the column with the smallest R_c/Σ|V_c|
        absV = absV.reshape(absV.shape[0], -1)
        ratios = []
        for c in range(absV.shape[1]):
            total = float(absV[:, c].sum())
            if total == 0.0:
                continue  # a zero column: exact whatever ε
            low = total if relative_to == "sources" else _result_lower_bound(X, Y, absV[:, c], ell, lo, grad)
            ratios.append(low / total)
        ratio = min(ratios) if ratios else 1.0
        # the derivative multipliers 2πκ/P reach a/ℓ ≤ 8.5/ℓ
        self.eps = (1.0 if relative_to == "sources" else 0.1) * tol * ratio / ((8.5 / ell) if grad else 1.0)
        self.declined = None
        if self.eps < EPS_FLOOR * (1.0 - 1e-9):  # not a rounding of 0.01·1e-12
            self.declined = f"needs NUFFT accuracy {self.eps:.1e} < {EPS_FLOOR:g}"
            return
        self.eps = max(self.eps, EPS_FLOOR)
        a = math.sqrt(2.0 * math.log(1.0 / self.eps))
        L = hi - lo
        self.P = L + a * ell
        self.K = np.ceil(a * self.P / (2.0 * math.pi * ell)).astype(int)
        self.modes = tuple(int(2 * k + 1) for k in self.K)
        if math.prod(self.modes) > MAX_MODES[d]:
            self.declined = f"{math.prod(self.modes)} Fourier modes > {MAX_MODES[d]} (bandwidth small for the box)"
            return
        self.center = 0.5 * (lo + hi)
        self.kappa = [np.arange(-k, k + 1, dtype=float) for k in self.K]
        factors = [(math.sqrt(2 * math.pi) * ell / P) * np.exp(-2.0 * math.pi**2 * (kap * ell / P) ** 2)
                   for kap, P in zip(self.kappa, self.P)]
        self.ghat = factors[0]
        for f in factors[1:]:
            self.ghat = np.multiply.outer(self.ghat, f)

    def angles(self, Z):
        return [np.ascontiguousarray(2.0 * math.pi * (Z[:, k] - self.center[k]) / self.P[k]) for k in range(Z.shape[1])]

    def derivative(self, k):
        """The multiplier 2πiκ_k/P_k of ∂/∂x_k, broadcast over the mode array."""
        shape = [1] * len(self.modes)
        shape[k] = self.modes[k]
        return (2j * math.pi / self.P[k]) * self.kappa[k].reshape(shape)


def _result_lower_bound(X, Y, absV, ell, lo, grad):
    """A lower bound of R = max_i Σ_j k(x_i, y_j)|V_j| (or of max_i Σ_j |∇₁k(x_i, y_j)||V_j|): the
    exact sums at a few targets, one in each of the cells of side ℓ with the largest source mass —
    the targets where R is attained or nearly so.  Cost O(PROBES · m)."""
    # the probes are only chosen on subsamples (any targets give a valid bound; these give a tight one)
    sx = _subsample(X.shape[0])
    sy = _subsample(Y.shape[0])
    ix = np.floor((X[sx] - lo) / ell).astype(np.int64)
    iy = np.floor((Y[sy] - lo) / ell).astype(np.int64)
    top = np.maximum(ix.max(0), iy.max(0)) + 1
    if float(np.prod(top.astype(float))) > 2.0 ** 62:
        probes = np.arange(min(PROBES, X.shape[0]))
    else:
        ux, first = np.unique(np.ravel_multi_index(ix.T, top), return_index=True)
        cells, inv = np.unique(np.ravel_multi_index(iy.T, top), return_inverse=True)
        mass = np.bincount(inv, weights=absV[sy])
        order = cells[np.argsort(mass)[::-1]]
        pos = np.searchsorted(ux, order).clip(max=len(ux) - 1)
        hit = ux[pos] == order  # the heaviest source cells that hold a target, heaviest first
        probes = sx[first[pos[hit][:PROBES]]]
        if len(probes) < PROBES:
            probes = np.concatenate([probes, np.arange(min(PROBES - len(probes), X.shape[0]))])
    Z = X[probes]
    d2 = np.maximum((Z * Z).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * Z @ Y.T, 0.0)
    k = np.exp(-0.5 * d2 / ell**2)
    if grad:
        k = k * np.sqrt(d2) / ell**2
    return float((k @ absV).max())


def _subsample(n, size=1 << 15):
    if n <= size:
        return np.arange(n)
    return np.random.default_rng(n).choice(n, size, replace=False)


# Below this many points a NUFFT runs on one thread: finufft's threads spin while they wait, and
# on a machine whose cores are busy (other ranks, other jobs) a small transform then takes ~10x
# longer than single-threaded (measured at N = 10^4 with one of two cores taken).
THREADED_POINTS = 200_000


def _threads(npts):
    return {"nthreads": 1} if npts < THREADED_POINTS else {}


def _type1(d, ang, c, modes, eps):
    f, kw = _finufft, _threads(ang[0].size)
    if d == 1:
        return f.nufft1d1(ang[0], c, modes[0], eps=eps, isign=-1, **kw)
    if d == 2:
        return f.nufft2d1(ang[0], ang[1], c, modes, eps=eps, isign=-1, **kw)
    return f.nufft3d1(ang[0], ang[1], ang[2], c, modes, eps=eps, isign=-1, **kw)


def _type2(d, ang, F, eps):
    f, kw = _finufft, _threads(ang[0].size)
    if d == 1:
        return f.nufft1d2(ang[0], F, eps=eps, isign=1, **kw)
    if d == 2:
        return f.nufft2d2(ang[0], ang[1], F, eps=eps, isign=1, **kw)
    return f.nufft3d2(ang[0], ang[1], ang[2], F, eps=eps, isign=1, **kw)


def plan(kernel, X, Y, absV, tol, grad=False, relative_to="result"):
    available()
    return Plan(kernel, X, Y, absV, tol, grad, relative_to)


def apply(kernel, X, Y, V, tol, chunk, relative_to="result"):
    """Σ_j k(x_i, y_j) V_j for V of shape (m, p); the exact back-end when the plan declines."""
    pl = plan(kernel, X, Y, np.abs(V), tol, relative_to=relative_to)
    if pl.declined:
        return _fallback(kernel, X, Y, V, tol, chunk, pl.declined)
    d = X.shape[1]
    c = np.ascontiguousarray(V.T, dtype=complex)  # (p, m)
    C = _type1(d, pl.angles(Y), c if c.shape[0] > 1 else c[0], pl.modes, pl.eps)
    F = np.ascontiguousarray(C * pl.ghat)
    out = _type2(d, pl.angles(X), F, pl.eps)
    return np.ascontiguousarray(np.real(out).reshape(V.shape[1], X.shape[0]).T)


def apply_grad1(kernel, X, Y, v, tol, chunk):
    """Σ_j ∇₁k(x_i, y_j) v_j, shape (n, d)."""
    pl = plan(kernel, X, Y, np.abs(v), tol, grad=True)
    if pl.declined:
        return _fallback_grad(kernel, X, Y, v, tol, chunk, pl.declined)
    d = X.shape[1]
    C = _type1(d, pl.angles(Y), v.astype(complex), pl.modes, pl.eps) * pl.ghat
    F = np.ascontiguousarray(np.stack([C * pl.derivative(k) for k in range(d)]))
    out = _type2(d, pl.angles(X), F, pl.eps)
    return np.ascontiguousarray(np.real(out).reshape(d, X.shape[0]).T)


def _next(n, m, why):
    from . import backend, notice
    if float(n) * float(m) > 1e10:  # a silent O(N·M) at this size would look like a hang
        notice(f"declined:{why}", f"NUFFT kernel sum declined ({why}): exact sum of {n} x {m} terms")
    mod = backend("compiled")
    if mod.available() is not None:
        notice("missing:compiled", f"kernel back-end 'compiled' unavailable ({mod.available()}); using numpy chunks")
        mod = backend("numpy")
    return mod


def _fallback(kernel, X, Y, V, tol, chunk, why):
    return _next(X.shape[0], Y.shape[0], why).apply(kernel, X, Y, V, tol, chunk)


def _fallback_grad(kernel, X, Y, v, tol, chunk, why):
    return _next(X.shape[0], Y.shape[0], why).apply_grad1(kernel, X, Y, v, tol, chunk)
