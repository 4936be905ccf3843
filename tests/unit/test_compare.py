"""Particle-vs-mesh distances of pdeflow.compare (MATH §6) against closed forms and exact identities.

Mesh densities are represented as in snapshots.npz: vertices, nodal values and lumped masses
(vertex-quadrature weights).  Two kinds of 1-D vertex grids are used:

* uniform: lumped masses = trapezoid weights.  For Gaussians that have decayed at the ends the
  trapezoid rule converges spectrally, so there is no O(h²) to observe (checked below).
* smoothly graded, x = s + a(L/π) sin(πs/L) with s uniform: the lumped masses (x_{k+1}−x_{k−1})/2
  are then only second-order accurate (Euler–Maclaurin no longer cancels), which is the generic
  situation of an unstructured P1 mesh and the O(h²) of MATH §6 (a).
"""
import math

import numpy as np
import ot
import pytest

from pdeflow.approx.kernels import Kernel
from pdeflow.compare import (
    compare_to_mesh,
    gaussian_kernel_expectation,
    gaussian_mmd_closed_form,
    gaussian_smoothing,
    mass_error,
    mc_floor,
    mmd,
    mmd_multiscale,
    mmd_squared,
    mmd_to_mesh,
    sample_p1_1d,
    smoothed_distances,
    unbalanced_sinkhorn,
    w2,
    w2_1d,
    w2_emd,
    w2_gaussian,
    w2_to_mesh,
)
from pdeflow.problem import Gaussian
from pdeflow.study.orders import fit_order


def grid_1d(n: int, L: float, a: float = 0.0):
    """n+1 vertices on [−L, L], graded with amplitude a (a = 0: uniform), and their lumped masses."""
    s = np.linspace(-L, L, n + 1)
    x = s + a * L / np.pi * np.sin(np.pi * s / L)
    m = np.empty_like(x)
    m[1:-1] = (x[2:] - x[:-2]) / 2
    m[0], m[-1] = (x[1] - x[0]) / 2, (x[-1] - x[-2]) / 2
    return x, m


def grid_2d(n: int, L: float, a: float = 0.0):
    x, m = grid_1d(n, L, a)
    X = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    return X, np.outer(m, m).ravel()


def gauss_1d(x, mean, var, mass=1.0):
    return mass * np.exp(-((x - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


# --- MMD by quadrature vs the Gaussian closed form (MATH §3.4 item 5, §6 (a)) ------------------
def test_mmd_quadrature_1d_second_order_on_graded_grids_and_spectral_on_uniform():
    ell, (z1, m1, v1), (z2, m2, v2) = 0.7, (1.0, -0.3, 0.5), (1.3, 0.4, 0.8)
    exact = gaussian_mmd_closed_form(ell, z1, [m1], [[v1]], z2, [m2], [[v2]])
    k = Kernel("gaussian", ell)
    hs, errs = [], []
    for n in (200, 400, 800, 1600):
        # the two densities on two different graded meshes: the general three-sum path
        xa, ma = grid_1d(n, 8.0, 0.5)
        xb, mb = grid_1d(n + n // 4, 8.0, -0.3)
        val = mmd_to_mesh(k, xa, ma * gauss_1d(xa, m1, v1, z1), xb, gauss_1d(xb, m2, v2, z2), mb)
        hs.append(16.0 / n)
        errs.append(abs(val - exact))
    fit = fit_order(hs, errs)
    assert abs(fit.order - 2.0) <= 0.2, (fit, errs)
    assert errs[-1] < 1e-6, errs
    # uniform grid: trapezoid rule, spectral — already at round-off on a coarse grid
    x, m = grid_1d(100, 8.0)
    val = mmd(k, x, m * gauss_1d(x, m1, v1, z1), x, m * gauss_1d(x, m2, v2, z2))
    assert abs(val - exact) < 1e-12


def test_mmd_quadrature_2d_second_order_on_graded_grids_and_spectral_on_uniform():
    ell = 0.8
    g1 = Gaussian((-0.3, 0.2), ((0.5, 0.1), (0.1, 0.6)), 1.0)
    g2 = Gaussian((0.4, -0.1), ((0.8, -0.2), (-0.2, 0.7)), 1.3)
    exact = gaussian_mmd_closed_form(ell, g1.mass, g1.m, g1.S, g2.mass, g2.m, g2.S)
    k = Kernel("gaussian", ell)
    hs, errs = [], []
    for n in (24, 48, 96):
        X, M = grid_2d(n, 6.0, 0.5)
        errs.append(abs(mmd(k, X, M * g1(X.T), X, M * g2(X.T)) - exact))
        hs.append(12.0 / n)
    fit = fit_order(hs, errs)
    assert abs(fit.order - 2.0) <= 0.2, (fit, errs)
    assert errs[-1] < 3e-4, errs  # 1.7e-4 at 97² vertices; 1e-6 would need ~1000² of them
    # uniform 2-D grid: spectral, far below 1e-6 already at 49² vertices
    X, M = grid_2d(48, 6.0)
    assert abs(mmd(k, X, M * g1(X.T), X, M * g2(X.T)) - exact) < 1e-10


def test_same_support_shortcut_agrees_with_the_three_sums():
    rng = np.random.default_rng(8)
    X, M = grid_2d(20, 4.0)
    g1 = Gaussian((0.0, 0.1), ((0.6, 0.0), (0.0, 0.5)), 1.0)
    g2 = Gaussian((0.2, 0.0), ((0.5, 0.1), (0.1, 0.6)), 1.1)
    w, v = M * g1(X.T), M * g2(X.T)
    perm = rng.permutation(X.shape[0])  # same measure, different order: the general path
    k = Kernel("gaussian", 0.4)
    assert mmd(k, X, w, X, v) == pytest.approx(mmd(k, X, w, X[perm], v[perm]), rel=1e-10)
    assert mmd(k, X, w, X, w) == 0.0
    # d in the numerical null space of a Gaussian Gram matrix: dᵀKd is ±1e-21 against terms of
    # size 3e-5 (negative for 4 of these 5 directions with this BLAS); negative round-off is
    # clipped to 0, not refused
    x1 = np.linspace(-3, 3, 200)[:, None]
    k1 = Kernel("gaussian", 1.0)
    base = np.exp(-x1[:, 0] ** 2)
    for null in np.linalg.eigh(k1.gram(x1, x1))[1][:, :5].T:
        m2 = mmd_squared(k1, x1, base + 1e-3 * null, x1, base)
        assert abs(m2) < 1e-18
        assert mmd(k1, x1, base + 1e-3 * null, x1, base) == math.sqrt(max(m2, 0.0))


def test_gaussian_kernel_expectation_special_cases():
    # point masses: E k = k(m1, m2); one point mass: the Gaussian smoothing of k
    assert gaussian_kernel_expectation(0.5, [0.0, 1.0], np.zeros((2, 2)), [1.0, 1.0], np.zeros((2, 2))) == pytest.approx(
        math.exp(-0.5 / 0.25), rel=1e-14
    )
    assert gaussian_kernel_expectation(0.5, [0.3], [[0.0]], [0.3], [[0.75]]) == pytest.approx(0.5, rel=1e-14)
    assert gaussian_mmd_closed_form(0.5, 2.0, [0.1], [[0.2]], 2.0, [0.1], [[0.2]]) == 0.0


def test_mmd_squared_of_iid_particles_has_the_v_statistic_mean():
    """E MMD²(μ̂_N, ρ) = (1/N)(E k(X,X) − E k(X,X')) for i.i.d. x_i ~ ρ (MATH §6 (a))."""
    ell, mean, var, N = 0.5, 0.2, 0.6, 50
    k = Kernel("gaussian", ell)
    y, m = grid_1d(600, 7.0)  # uniform: the vertex cloud is ρ to round-off for this kernel
    rho = gauss_1d(y, mean, var)
    expected = (1.0 - gaussian_kernel_expectation(ell, [mean], [[var]], [mean], [[var]])) / N
    rng = np.random.default_rng(12345)
    vals = np.array([
        mmd_to_mesh(k, rng.normal(mean, math.sqrt(var), N), np.full(N, 1.0 / N), y, rho, m) ** 2 for _ in range(30)
    ])
    se = vals.std(ddof=1) / math.sqrt(vals.size)
    assert abs(vals.mean() - expected) <= 3 * se, (vals.mean(), expected, se)
    # the statistic is not degenerate: the 3-SE window is narrower than the value itself
    assert 3 * se < 0.5 * expected


# --- KDE in L² is an MMD (MATH §3.6) and the smoothing bias (MATH §6 (b)) -------------------------
def test_kde_l2_distance_equals_mmd_with_variance_2sigma2_kernel():
    rng = np.random.default_rng(7)
    x, w = rng.normal(0.0, 1.0, 5), rng.uniform(0.1, 0.4, 5)
    y, v = rng.normal(0.5, 0.8, 7), rng.uniform(0.1, 0.3, 7)  # different masses: fine for an MMD
    sigma = 0.3
    g, gw = grid_1d(4000, 8.0)  # L²(R) by the trapezoid rule: spectral for Gaussians
    lhs = smoothed_distances(x, w, y, v, np.ones_like(v), sigma, grid=g, grid_weights=gw)["L2"] ** 2
    rhs = mmd_squared(Kernel("gaussian", math.sqrt(2) * sigma), x, w, y, v) / math.sqrt(4 * math.pi * sigma**2)
    assert lhs == pytest.approx(rhs, rel=1e-8, abs=1e-12)


def test_smoothing_both_sides_removes_the_order_sigma2_bias():
    y, m = grid_1d(3000, 8.0)
    rho = gauss_1d(y, 0.0, 0.5)
    v = m * rho
    # a perfect "particle" representation (the vertex cloud itself) is at distance 0 when both
    # sides are smoothed ...
    d = smoothed_distances(y, v, y, rho, m, 0.2)
    assert d["L1"] == 0.0 and d["L2"] == 0.0
    # ... while K_σ*μ against ρ_h itself carries the bias (σ²/2)ρ'' + O(σ⁴): order 2 in σ
    sigmas = (0.2, 0.1, 0.05)
    bias = [math.sqrt(m @ (gaussian_smoothing(y, y, v, s) - rho) ** 2) for s in sigmas]
    assert abs(fit_order(sigmas, bias).order - 2.0) < 0.1, bias


# --- energy kernel and several scales ------------------------------------------------------------
def test_energy_mmd_is_twice_the_l2_distance_of_the_cdfs_in_1d():
    rng = np.random.default_rng(3)
    x, w = rng.normal(0, 1, 6), rng.uniform(0.5, 1.0, 6)
    y, v = rng.normal(0.3, 1.2, 9), rng.uniform(0.5, 1.0, 9)
    v *= w.sum() / v.sum()  # equal masses: the energy distance
    pts = np.sort(np.concatenate([x, y]))
    F = np.array([w[x <= p].sum() for p in pts[:-1]])
    G = np.array([v[y <= p].sum() for p in pts[:-1]])
    exact = 2.0 * np.sum((F - G) ** 2 * np.diff(pts))
    assert mmd(Kernel("energy"), x, w, y, v) ** 2 == pytest.approx(exact, rel=1e-12)
    with pytest.warns(UserWarning, match="equal masses"):
        try:
            mmd(Kernel("energy"), x, w, y, 1.5 * v)
        except ValueError:
            pass  # genuinely negative "MMD²" for unequal masses: refused
    # shapes: normalize=True is scale-free
    assert mmd(Kernel("energy"), x, w, y, 1.5 * v, normalize=True) == pytest.approx(
        mmd(Kernel("energy"), x, w / w.sum(), y, v / v.sum()), rel=1e-12
    )


def test_multiscale_and_report():
    y, m = grid_1d(400, 6.0)
    rho = gauss_1d(y, 0.0, 0.5, 1.2)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, math.sqrt(0.5), 300)
    w = np.full(300, 1.2 / 300)
    out = mmd_multiscale(x, w, y, rho, m, scales=(0.1, 0.3, 1.0))
    assert set(out) == {0.1, 0.3, 1.0}
    assert out[0.3] == pytest.approx(mmd_to_mesh(Kernel("gaussian", 0.3), x, w, y, rho, m), rel=1e-14)
    rep = compare_to_mesh(x, w, y, rho, m, scales=(0.3,))
    assert rep["mass_error"] == pytest.approx(mass_error(w, rho, m)) and rep["mass_error"] < 1e-12
    assert rep["energy_distance_normalized"] > 0 and rep["mmd_gaussian"][0.3] == out[0.3]


# --- W2 (MATH §3.4 item 6, §6 (c)) -------------------------------------------------------------------
def test_w2_1d_against_gaussian_closed_form_and_sorted_samples():
    y, m = grid_1d(8000, 8.0)
    exact = w2_gaussian([-0.3], [[0.5]], [0.4], [[0.8]])
    assert exact == pytest.approx(math.sqrt(0.49 + (math.sqrt(0.5) - math.sqrt(0.8)) ** 2), rel=1e-14)
    got = w2_1d(y, m * gauss_1d(y, -0.3, 0.5), y, m * gauss_1d(y, 0.4, 0.8))
    assert abs(got - exact) < 1e-3
    assert w2_to_mesh(y, m * gauss_1d(y, -0.3, 0.5), y, gauss_1d(y, 0.4, 0.8), m) == got
    # masses 1 vs 1.3: refused unless normalized (then the shapes are compared)
    with pytest.raises(ValueError, match="masses differ"):
        w2_1d(y, m * gauss_1d(y, -0.3, 0.5), y, m * gauss_1d(y, 0.4, 0.8, 1.3))
    assert w2_1d(y, m * gauss_1d(y, -0.3, 0.5), y, m * gauss_1d(y, 0.4, 0.8, 1.3), normalize=True) == pytest.approx(
        got, rel=1e-12
    )
    # equal-size samples: W₂² = (1/N) Σ (x_(i) − y_(i))², exactly
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 40), rng.normal(0.5, 2, 40)
    emp = math.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert abs(w2_1d(a, np.ones(40), b, np.ones(40)) - emp) < 1e-12


def test_w2_emd_shift_and_agreement_with_quantiles():
    rng = np.random.default_rng(2)
    X, w = rng.normal(size=(60, 2)), rng.uniform(0.5, 1.5, 60)
    shift = np.array([0.7, -1.9])
    assert abs(w2_emd(X, w, X + shift, w) - np.linalg.norm(shift)) < 1e-10
    assert abs(w2(X, w, X + shift, w) - np.linalg.norm(shift)) < 1e-10
    # in 1-D the LP and the quantile formula are both exact
    a, wa = rng.normal(0, 1, 30), rng.uniform(0.2, 1, 30)
    b, wb = rng.normal(1, 0.5, 45), rng.uniform(0.2, 1, 45)
    wb *= wa.sum() / wb.sum()
    assert w2_emd(a, wa, b, wb) == pytest.approx(w2_1d(a, wa, b, wb), rel=1e-10)
    with pytest.raises(ValueError, match="masses differ"):
        w2_emd(X, w, X, 2 * w)
    with pytest.raises(RuntimeError, match="optimality"):
        w2_emd(X, w, rng.normal(size=(60, 2)), w, num_iter_max=5)


def test_w2_gaussian_2d_commuting_case():
    # commuting covariances: W₂² = |Δm|² + ‖Σ₁^{1/2} − Σ₂^{1/2}‖_F²
    S1, S2 = np.diag([0.5, 2.0]), np.diag([1.5, 0.3])
    expected = math.sqrt(1.0 + 4.0 + np.sum((np.sqrt(np.diag(S1)) - np.sqrt(np.diag(S2))) ** 2))
    assert w2_gaussian([0.0, 0.0], S1, [1.0, 2.0], S2) == pytest.approx(expected, rel=1e-12)


# --- unbalanced entropic OT (MATH §6 (c)) ---------------------------------------------------------
@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(4)
    x, w = rng.normal(0, 1, (20, 2)), rng.uniform(0.5, 1.5, 20)
    y, v = rng.normal(0.5, 0.8, (25, 2)), rng.uniform(0.5, 1.5, 25)
    return x, w / w.sum(), y, v / v.sum()


def test_unbalanced_sinkhorn_is_nonnegative_and_decreases_as_the_masses_meet(clouds):
    x, w, y, v = clouds
    vals = [unbalanced_sinkhorn(x, w, y, s * v, reg=0.1, reg_m=1.0) for s in (3.0, 2.0, 1.5, 1.2, 1.05, 1.0)]
    assert all(val >= 0 for val in vals)
    assert all(np.diff(vals) < 0), vals
    # the linear part is what ot.unbalanced.sinkhorn_unbalanced2 returns by default
    _, info = unbalanced_sinkhorn(x, w, y, 1.5 * v, reg=0.1, reg_m=1.0, log=True)
    ref = ot.unbalanced.sinkhorn_unbalanced2(w, 1.5 * v, ot.dist(x, y), 0.1, 1.0, numItermax=200_000, stopThr=1e-10)
    assert info["linear"] == pytest.approx(float(ref), rel=1e-12)
    with pytest.raises(RuntimeError, match="did not converge"):
        unbalanced_sinkhorn(x, w, y, v, reg=0.1, reg_m=1e3, num_iter_max=50)


def test_unbalanced_sinkhorn_tends_to_balanced_entropic_ot(clouds):
    """reg_m → ∞ (equal masses): the marginal penalties vanish, gap O(1/reg_m); ⟨γ, C⟩ →
    ot.sinkhorn2 and the objective → ⟨γ, C⟩ + reg·KL(γ | a⊗b) of the balanced entropic plan.
    The translation-invariant variant is used because the classic iteration needs
    ~(reg_m/reg)·log(1/tol) iterations here (both agree where the classic one is affordable)."""
    x, w, y, v = clouds
    reg = 0.1
    C = ot.dist(x, y)
    plan = ot.sinkhorn(w, v, C, reg, stopThr=1e-13, numItermax=100000)
    lin_bal = float(ot.sinkhorn2(w, v, C, reg, stopThr=1e-13, numItermax=100000))
    tot_bal = lin_bal + reg * float(np.sum(plan * np.log(plan / np.outer(w, v))))
    assert unbalanced_sinkhorn(x, w, y, v, reg, 10.0, method="sinkhorn_translation_invariant") == pytest.approx(
        unbalanced_sinkhorn(x, w, y, v, reg, 10.0), rel=1e-8
    )
    lin_gaps, tot_gaps, reg_ms = [], [], (1e1, 1e2, 1e3, 1e4)
    for reg_m in reg_ms:
        total, info = unbalanced_sinkhorn(x, w, y, v, reg, reg_m, method="sinkhorn_translation_invariant", log=True)
        lin_gaps.append(abs(info["linear"] - lin_bal))
        tot_gaps.append(abs(total - tot_bal))
    assert lin_gaps[-1] < 1e-3 * lin_bal and tot_gaps[-1] < 1e-3 * tot_bal, (lin_gaps, tot_gaps)
    assert abs(fit_order(reg_ms, lin_gaps).order + 1.0) < 0.2, lin_gaps  # O(1/reg_m)
    assert abs(fit_order(reg_ms, tot_gaps).order + 1.0) < 0.2, tot_gaps


def test_pot_unbalanced_marginal_penalty_is_the_generalized_kl(clouds):
    """The plan POT returns is stationary under γ → tγ for the objective with generalized KL
    (Σ p log(p/q) − p + q) and not for the plain one.  POT's returnCost='total' uses the plain
    KL, which at the optimum is exactly that derivative, hence ≈ 0."""
    x, w, y, v = clouds
    reg, reg_m = 0.2, 0.7
    total, info = unbalanced_sinkhorn(x, w, y, 1.6 * v, reg=reg, reg_m=reg_m, log=True)
    g = info["plan"]
    a, b, c = w, 1.6 * v, np.outer(w, 1.6 * v)

    def plain(p, q):
        return float(np.sum(p * np.log(p / q)))

    # d/dt F(tγ) at t = 1: a generalized-KL term contributes Σ p log(p/q), a plain one Σ p log(p/q) + Σ p
    d_gen = info["linear"] + reg * plain(g, c) + reg_m * (plain(g.sum(1), a) + plain(g.sum(0), b))
    d_plain = d_gen + (reg + 2 * reg_m) * g.sum()
    assert abs(d_gen) < 1e-8 and abs(d_plain) > 0.1, (d_gen, d_plain)
    assert abs(info["pot_total"]) < 1e-8 and total > 0.1
    pot_total = ot.unbalanced.sinkhorn_unbalanced2(a, b, ot.dist(x, y), reg, reg_m, returnCost="total", stopThr=1e-10)
    assert abs(float(pot_total)) < 1e-8


# --- Monte-Carlo floor (MATH §6 (a)) ------------------------------------------------------------------
def test_p1_sampler_is_exact_in_1d():
    y = np.array([0.0, 0.5, 1.0, 2.0, 2.5])
    rho = np.array([0.0, 1.0, 0.3, 0.3, 0.9])
    rng = np.random.default_rng(5)
    s = sample_p1_1d(y, rho, 400_000, rng)[:, 0]
    # exact P1 moments: ∫ x ρ_h on a cell with values (ra, rb) = h(ra(2xa+xb) + rb(xa+2xb))/6
    xa, xb, ra, rb = y[:-1], y[1:], rho[:-1], rho[1:]
    h = xb - xa
    mass = np.sum(h * (ra + rb) / 2)
    mean = np.sum(h * (ra * (2 * xa + xb) + rb * (xa + 2 * xb)) / 6) / mass
    assert s.min() >= 0.0 and s.max() <= 2.5
    assert abs(s.mean() - mean) < 4 * s.std() / math.sqrt(s.size)
    # cell probabilities
    counts = np.histogram(s, bins=y)[0] / s.size
    p = h * (ra + rb) / 2 / mass
    assert np.all(np.abs(counts - p) < 4 * np.sqrt(p * (1 - p) / s.size))


def test_mc_floor_scales_like_n_to_the_minus_half():
    y, m = grid_1d(600, 6.0)
    rho = gauss_1d(y, 0.0, 0.7)
    k = Kernel("gaussian", 0.5)
    rng = np.random.default_rng(11)
    ns, floors = (100, 400, 1600), []
    for n in ns:
        f = mc_floor(k, y, rho, m, n, seeds=30, rng=rng)
        floors.append(f["mean"])
        assert 0.7 < f["rms"] / f["predicted_rms"] < 1.3, f  # √E MMD² of the V-statistic
    fit = fit_order(ns, floors)
    assert abs(fit.order + 0.5) <= 0.15, (fit, floors)


def test_mc_floor_2d_jittered_cloud_matches_the_prediction():
    X, M = grid_2d(40, 4.0)
    g = Gaussian((0.0, 0.0), ((0.6, 0.1), (0.1, 0.5)), 1.0)
    f = mc_floor(Kernel("gaussian", 0.5), X, g(X.T), M, 200, seeds=8, rng=np.random.default_rng(6))
    assert f["seeds"] == 8 and f["std"] > 0
    assert 0.6 < f["rms"] / f["predicted_rms"] < 1.4, f
