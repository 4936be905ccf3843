"""Reference solutions (pdeflow.exact) checked against each other and against their PDEs (MATH §3)."""
import json
import math

import numpy as np
import pytest
import sympy as sp
from scipy.linalg import expm

from pdeflow.cases import case_names, get_case
from pdeflow.exact import exact_solution
from pdeflow.exact.fisher_rao import FisherRaoKL, weights_oracle
from pdeflow.exact.gaussian import GaussianFlow, closed_form_1d, kl_gaussian
from pdeflow.exact.mms import ManufacturedSolution, mms_problem, mms_symbolic
from pdeflow.geometry import Flow
from pdeflow.problem import Domain, Gaussian, GaussianMixture, integrate

TIMES = (0.1, 0.5, 1.0, 2.5)


def gauss(mean, cov, mass=1.0) -> Gaussian:
    mean = np.atleast_1d(mean)
    return Gaussian(tuple(mean), tuple(map(tuple, np.atleast_2d(cov))), mass)


def rand_spd(rng, d, scale=1.0):
    A = rng.normal(size=(d, d))
    return scale * (A @ A.T / d + 0.3 * np.eye(d))


def flow_of_case(name) -> GaussianFlow:
    return exact_solution(get_case(name))


# --- Gaussian moment ODE vs closed forms ---------------------------------------------------------

GAUSS_1D = ["w-kl-gauss-1d", "fr-kl-gauss-1d", "wfr-kl-gauss-1d", "hk-kl-gauss-1d"]


@pytest.mark.parametrize("name", GAUSS_1D)
def test_moment_ode_matches_1d_closed_form(name):
    g = flow_of_case(name)
    pi, r0 = g.pi, g.rho0
    for t in TIMES:
        z, m, S = g.moments(t)
        zc, mc, sc = closed_form_1d(
            t, r0.m[0], r0.S[0, 0], r0.mass, pi.m[0], pi.S[0, 0], pi.mass, g.alpha, g.beta, g.spherical
        )
        assert abs(m[0] - mc) <= 1e-9
        assert abs(S[0, 0] - sc) <= 1e-9
        assert abs(z - zc) <= 1e-8


def test_hk_case_matches_math_c3_values():
    z, m, S = flow_of_case("hk-kl-gauss-1d").moments(1.0)
    assert (round(z, 8), round(m[0], 8), round(S[0, 0], 8)) == (0.9008495, 0.86120974, 0.53829356)


@pytest.mark.parametrize("alpha,beta,s0", [(1.0, 0.0, 0.49), (0.0, 1.0, 2.0), (0.5, 1.0, 2.0), (0.3, 2.0, 0.1)])
def test_closed_form_equals_math_R_form(alpha, beta, s0):
    """closed_form_1d rewrites s(t) = (R s* − 2α)/(R + β); check that the rewrite is the same function."""
    sstar = 0.8
    kappa = (2 * alpha + beta * sstar) / sstar
    for t in TIMES:
        R = (2 * alpha + beta * s0) / (sstar - s0) * math.exp(kappa * t)
        _, _, s = closed_form_1d(t, 0.0, s0, 1.0, 0.0, sstar, 1.0, alpha, beta, True)
        assert s == pytest.approx((R * sstar - 2 * alpha) / (R + beta), rel=1e-13)


def test_closed_form_at_equilibrium_variance():
    alpha, beta, sstar = 0.7, 1.3, 0.6
    for t in TIMES:
        _, m, s = closed_form_1d(t, 2.0, sstar, 1.0, 0.5, sstar, 1.0, alpha, beta, True)
        assert s == sstar
        assert m - 0.5 == pytest.approx(1.5 * math.exp(-(alpha + beta * sstar) * t / sstar), rel=1e-13)


def test_wasserstein_matrix_formula_2d():
    rng = np.random.default_rng(0)
    pi, r0 = gauss([0.3, -0.2], rand_spd(rng, 2)), gauss([1.0, 0.5], [[0.6, 0.35], [0.35, 0.9]])
    alpha = 0.8
    for spherical in (True, False):
        g = GaussianFlow(pi, r0, alpha, 0.0, spherical)
        for t in TIMES:
            z, m, S = g.moments(t)
            E = expm(-alpha * np.linalg.inv(pi.S) * t)
            assert np.abs(m - (pi.m + E @ (r0.m - pi.m))).max() <= 1e-9
            assert np.abs(S - (pi.S + E @ (r0.S - pi.S) @ E.T)).max() <= 1e-9
            assert z == 1.0


def test_fisher_rao_exponential_family_2d():
    """α = 0: natural parameters relax linearly, and the M+ mass is the product normalizer (MATH §3.1)."""
    rng = np.random.default_rng(1)
    S0, Ss = rand_spd(rng, 2), rand_spd(rng, 2, 2.0)
    assert np.abs(S0 @ Ss - Ss @ S0).max() > 0.1
    pi, r0 = gauss([0.5, -1.0], Ss, 1.7), gauss([-0.4, 0.8], S0, 0.6)
    beta = 1.3
    g = GaussianFlow(pi, r0, 0.0, beta, spherical=False)
    P0, Ps = np.linalg.inv(S0), np.linalg.inv(Ss)
    for t in TIMES:
        a = math.exp(-beta * t)
        Pt = Ps + a * (P0 - Ps)
        bt = Ps @ pi.m + a * (P0 @ r0.m - Ps @ pi.m)
        z, m, S = g.moments(t)
        assert np.abs(S - np.linalg.inv(Pt)).max() <= 1e-9
        assert np.abs(m - np.linalg.solve(Pt, bt)).max() <= 1e-9
        log_norm = (
            0.5 * bt @ np.linalg.solve(Pt, bt)
            - 0.5 * (a * r0.m @ P0 @ r0.m + (1 - a) * pi.m @ Ps @ pi.m)
            - 0.5 * np.linalg.slogdet(Pt)[1]
            - 0.5 * a * np.linalg.slogdet(S0)[1]
            - 0.5 * (1 - a) * np.linalg.slogdet(Ss)[1]
        )
        assert z == pytest.approx(r0.mass**a * pi.mass ** (1 - a) * math.exp(log_norm), rel=1e-9)


@pytest.mark.parametrize(
    "m0,s0,z0,ms,ss,zs,alpha,beta",
    [
        (-1.0, 2.0, 0.5, 1.0, 0.5, 2.0, 0.5, 1.0),  # hk-kl-gauss-1d
        (2.0, 0.1, 3.0, 0.0, 1.0, 1.0, 1.0, 2.0),
        (0.5, 1.0, 1.0, 0.0, 1.0, 0.2, 0.0, 1.0),  # Hellinger (α = 0)
    ],
)
def test_mass_ode_matches_duhamel_quadrature(m0, s0, z0, ms, ss, zs, alpha, beta):
    g = GaussianFlow(gauss(ms, ss, zs), gauss(m0, s0, z0), alpha, beta, spherical=False)
    for t in TIMES + (6.0,):
        zc, _, _ = closed_form_1d(t, m0, s0, z0, ms, ss, zs, alpha, beta, False)
        assert g.mass(t) == pytest.approx(zc, rel=1e-8)


def _gaussian_pde_residual(g: GaussianFlow, t: float, x: np.ndarray, h: float = 1e-4) -> float:
    """max |∂_t log ρ − [α(∇log ρ·∇ξ + Δξ) − β(ξ − c)]| / max(1, max |∂_t log ρ|).

    ∂_t by central differences (truncation O(h²)), the right-hand side analytic; c = ⟨ξ⟩_ρ if spherical.
    """
    dt_log = (g.log_density(t + h, x) - g.log_density(t - h, x)) / (2 * h)
    z, m, S = g.moments(t)
    P, Ps = np.linalg.inv(S), np.linalg.inv(g.pi.S)
    grad_log_rho = -P @ (x - m[:, None])
    grad_xi = grad_log_rho + Ps @ (x - g.pi.m[:, None])
    lap_xi = np.trace(Ps) - np.trace(P)
    xi = g.log_density(t, x) - g.pi.log_density(x)
    c = math.log(z / g.pi.mass) + kl_gaussian(m, S, g.pi.m, g.pi.S) if g.spherical else 0.0
    rhs = g.alpha * ((grad_log_rho * grad_xi).sum(axis=0) + lap_xi) - g.beta * (xi - c)
    return float(np.abs(dt_log - rhs).max() / max(1.0, np.abs(rhs).max()))


def _random_2d_flow(alpha, beta, spherical, seed=2):
    rng = np.random.default_rng(seed)
    return GaussianFlow(
        gauss([0.3, -0.6], rand_spd(rng, 2), 1.6), gauss([-0.5, 0.4], rand_spd(rng, 2, 0.5), 0.7), alpha, beta, spherical
    )


RANDOM_2D = {"hk-2d": (0.7, 1.2, False), "wfr-2d": (0.7, 1.2, True), "w-2d": (1.0, 0.0, False), "fr-2d": (0.0, 0.9, False)}


@pytest.mark.parametrize("name", GAUSS_1D + ["wfr-kl-gauss-2d"] + list(RANDOM_2D))
def test_gaussian_flow_solves_pde(name):
    g = _random_2d_flow(*RANDOM_2D[name]) if name in RANDOM_2D else flow_of_case(name)
    rng = np.random.default_rng(3)
    x = g.pi.m[:, None] + 1.5 * rng.normal(size=(g.pi.dim, 20))
    for t in (0.3, 1.2):
        assert _gaussian_pde_residual(g, t, x) <= 1e-7


# --- Fisher–Rao closed form ---------------------------------------------------------------------


def _fr_pair(spherical):
    pi, r0 = gauss(0.0, 1.0, 1.3), gauss(1.0, 0.49, 0.8)
    domain = Domain((-14.0,), (14.0,))  # wide, so that R-normalized and Ω-normalized solutions agree to 1e-9
    return FisherRaoKL(GaussianMixture((r0,)), GaussianMixture((pi,)), 1.0, spherical, domain), GaussianFlow(
        pi, r0, 0.0, 1.0, spherical
    )


@pytest.mark.parametrize("spherical", [True, False])
def test_fisher_rao_closed_form_matches_gaussian_flow(spherical):
    fr, g = _fr_pair(spherical)
    x = np.linspace(-5.0, 5.0, 41)[None, :]
    for t in TIMES:
        assert np.abs(fr.log_density(t, x) - g.log_density(t, x)).max() <= 1e-9
        assert fr.mass(t) == pytest.approx(g.mass(t), rel=1e-9)


def test_spherical_fisher_rao_conserves_mass():
    fr, _ = _fr_pair(True)
    for t in TIMES:
        assert integrate(lambda x: fr.density(t, x), fr.domain) == pytest.approx(fr.mass(0.0), rel=1e-12)
        assert fr.mass(t) == fr.mass(0.0)


@pytest.mark.parametrize("spherical", [True, False])
def test_fisher_rao_bimodal_solves_pde(spherical):
    p = get_case("fr-kl-bimodal-2d")
    p = p.with_changes(flow=Flow(0.0, p.flow.beta, spherical))
    fr = exact_solution(p)
    x = np.random.default_rng(4).uniform(-4.5, 4.5, size=(2, 30))
    h = 1e-4
    for t in (0.2, 1.0):
        dt_log = (fr.log_density(t + h, x) - fr.log_density(t - h, x)) / (2 * h)
        xi = fr.log_density(t, x) - p.target.log_density(x)
        c = 0.0
        if spherical:
            xi_rho = integrate(lambda y: fr.density(t, y) * (fr.log_density(t, y) - p.target.log_density(y)), p.domain)
            c = xi_rho / fr.mass(t)
        assert np.abs(dt_log + p.flow.beta * (xi - c)).max() <= 1e-6


def test_weights_oracle_reproduces_gaussian_moments():
    _, g = _fr_pair(True)
    rng = np.random.default_rng(5)
    x = g.rho0.m[0] + math.sqrt(g.rho0.S[0, 0]) * rng.normal(size=(1, 200_000))
    t = 0.7
    w = weights_oracle(t, x, g.rho0, g.pi, 1.0)
    _, m, S = g.moments(t)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    mean = float(w @ x[0])
    assert mean == pytest.approx(m[0], abs=0.01)
    assert float(w @ (x[0] - mean) ** 2) == pytest.approx(S[0, 0], abs=0.01)


# --- manufactured solution ------------------------------------------------------------------------


def test_mms_source_is_consistent():
    p = mms_problem()
    ex = exact_solution(p)
    alpha, beta = p.flow.alpha, p.flow.beta
    x = np.linspace(0.05, 0.95, 19)
    h = 1e-4

    def rho(t, y):
        return ex.density(t, y[None, :])

    def xi(t, y):
        return np.log(rho(t, y)) - p.target.log_density(y[None, :])

    def flux(t, y):
        return rho(t, y) * (xi(t, y + h) - xi(t, y - h)) / (2 * h)

    for t in (0.0, 0.4, 1.3):
        dt_rho = (rho(t + h, x) - rho(t - h, x)) / (2 * h)
        div = (flux(t, x + h) - flux(t, x - h)) / (2 * h)
        f = p.source(t, x[None, :])
        residual = dt_rho - alpha * div + beta * rho(t, x) * xi(t, x) - f
        assert np.abs(residual).max() <= 1e-5 * max(1.0, np.abs(f).max())


def test_mms_no_flux_and_data():
    t, x, rho, pi, _ = mms_symbolic()
    for end in (0, 1):
        assert sp.simplify(sp.diff(rho, x).subs(x, end)) == 0
        assert sp.simplify(sp.diff(sp.log(pi), x).subs(x, end)) == 0
    p = mms_problem()
    ex = ManufacturedSolution()
    y = np.linspace(0.0, 1.0, 11)[None, :]
    assert np.abs(p.initial(y) - ex.density(0.0, y)).max() <= 1e-15
    assert np.abs(p.target(y) - (1 + 0.5 * np.cos(np.pi * y[0]))).max() <= 1e-15
    for s in TIMES:
        assert integrate(lambda q: ex.density(s, q), p.domain) == pytest.approx(ex.mass(s), rel=1e-13)
        assert ex.density(s, y).min() >= 0.4


# --- factory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", case_names())
def test_factory_covers_cases(name):
    p = get_case(name)
    ex = exact_solution(p)
    if p.exact_kind is None:  # the self-convergence cases (mixture targets with transport)
        assert name in ("wfr-kl-mixture-1d", "wfr-kl-mixture-disk", "wfr-kl-mixture-lshape")
        assert ex is None
        return
    assert ex is not None
    json.dumps(ex.describe())
    x = np.zeros((p.dim, 1)) + 0.3
    assert np.isfinite(ex.log_density(p.T, x)).all()
    if isinstance(ex, GaussianFlow):
        # Gaussian references carry their mass on R^d; Ω cuts tails beyond 5 standard deviations
        # (4.4 in the 3-D case on [-4,4]^3: 6e-6 of the mass, far below its discretization error).
        assert ex.mass(0.0) == p.initial.mass
        assert ex.mass(0.0) == pytest.approx(integrate(p.initial, p.domain), rel=1e-5 if p.dim == 3 else 1e-6)
    else:
        assert ex.mass(0.0) == pytest.approx(integrate(p.initial, p.domain), rel=1e-12)


def test_factory_rejects_inconsistent_geometry():
    assert exact_solution(get_case("fr-kl-bimodal-2d").with_changes(flow=Flow(0.5, 1.0))) is None
    assert exact_solution(mms_problem().with_changes(flow=Flow(0.7, 2.0, spherical=False))) is None


def test_factory_uses_rescaled_initial_density():
    p = get_case("hk-kl-gauss-1d").with_changes(initial_mass=3.0)
    ex = exact_solution(p)
    assert ex.mass(0.0) == pytest.approx(3.0, rel=1e-9)
    assert integrate(lambda x: ex.density(0.0, x), p.domain) == pytest.approx(3.0, rel=1e-12)
