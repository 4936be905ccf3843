"""The particle methods give the same trajectories with the NUFFT kernel sums as with today's exact
chunked numpy sums (issue #12: "to ~1e-9"), and the big-N evaluation paths are exact where they
replace a double sum.

Each method runs twice with one seed, inside ``sums.use("nufft")`` and ``sums.use("numpy")``: every
Gaussian kernel sum of the method (SVGD drift and repulsion, the KDE first variations, the log-KDE of
birth–death, the transition mixture of SMC-WFR, the MMD-flow witness gradient) takes the other
back-end.  The stochastic methods draw the same random numbers in both runs, so their trajectories
agree to the sums' accuracy unless a decision flips (probability ~1e-10 per draw).  numpy/scipy only.
"""
import numpy as np
import pytest

from pdeflow import compare
from pdeflow.approx import sums
from pdeflow.approx.kernels import Kernel
from pdeflow.approx.methods import MethodParams, run_approximation
from pdeflow.cases import apply_overrides, get_case

pytestmark = pytest.mark.skipif(sums.backend("nufft").available() is not None,
                                reason="finufft is not installed: no fast back-end to compare")

RUNS = {
    # id: (case, overrides, method, params)
    "svgd-1d": ("wfr-kl-mixture-1d", {"beta": 0.0}, "svgd", dict(sigma=0.4)),
    "svgd-2d-median": ("wfr-kl-gauss-2d", {"beta": 0.0}, "svgd", dict()),
    "mmd-flow-2d": ("wfr-kl-gauss-2d", {"beta": 0.0}, "mmd-flow", dict(sigma=0.8)),
    "lambda-fr-kde-1d": ("wfr-kl-mixture-1d", {"alpha": 0.0}, "lambda-fr", dict(sigma=0.5, xi="b")),
    "birth-death-1d": ("wfr-kl-mixture-1d", {}, "birth-death", dict()),
    "birth-death-weighted-2d": ("wfr-kl-gauss-2d", {}, "birth-death", dict(extra={"variant": "weighted"})),
    "smc-wfr-1d": ("wfr-kl-mixture-1d", {}, "smc-wfr", dict()),
    "smc-wfr-2d": ("wfr-kl-gauss-2d", {}, "smc-wfr", dict()),
}


def _run(case, over, method, kw, backend):
    problem, _ = apply_overrides(get_case(case), {"T": 0.2, **over})
    params = MethodParams(n_particles=600, dt=0.02, seed=3, **kw)
    with sums.use(backend):
        return run_approximation(problem, method, params)


@pytest.mark.parametrize("rid", list(RUNS))
def test_fast_and_exact_sums_give_the_same_trajectory(rid, monkeypatch):
    calls = {"n": 0}
    real = sums.backend("nufft")._type1

    def spy(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(sums.backend("nufft"), "_type1", spy)
    fast = _run(*RUNS[rid], "nufft")
    assert calls["n"] > 0, "the NUFFT back-end was never used: the comparison would be vacuous"
    exact = _run(*RUNS[rid], "numpy")
    scale_x = max(1.0, float(np.abs(exact.x).max()))
    dx = float(np.abs(fast.x - exact.x).max()) / scale_x
    dw = float(np.abs(fast.w - exact.w).max()) / float(np.abs(exact.w).max())
    assert dx <= 1e-9 and dw <= 1e-9, (rid, dx, dw)


def test_energy_distance_1d_is_the_double_sum():
    """2∫(F − G)² = −Σww'|x−x'| + 2Σwv|x−y| − Σvv'|y−y'| for equal masses (Székely–Rizzo)."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=300), 1.3 * rng.normal(size=200) + 0.4
    w = rng.random(300)
    w /= w.sum()
    v = np.full(200, 1 / 200)
    direct = (-(w @ np.abs(x[:, None] - x[None, :]) @ w) + 2 * (w @ np.abs(x[:, None] - y[None, :]) @ v)
              - (v @ np.abs(y[:, None] - y[None, :]) @ v))
    assert abs(compare.energy_distance2_1d(x, w, y, v) - direct) <= 1e-13
    assert abs(compare.mmd(Kernel("energy"), x, w, y, v) - np.sqrt(direct)) <= 1e-12


def test_mc_floors_match_the_v_statistic():
    """E MMD² of n i.i.d. draws = M²(k(0) − E k(X, X'))/n (V-statistic), at every scale and snapshot:
    the mean of 20 draws' MMD² (rms²) within 60% of it (MMD²·n/M² is a weighted χ² sum whose relative
    spread over 20 draws stays below ~30% here) — a floor off by the factor 2 of a wrong weight fails."""
    x = np.linspace(-4, 4, 401)[:, None]
    rho = np.exp(-0.5 * x[:, 0] ** 2) / np.sqrt(2 * np.pi)
    m = np.full(401, 8 / 400)
    m[[0, -1]] /= 2
    n = 500
    scales = (0.1, 0.3, 1.0)
    out = compare.mc_floors(scales, x, [rho, 0.5 * rho], m, n, seeds=20, rng=np.random.default_rng(1))
    assert np.array(out["mean"]).shape == (2, 3) and out["seeds"] == 20
    pred, rms = np.array(out["predicted_rms"]), np.array(out["rms"])
    assert np.all(np.abs(rms**2 / pred**2 - 1.0) < 0.6), rms**2 / pred**2
    assert np.allclose(pred[1], 0.5 * pred[0])  # the floor scales with the mass
    with pytest.raises(ValueError):
        compare.mc_floors(scales, x, [rho], m, n, seeds=1)
