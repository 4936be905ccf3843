"""Kernel sums  f_i = Σ_j k(x_i, y_j) V_j  and  g_i = Σ_j ∇₁k(x_i, y_j) v_j  by interchangeable back-ends.

A back-end is a module of this package that declares ``NAME``, ``available()`` (its optional
dependency imports), ``supports(kernel, n, m, d)`` (None, or the reason it declines the call) and
``apply(kernel, X, Y, V, tol)`` / ``apply_grad1(kernel, X, Y, v, tol)``.  ``ORDER`` lists them
fastest first; :func:`choose` takes the first that is installed and accepts the call:

* ``nufft``   — Gaussian kernel, d ≤ 3: the kernel's Fourier series on a padded periodic box,
  applied with two non-uniform FFTs (finufft).  O(N + M + modes·log modes) work.
* ``compiled`` — every kernel and dimension: the exact double sum compiled by numba, threaded over
  the rows, no Gram blocks in memory.  O(N·M) work, O(N + M) memory.
* ``numpy``   — the exact sum in row chunks of the Gram matrix (always present).  O(N·M) work,
  O(chunk·M) memory.

Accuracy contract (checked by tests/unit/test_kernel_sums.py on random inputs in d = 1, 2, 3):
for every column c,  max_i |f_i − f_i^exact| ≤ tol · max_i Σ_j |k(x_i, y_j)| |V_jc|  (and the same
with |∇₁k| for gradients) — for nonnegative weights and a positive kernel, the ∞-norm of the result.
The exact back-ends meet it for any tol ≥ 1e-14; ``nufft`` is asked for ``tol`` (default
:data:`DEFAULT_TOL`).  A bound relative to the result itself is impossible for any fast summation
when the V_j have both signs and cancel.

Override: ``PDEFLOW_KERNEL_BACKEND`` = auto | nufft | compiled | numpy in the environment, the
``pdeflow --kernel-backend`` flag, or the :func:`use` context manager.  Asking for a back-end that is
not installed, or that declines the call (e.g. ``nufft`` for the IMQ kernel), falls back along
``ORDER`` with a one-line notice on stderr, printed once per reason — never a failure.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys

import numpy as np

DEFAULT_TOL = 1e-10
ORDER = ("nufft", "compiled", "numpy")
CHOICES = ("auto",) + ORDER
ENV = "PDEFLOW_KERNEL_BACKEND"

# Below this many kernel evaluations the chunked numpy sum is as fast as anything (no JIT, no plan).
SMALL_WORK = 2.0e6

_modules: dict = {}
_noticed: set = set()
_override: list = []


def backend(name: str):
    """The back-end module ``name`` (imported lazily: numba's import alone takes ~0.5 s)."""
    if name not in ORDER:
        raise ValueError(f"unknown kernel back-end {name!r}; choose from {', '.join(CHOICES)}")
    if name not in _modules:
        _modules[name] = importlib.import_module(f"{__name__}.{name}")
    return _modules[name]


def requested() -> str:
    """The back-end asked for: the innermost :func:`use`, else $PDEFLOW_KERNEL_BACKEND, else auto."""
    if _override:
        return _override[-1]
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV}={value!r} is not a kernel back-end; choose from {', '.join(CHOICES)}")
    return value


@contextlib.contextmanager
def use(name: str):
    """Run the enclosed kernel sums with back-end ``name`` (or ``auto``)."""
    if name not in CHOICES:
        raise ValueError(f"unknown kernel back-end {name!r}; choose from {', '.join(CHOICES)}")
    _override.append(name)
    try:
        yield
    finally:
        _override.pop()


def notice(key: str, text: str) -> None:
    """One stderr line per distinct reason and process: a degraded back-end is news, not an error."""
    if key in _noticed:
        return
    _noticed.add(key)
    print(f"pdeflow: notice: {text}", file=sys.stderr, flush=True)


def available() -> dict:
    """{back-end: None if usable here, else why not} — shown by ``pdeflow backends``."""
    return {name: backend(name).available() for name in ORDER}


def choose(kernel, n: int, m: int, d: int, want: str = None) -> str:
    """The back-end for one sum of n targets and m sources in dimension d."""
    want = requested() if want is None else want
    if want == "auto":
        if float(n) * float(m) <= SMALL_WORK:
            return "numpy"
        candidates = ORDER
    else:
        candidates = ORDER[ORDER.index(want):]
    for name in candidates:
        mod = backend(name)
        why = mod.available() or mod.supports(kernel, n, m, d)
        if why is None:
            return name
        # declining a call it was never meant for (auto on a non-Gaussian kernel) is not news;
        # a missing package, or an explicit request that cannot be honoured, is
        if want != "auto" and name == want:
            notice(f"{name}:{why}", f"kernel back-end {name!r} not used ({why}); falling back")
        elif mod.available() is not None:
            notice(f"missing:{name}", f"kernel back-end {name!r} unavailable ({mod.available()}); "
                   f"kernel sums use the next back-end")
    return "numpy"


def _prepare(X, Y):
    X = np.ascontiguousarray(X, dtype=float)
    Y = np.ascontiguousarray(Y, dtype=float)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"kernel sums need point arrays (n, d) and (m, d), got {X.shape} and {Y.shape}")
    return X, Y


def apply(kernel, X, Y, V, tol: float = DEFAULT_TOL, chunk: int = None, backend_name: str = None,
          relative_to: str = "result") -> np.ndarray:
    """Σ_j k(x_i, y_j) V_j for V of shape (m,) or (m, p).

    ``relative_to="sources"`` loosens the contract to max_i |f_i − f_i^exact| ≤ tol · Σ_j |V_jc|:
    the scale of an operator norm, which is what an iterative solver needs (krr's CG), and it
    spares the NUFFT the estimate of R."""
    if relative_to not in ("result", "sources"):
        raise ValueError(f"relative_to must be 'result' or 'sources', got {relative_to!r}")
    X, Y = _prepare(X, Y)
    V = np.asarray(V, dtype=float)
    if V.ndim == 0 or V.shape[0] != Y.shape[0]:
        raise ValueError(f"kernel sums: values of shape {V.shape} for {Y.shape[0]} source points")
    cols = int(np.prod(V.shape[1:]))
    if cols == 0 or X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros((X.shape[0],) + V.shape[1:])
    V2 = np.ascontiguousarray(V.reshape(V.shape[0], cols))
    name = choose(kernel, X.shape[0], Y.shape[0], X.shape[1], backend_name)
    mod = backend(name)
    if name == "nufft":
        out = mod.apply(kernel, X, Y, V2, tol, chunk, relative_to=relative_to)
    else:
        out = mod.apply(kernel, X, Y, V2, tol, chunk)
    return out.reshape((X.shape[0],) + V.shape[1:])


def apply_grad1(kernel, X, Y, v, tol: float = DEFAULT_TOL, chunk: int = None, backend_name: str = None) -> np.ndarray:
    """Σ_j ∇₁k(x_i, y_j) v_j, shape (n, d), for v of shape (m,)."""
    X, Y = _prepare(X, Y)
    v = np.ascontiguousarray(v, dtype=float)
    if v.shape != (Y.shape[0],):
        raise ValueError(f"kernel gradient sums need one value per source point, got shape {v.shape}")
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros(X.shape)
    name = choose(kernel, X.shape[0], Y.shape[0], X.shape[1], backend_name)
    return backend(name).apply_grad1(kernel, X, Y, v, tol, chunk)


LOG_SUM_TOL = 1e-13
LOG_SUM_REL = 1e-7


def log_sum_positive(kernel, X, Y, logw, exact_rows, rel: float = LOG_SUM_REL, tol: float = LOG_SUM_TOL,
                     add_to=None) -> np.ndarray:
    """log Σ_j k(x_i, y_j) e^{logw_j} for a positive kernel, every row to relative accuracy ``rel``.

    A fast sum S̃ of the weights e^{logw_j − max logw} has |S̃_i − S_i| ≤ tol·Σ_j e^{logw_j − max logw}
    (``relative_to="sources"``), i.e. relative error ≤ tol·ΣW/S̃_i in row i; the rows where that
    exceeds ``rel`` (targets far from every source: a KDE's isolated tail particles are held up by
    their self term, a mixture's far-out points are not) are handed to ``exact_rows(rows)``, which
    must return the same logarithms by an exact method (log-sum-exp).  Other back-ends are exact:
    then ``exact_rows`` gets every row, so a caller keeps its own exact code for small problems.

    ``add_to`` (log values A_i): return log(e^{A_i} + S_i) instead, to relative accuracy ``rel`` of
    that total — a row then needs the exact sum only when S_i is not negligible beside e^{A_i}
    (SMC-WFR's reflected images of points far from the faces' means: tiny terms added to the
    unreflected mixture)."""
    X, Y = _prepare(X, Y)
    logw = np.asarray(logw, float)
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    finite = np.isfinite(logw)

    def combine(rows, logs):
        return logs if add_to is None else np.logaddexp(np.asarray(add_to, float)[rows], logs)

    if n == 0 or not finite.any() or choose(kernel, n, m, d) != "nufft":
        return combine(np.arange(n), exact_rows(np.arange(n)))
    top = float(logw[finite].max())
    W = np.where(finite, np.exp(np.where(finite, logw, top) - top), 0.0)
    S = backend("nufft").apply(kernel, X, Y[finite], W[finite, None], tol, None, relative_to="sources")[:, 0]
    bound = tol * W.sum()  # absolute error of S̃, in units of e^{top}
    total = S if add_to is None else S + np.exp(np.minimum(np.asarray(add_to, float) - top, 700.0))
    bad = ~(total * rel > bound)
    with np.errstate(divide="ignore"):
        out = combine(np.arange(n), np.log(np.where(bad, 1.0, np.maximum(S, 0.0))) + top)
    if bad.any():
        rows = np.flatnonzero(bad)
        out[rows] = combine(rows, exact_rows(rows))
    return out
