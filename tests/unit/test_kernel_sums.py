"""The kernel-sum back-ends of pdeflow.approx.sums against a direct float64 reference.

The accuracy contract (module docstring of pdeflow.approx.sums): for every column c,
    max_i |f_i − f_i^exact| ≤ tol · max_i Σ_j |k(x_i, y_j)| |V_jc|          (relative_to="result")
    max_i |f_i − f_i^exact| ≤ tol · Σ_j |V_jc|                               (relative_to="sources")
and for gradients max_i ‖g_i − g_i^exact‖ ≤ tol · max_i Σ_j ‖∇₁k(x_i, y_j)‖ |v_j|.
The exact back-ends (compiled, numpy) are held to 1e-12 of the same scale.

The reference below is written from the kernel formulas with broadcast differences x_i − y_j (not
the |x|² + |y|² − 2x·y expansion, which loses digits); it shares no code with the package.
"""
from __future__ import annotations

import numpy as np
import pytest

from pdeflow.approx import sums
from pdeflow.approx.kernels import KERNELS, Kernel
from pdeflow.approx.krr import krr
from pdeflow.approx.methods import birth_death as bd

nufft_mod = sums.backend("nufft")
compiled_mod = sums.backend("compiled")

EXACT_TOL = 1e-12  # exact back-ends, relative to the contract scale
NOTICE = "pdeflow: notice:"


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch):
    """Every test starts with no override, no env request and no notice printed yet."""
    monkeypatch.delenv(sums.ENV, raising=False)
    monkeypatch.setattr(sums, "_noticed", set())
    monkeypatch.setattr(sums, "_override", [])


# --- the reference ---------------------------------------------------------------------------------

def reference(name, ell, X, Y):
    """([k(x_i, y_j)] (n, m), [∇₁k(x_i, y_j)] (n, m, d)) in float64 from the formulas."""
    diff = X[:, None, :] - Y[None, :, :]
    d2 = np.einsum("imk,imk->im", diff, diff)
    r = np.sqrt(d2)
    if name == "bilinear":
        return 1.0 + np.einsum("ik,mk->im", X, Y), np.broadcast_to(Y[None, :, :], diff.shape)
    if name == "gaussian":
        k = np.exp(-0.5 * d2 / ell**2)
        radial = -k / ell**2
    elif name == "imq":
        k = 1.0 / np.sqrt(1.0 + d2 / ell**2)
        radial = -((1.0 + d2 / ell**2) ** -1.5) / ell**2
    elif name == "laplace":
        k = np.exp(-r / ell)
        radial = -k / (ell * r)
    elif name == "matern32":
        s = np.sqrt(3.0) * r / ell
        k = (1.0 + s) * np.exp(-s)
        radial = -3.0 / ell**2 * np.exp(-s)
    elif name == "energy":
        k = -r
        radial = -1.0 / r
    else:
        raise AssertionError(name)
    return k, radial[..., None] * diff


def cloud(rng, n, d, outliers=3, far=8.0):
    """Standard normal points plus a few far outliers (a box much larger than the bulk)."""
    Z = rng.standard_normal((n, d))
    Z[:outliers] = far * np.sign(rng.standard_normal((outliers, d))) + 0.3 * rng.standard_normal((outliers, d))
    return Z


def problem(d, seed, n=300, m=400):
    """Targets ≠ sources, signed values in two columns of different size."""
    rng = np.random.default_rng(seed)
    X, Y = cloud(rng, n, d), cloud(rng, m, d)
    V = rng.standard_normal((m, 2))
    V[:, 1] *= 1e-3
    return X, Y, V


def errors(kernel, X, Y, V, f, g):
    """(value error / contract scale per column, sources-relative per column, gradient error / scale)."""
    k, G = reference(kernel.name, kernel.bandwidth, X, Y)
    exact = k @ V
    scale = np.abs(k) @ np.abs(V)
    e_val = np.abs(f - exact).max(0) / scale.max(0)
    v = V[:, 0]
    gexact = np.einsum("imk,m->ik", G, v)
    gscale = (np.linalg.norm(G, axis=-1) @ np.abs(v)).max()
    e_grad = np.linalg.norm(g - gexact, axis=1).max() / gscale
    return e_val, e_grad, exact, np.abs(V).sum(0)


class Spy:
    """Counts the type-1 NUFFTs actually run (a plan that declines runs none)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = nufft_mod._type1

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(nufft_mod, "_type1", counting)


def notices(err: str):
    return [line for line in err.splitlines() if line.startswith(NOTICE)]


# --- 1. every back-end x kernel x d against the reference ---------------------------------------

CONFIGS = [("gaussian", 1.0), ("gaussian", 0.1)] + [(name, 0.7) for name in KERNELS if name != "gaussian"]
CASES = (
    [("nufft", "gaussian", ell, d, tol) for ell in (1.0, 0.1) for d in (1, 2, 3) for tol in (1e-10, 1e-6)]
    + [(be, name, ell, d, 1e-10) for be in ("compiled", "numpy") for name, ell in CONFIGS for d in (1, 2, 3)]
)


def require(*names):
    """Skip where an optional back-end is not installed (the dolfinx 0.9 chroot has neither)."""
    for name in names:
        why = sums.backend(name).available()
        if why is not None:
            pytest.skip(f"back-end {name!r} not installed here: {why}")



def test_every_kernel_is_covered():
    assert set(compiled_mod.CODES) == set(KERNELS)
    assert {c[1] for c in CASES if c[0] == "numpy"} == set(KERNELS)


@pytest.mark.parametrize("be,name,ell,d,tol", CASES, ids=[f"{c[0]}-{c[1]}-l{c[2]}-d{c[3]}-tol{c[4]:g}" for c in CASES])
def test_backend_meets_the_contract(be, name, ell, d, tol, monkeypatch):
    require(be)
    kernel = Kernel(name, ell)
    X, Y, V = problem(d, seed=100 * d + int(10 * ell) + len(name))
    spy = Spy(monkeypatch)
    f = sums.apply(kernel, X, Y, V, tol=tol, backend_name=be)
    g = sums.apply_grad1(kernel, X, Y, V[:, 0], tol=tol, backend_name=be)
    fs = sums.apply(kernel, X, Y, V, tol=tol, backend_name=be, relative_to="sources")
    assert f.shape == (X.shape[0], 2) and g.shape == X.shape and fs.shape == f.shape
    e_val, e_grad, exact, total = errors(kernel, X, Y, V, f, g)
    e_src = np.abs(fs - exact).max(0) / total
    bound = tol if be == "nufft" else EXACT_TOL
    assert np.all(e_val <= bound), (e_val, bound)
    assert e_grad <= bound, (e_grad, bound)
    assert np.all(e_src <= bound), (e_src, bound)
    if be == "nufft":
        if not (d == 3 and ell == 0.1):  # there the box needs > MAX_MODES modes: declined, exact
            assert spy.calls == 3, "the NUFFT was declined where it should have run"
    else:
        assert spy.calls == 0


@pytest.mark.parametrize("be", sums.ORDER)
def test_one_dimensional_values_and_grad2(be):
    """V of shape (m,) gives (n,); apply_grad2 = −apply_grad1 (translation invariant), X·Σv (bilinear)."""
    require(be)
    X, Y, V = problem(2, seed=7)
    v = V[:, 0]
    for name, ell in (("gaussian", 0.6), ("bilinear", 1.0)):
        kernel = Kernel(name, ell)
        k, G = reference(name, ell, X, Y)
        f = kernel.apply(X, Y, v, backend=be)
        assert f.shape == (X.shape[0],)
        assert np.abs(f - k @ v).max() <= 1e-10 * (np.abs(k) @ np.abs(v)).max()
        g2 = kernel.apply_grad2(X, Y, v, backend=be)
        want = X * v.sum() if name == "bilinear" else -np.einsum("imk,m->ik", G, v)
        assert np.abs(g2 - want).max() <= 1e-10 * (np.linalg.norm(G, axis=-1) @ np.abs(v)).max() + 1e-12 * np.abs(want).max()


# --- 2. the NUFFT is used when asked, and declines what it cannot do ----------------------------

def test_nufft_is_chosen_and_runs(monkeypatch, capsys):
    require("nufft", "compiled")
    gauss = Kernel("gaussian", 0.5)
    assert sums.choose(gauss, 5000, 5000, 2, "nufft") == "nufft"
    assert sums.choose(gauss, 5000, 5000, 3) == "nufft"  # auto, large
    assert sums.choose(gauss, 100, 100, 2) == "numpy"  # auto, small work
    assert sums.choose(Kernel("imq", 0.5), 5000, 5000, 2) == "compiled"  # auto, not Gaussian
    assert notices(capsys.readouterr().err) == []  # auto declining is not news
    X, Y, V = problem(2, seed=3, n=500, m=600)
    spy = Spy(monkeypatch)
    f = sums.apply(gauss, X, Y, V, backend_name="nufft")
    assert spy.calls == 1
    want, scale = exact_values(gauss, X, Y, V)
    assert np.all(np.abs(f - want).max(0) <= sums.DEFAULT_TOL * scale)
    # the auto choice reaches the NUFFT for a large sum (1200 x 2000 = 2.4e6 > SMALL_WORK)
    rng = np.random.default_rng(4)
    X2, Y2 = cloud(rng, 1200, 1), cloud(rng, 2000, 1)
    V2 = rng.standard_normal(2000)
    f2 = gauss.apply(X2, Y2, V2)
    assert spy.calls == 2
    k, _ = reference("gaussian", 0.5, X2, Y2)
    assert np.abs(f2 - k @ V2).max() <= sums.DEFAULT_TOL * (k @ np.abs(V2)).max()
    assert notices(capsys.readouterr().err) == []


@pytest.mark.parametrize("name,d", [("imq", 2), ("laplace", 1), ("gaussian", 4)])
def test_nufft_declines_and_falls_back_exactly(name, d, monkeypatch, capsys):
    require("nufft", "compiled")
    kernel = Kernel(name, 0.8)
    assert sums.choose(kernel, 5000, 5000, d, "nufft") == "compiled"
    err = capsys.readouterr().err
    assert len(notices(err)) == 1 and "'nufft' not used" in err
    spy = Spy(monkeypatch)
    X, Y, V = problem(d, seed=11 + d, n=200, m=250)
    f = sums.apply(kernel, X, Y, V, backend_name="nufft")
    g = sums.apply_grad1(kernel, X, Y, V[:, 0], backend_name="nufft")
    assert spy.calls == 0
    e_val, e_grad, *_ = errors(kernel, X, Y, V, f, g)
    assert np.all(e_val <= EXACT_TOL) and e_grad <= EXACT_TOL
    assert notices(capsys.readouterr().err) == []  # said once already


# --- 3. degradation: missing packages, the environment, use() -----------------------------------

def exact_values(kernel, X, Y, V):
    k, _ = reference(kernel.name, kernel.bandwidth, X, Y)
    return k @ V, (np.abs(k) @ np.abs(V)).max(0)


def test_missing_finufft_degrades_with_one_notice(monkeypatch, capsys):
    require("compiled")
    monkeypatch.setattr(nufft_mod, "_why", "finufft: No module named 'finufft' (simulated); pip install finufft")
    gauss = Kernel("gaussian", 0.5)
    X, Y, V = problem(2, seed=21)
    want, scale = exact_values(gauss, X, Y, V)
    spy = Spy(monkeypatch)
    for _ in range(2):  # explicitly asked for
        f = sums.apply(gauss, X, Y, V, backend_name="nufft")
        assert np.all(np.abs(f - want).max(0) <= EXACT_TOL * scale)
    lines = notices(capsys.readouterr().err)
    assert len(lines) == 1 and "nufft" in lines[0] and "simulated" in lines[0]
    # auto on a large sum: the compiled back-end takes it, one (other) notice however often
    chosen_twice_and_exact(gauss, *above_small_work(gauss, seed=22, d=1, cols=1), expect="compiled")
    lines = notices(capsys.readouterr().err)
    assert len(lines) == 1 and "unavailable" in lines[0]
    assert spy.calls == 0


def above_small_work(kernel, seed, d, cols):
    """1500 × 1500 points (above sums.SMALL_WORK, so that auto does not pick numpy) with the exact sums."""
    rng = np.random.default_rng(seed)
    X, Y = cloud(rng, 1500, d), cloud(rng, 1500, d)
    V = rng.standard_normal((1500, cols))
    return (X, Y, V) + tuple(exact_values(kernel, X, Y, V))


def chosen_twice_and_exact(kernel, X, Y, V, want, scale, expect, ask=None):
    """Called twice (a notice must not repeat): the back-end ``expect`` is chosen and the sums are exact."""
    for _ in range(2):
        assert sums.choose(kernel, X.shape[0], Y.shape[0], X.shape[1], ask) == expect
        f = sums.apply(kernel, X, Y, V, backend_name=ask)
        assert np.all(np.abs(f - want).max(0) <= EXACT_TOL * scale)


def test_missing_numba_degrades_with_one_notice(monkeypatch, capsys):
    monkeypatch.setattr(compiled_mod, "_why", "numba: No module named 'numba' (simulated); pip install numba")
    imq = Kernel("imq", 0.5)
    X, Y, V = problem(3, seed=31)
    # compiled.apply would raise if it were reached
    chosen_twice_and_exact(imq, X, Y, V, *exact_values(imq, X, Y, V), expect="numpy", ask="compiled")
    lines = notices(capsys.readouterr().err)
    assert len(lines) == 1 and "compiled" in lines[0] and "simulated" in lines[0]


def test_declined_nufft_plan_without_numba_uses_numpy(monkeypatch, capsys):
    """d = 3 with a narrow bandwidth: the NUFFT plan declines (too many modes) and its own fallback
    must skip the missing compiled back-end."""
    require("nufft")
    monkeypatch.setattr(compiled_mod, "_why", "numba: simulated; pip install numba")
    gauss = Kernel("gaussian", 0.1)
    X, Y, V = problem(3, seed=41)
    want, scale = exact_values(gauss, X, Y, V)
    for _ in range(2):
        f = sums.apply(gauss, X, Y, V, backend_name="nufft")
        assert np.all(np.abs(f - want).max(0) <= EXACT_TOL * scale)
    assert len(notices(capsys.readouterr().err)) == 1


def test_both_missing_one_notice_per_reason(monkeypatch, capsys):
    monkeypatch.setattr(nufft_mod, "_why", "finufft: simulated")
    monkeypatch.setattr(compiled_mod, "_why", "numba: simulated")
    gauss = Kernel("gaussian", 1.0)
    chosen_twice_and_exact(gauss, *above_small_work(gauss, seed=51, d=2, cols=2), expect="numpy")
    lines = notices(capsys.readouterr().err)
    assert len(lines) == 2
    assert any("'nufft'" in line for line in lines) and any("'compiled'" in line for line in lines)


def test_environment_and_use(monkeypatch):
    require("nufft", "compiled")
    gauss = Kernel("gaussian", 0.5)
    assert sums.requested() == "auto"
    monkeypatch.setenv(sums.ENV, "numpy")
    assert sums.choose(gauss, 5000, 5000, 2) == "numpy"
    monkeypatch.setenv(sums.ENV, " Compiled ")
    assert sums.choose(gauss, 5000, 5000, 2) == "compiled"
    monkeypatch.setenv(sums.ENV, "fastest")
    with pytest.raises(ValueError, match=sums.ENV):
        sums.choose(gauss, 5000, 5000, 2)
    with pytest.raises(ValueError, match=sums.ENV):
        gauss.apply(np.zeros((3, 2)), np.ones((4, 2)), np.ones(4))
    monkeypatch.setenv(sums.ENV, "numpy")
    with sums.use("compiled"):
        assert sums.choose(gauss, 5000, 5000, 2) == "compiled"
        with sums.use("auto"):
            assert sums.choose(gauss, 5000, 5000, 2) == "nufft"
        assert sums.choose(gauss, 5000, 5000, 2) == "compiled"
    assert sums.choose(gauss, 5000, 5000, 2) == "numpy"
    monkeypatch.setenv(sums.ENV, "fastest")
    with sums.use("nufft"):  # the override is not even read from the environment
        assert sums.choose(gauss, 5000, 5000, 2) == "nufft"
    with pytest.raises(ValueError):
        with sums.use("gpu"):
            pass
    assert sums._override == []
    with pytest.raises(ValueError):
        sums.backend("gpu")


# --- 4. KRR: preconditioned CG with NUFFT products vs Cholesky -----------------------------------

def _krr_problem(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 2))
    xi = np.column_stack([np.sin(x[:, 0]) + x[:, 1] ** 2, np.cos(2.0 * x[:, 1])])
    return x, np.full(n, 1.0 / n), xi


def test_krr_pcg_matches_cholesky(monkeypatch):
    require("nufft")
    kernel, lam = Kernel("gaussian", 0.5), 1e-3
    x, w, xi = _krr_problem(3000)
    dense = {}
    r_dense = krr(kernel, x, w, xi, lam, dense_limit=10**9, info=dense)
    r_dense1 = r_dense[:, 0]  # the operator acts column by column
    assert dense["solver"] == "cholesky" and r_dense.shape == (3000, 2)
    spy = Spy(monkeypatch)
    info, info1, plain = {}, {}, {}
    r = krr(kernel, x, w, xi, lam, dense_limit=0, info=info)
    r1 = krr(kernel, x, w, xi[:, 0], lam, dense_limit=0, info=info1)
    assert spy.calls > 0, "the CG products did not use the NUFFT"
    assert info["solver"] == "pcg" and info["rank"] > 0 and len(info["iterations"]) == 2
    assert info1["solver"] == "pcg" and r1.shape == (3000,)
    rel = np.abs(r - r_dense).max(0) / np.abs(r_dense).max(0)
    rel1 = np.abs(r1 - r_dense1).max() / np.abs(r_dense1).max()
    assert np.all(rel <= 1e-8), rel
    assert rel1 <= 1e-8, rel1
    # the same solve without the preconditioner takes many more iterations
    krr(kernel, x, w, xi[:, 0], lam, dense_limit=0, rank=0, info=plain)
    assert plain["solver"] == "cg" and plain["rank"] is None
    assert 3 * max(info1["iterations"]) <= plain["iterations"][0], (info1, plain)
    # and the preconditioned count does not grow with N
    x2, w2, xi2 = _krr_problem(6000)
    big = {}
    krr(kernel, x2, w2, xi2, lam, dense_limit=0, info=big)
    assert big["solver"] == "pcg" and max(big["iterations"]) <= 40, big
    assert max(big["iterations"]) <= 2 * max(info["iterations"]) + 5, (info, big)


# --- 5. log_gauss_mixture through the NUFFT --------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2])
def test_log_gauss_mixture_fast_matches_exact(d, monkeypatch):
    require("nufft")
    rng = np.random.default_rng(60 + d)
    m, n = 600, 1500
    centers = rng.standard_normal((m, d))
    logW = rng.standard_normal(m) - np.log(m)
    logW[::17] = -np.inf  # some dead centers
    y = 1.5 * rng.standard_normal((n, d))
    far = np.arange(20)
    y[far] = 9.0 * np.sign(rng.standard_normal((20, d))) + rng.standard_normal((20, d))  # ≥ ~20σ from every center
    sigma = np.linspace(0.25, 0.4, d)
    given = []
    original = bd.log_gauss_mixture_exact

    def spy_exact(yy, *args):
        given.append(np.array(yy))
        return original(yy, *args)

    monkeypatch.setattr(bd, "log_gauss_mixture_exact", spy_exact)
    spy = Spy(monkeypatch)
    with sums.use("nufft"):
        fast = bd.log_gauss_mixture(y, centers, logW, sigma)
    exact = original(y, centers, logW, sigma)
    assert spy.calls == 1, "the fast path did not run the NUFFT"
    rows = np.concatenate(given) if given else np.zeros((0, d))
    assert 0 < len(rows) < n, "the exact fallback should take some rows, not all"
    handed = {tuple(p) for p in rows}
    assert all(tuple(p) in handed for p in y[far]), "far targets must go to the exact rows"
    assert np.all(np.isfinite(exact)) and exact[far].max() < -50.0
    assert np.abs(fast - exact).max() <= 1e-7


def test_log_gauss_mixture_all_weights_dead():
    rng = np.random.default_rng(70)
    y, c = rng.standard_normal((50, 2)), rng.standard_normal((30, 2))
    logW = np.full(30, -np.inf)
    with sums.use("nufft"), np.errstate(divide="ignore"):
        out = bd.log_gauss_mixture(y, c, logW, np.array([0.5, 0.5]))
    assert out.shape == (50,) and np.all(out == -np.inf)


# --- 6. empty inputs and shape errors --------------------------------------------------------------

@pytest.mark.parametrize("be", sums.ORDER)
def test_no_targets(be):
    gauss = Kernel("gaussian", 0.5)
    Y, V = np.ones((4, 2)), np.ones((4, 3))
    assert np.array_equal(sums.apply(gauss, np.zeros((0, 2)), Y, V, backend_name=be), np.zeros((0, 3)))
    assert sums.apply(gauss, np.zeros((0, 2)), Y, V[:, 0], backend_name=be).shape == (0,)
    assert sums.apply_grad1(gauss, np.zeros((0, 2)), Y, V[:, 0], backend_name=be).shape == (0, 2)
    assert gauss.apply_grad2(np.zeros((0, 2)), Y, V[:, 0], backend=be).shape == (0, 2)
    # no columns
    assert np.array_equal(sums.apply(gauss, np.ones((5, 2)), Y, np.ones((4, 0)), backend_name=be), np.zeros((5, 0)))


@pytest.mark.parametrize("be", sums.ORDER)
def test_no_sources_gradient(be):
    gauss = Kernel("gaussian", 0.5)
    g = sums.apply_grad1(gauss, np.ones((5, 2)), np.zeros((0, 2)), np.zeros(0), backend_name=be)
    assert np.array_equal(g, np.zeros((5, 2)))


@pytest.mark.parametrize("be", sums.ORDER)
@pytest.mark.parametrize("vshape", [(0,), (0, 3)])
def test_no_sources_values(be, vshape):
    gauss = Kernel("gaussian", 0.5)
    f = sums.apply(gauss, np.ones((5, 2)), np.zeros((0, 2)), np.zeros(vshape), backend_name=be)
    assert np.array_equal(f, np.zeros((5,) + vshape[1:]))


def test_shape_mismatch_raises():
    gauss = Kernel("gaussian", 0.5)
    X, Y = np.ones((5, 2)), np.ones((4, 2))
    with pytest.raises(ValueError):
        sums.apply(gauss, X, np.ones((4, 3)), np.ones(4))  # dimensions differ
    with pytest.raises(ValueError):
        sums.apply(gauss, X, Y, np.ones(3))  # values per source
    with pytest.raises(ValueError):
        sums.apply(gauss, np.ones(5), np.ones(4), np.ones(4))  # not point arrays
    with pytest.raises(ValueError):
        sums.apply_grad1(gauss, X, Y, np.ones((4, 1)))  # one value per source
    with pytest.raises(ValueError):
        sums.apply_grad1(gauss, X, np.ones((4, 3)), np.ones(4))
    with pytest.raises(ValueError):
        sums.apply(gauss, X, Y, np.ones(4), relative_to="targets")
    with pytest.raises(ValueError):
        Kernel("gaussian", 0.0)
    with pytest.raises(ValueError):
        sums.apply(gauss, X, Y, np.float64(1.0))  # 0-d values
    with pytest.raises(ValueError):  # checked before the early return of an empty sum
        sums.apply(gauss, np.ones((0, 2)), Y, np.ones(4), relative_to="targets")


def test_log_gauss_mixture_empty_inputs():
    from pdeflow.approx.methods.birth_death import log_gauss_mixture

    sig = np.full(2, 0.3)
    assert log_gauss_mixture(np.zeros((0, 2)), np.ones((5, 2)), np.zeros(5), sig).shape == (0,)
    out = log_gauss_mixture(np.ones((3, 2)), np.zeros((0, 2)), np.zeros(0), sig)
    assert out.shape == (3,) and np.all(out == -np.inf)


# --- the numpy back-end far from the origin (Gram blocks from |x|²+|y|²−2x·y, shifted) ----------

def test_numpy_backend_far_from_origin():
    rng = np.random.default_rng(80)
    X = 0.3 * rng.standard_normal((300, 2)) + 100.0
    Y = 0.3 * rng.standard_normal((300, 2)) + 100.0
    V = rng.standard_normal((300, 1))
    kernel = Kernel("laplace", 0.1)
    want, scale = exact_values(kernel, X, Y, V)
    f = kernel.apply(X, Y, V)  # auto -> numpy for this size
    assert np.all(np.abs(f - want).max(0) <= sums.DEFAULT_TOL * scale)
