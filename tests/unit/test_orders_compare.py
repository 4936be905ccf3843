"""Numpy-side helpers: order fits with confidence intervals, Richardson, nested P1 distances,
case and problem validation."""
import numpy as np
import pytest

from pdeflow.cases import CaseError, apply_overrides, get_case, parse_overrides
from pdeflow.compare import p1_distances_1d
from pdeflow.geometry import Flow
from pdeflow.problem import Domain, Gaussian, GaussianMixture, integrate
from pdeflow.study.orders import assert_order, fit_order, richardson


def test_fit_order_recovers_a_known_slope_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    h = 2.0 ** -np.arange(2, 7)
    covered = 0
    for _ in range(200):
        e = 3.0 * h**2 * np.exp(0.05 * rng.standard_normal(h.size))
        fit = fit_order(h, e)
        covered += fit.ci_low <= 2.0 <= fit.ci_high
    assert 0.9 <= covered / 200 <= 0.99  # a 95% interval
    exact = fit_order(h, 3.0 * h**2)
    assert exact.order == pytest.approx(2.0, abs=1e-12) and exact.constant == pytest.approx(3.0)
    assert exact.pairwise == pytest.approx((2.0,) * 4)


def test_assert_order_fails_with_the_table():
    h = [0.1, 0.05, 0.025]
    with pytest.raises(AssertionError, match="observed order"):
        assert_order(h, [x**1.5 for x in h], 2.0, 0.15)
    with pytest.raises(ValueError):
        fit_order([0.1, 0.05], [1e-3, 0.0])


def test_richardson_on_a_model_sequence():
    # u_h = u + C h^2: differences 3C h^2/4 ... ratio 4, finest error exactly C h_3^2
    C, hs = 0.7, [0.4, 0.2, 0.1]
    u = [1.0 + C * h * h for h in hs]
    r = richardson(abs(u[0] - u[1]), abs(u[1] - u[2]), 2.0)
    assert r.order == pytest.approx(2.0) and r.finest_error == pytest.approx(C * 0.01)


def test_nested_p1_distances_are_exact():
    xf = np.linspace(0, 1, 9)
    xc = xf[::2]
    f = xf - 0.3  # linear, representable on both meshes
    d = p1_distances_1d(xc, xc - 0.3 + 0.1, xf, f)
    assert d["L1"] == pytest.approx(0.1) and d["L2"] == pytest.approx(0.1)
    # a sign change inside a cell: ∫|x − 0.3| over [0, 1] = (0.3² + 0.7²)/2
    d = p1_distances_1d(np.array([0.0, 1.0]), np.array([-0.3, 0.7]), np.array([0.0, 1.0]), np.zeros(2))
    assert d["L1"] == pytest.approx((0.09 + 0.49) / 2)
    with pytest.raises(ValueError, match="nested"):
        p1_distances_1d(np.array([0.0, 0.33, 1.0]), np.zeros(3), xf, np.zeros(9))


def test_overrides_are_validated_and_split():
    values = parse_overrides(["n=64", "tau=1e-3", "alpha=0.5", "T=2"])
    assert values == {"n": 64, "tau": 0.001, "alpha": 0.5, "T": 2.0}
    problem, solver = apply_overrides(get_case("wfr-kl-gauss-1d"), values)
    assert problem.flow.alpha == 0.5 and problem.flow.beta == 1.0 and problem.T == 2.0
    assert problem.snapshots == (0.25, 0.5, 1.0, 2.0)
    assert solver == {"n": 64, "tau": 0.001}
    problem, _ = apply_overrides(get_case("fr-kl-bimodal-2d"), {"alpha": 1.0})
    assert problem.exact_kind is None  # the FR closed form does not hold with transport
    with pytest.raises(CaseError, match="unknown key"):
        parse_overrides(["h=0.1"])


def test_problem_objects_reject_impossible_values():
    with pytest.raises(ValueError, match="empty domain"):
        Domain((1.0,), (0.0,))
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian((0.0,), ((-1.0,),))
    with pytest.raises(ValueError, match="both be zero"):
        Flow(0.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        Flow(-1.0, 1.0)
    with pytest.raises(ValueError, match="T must be"):
        get_case("wfr-kl-gauss-1d").with_changes(T=0.0)


def test_gaussian_mixture_density_and_quadrature():
    g = GaussianMixture((Gaussian((0.5,), ((0.3,),), 2.0), Gaussian((-1.0,), ((0.2,),), 1.0)))
    assert integrate(g, Domain((-10.0,), (10.0,))) == pytest.approx(3.0, rel=1e-12)
    g2 = GaussianMixture((Gaussian((0.0, 1.0), ((1.0, 0.3), (0.3, 0.5)), 1.5),))
    assert integrate(g2, Domain((-9.0, -8.0), (9.0, 10.0))) == pytest.approx(1.5, rel=1e-10)
    x = np.array([[0.1, -2.0]])
    assert np.allclose(np.exp(g.log_density(x)), g(x))
