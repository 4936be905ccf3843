"""Observed orders of the frozen-mobility scheme against exact solutions (MATH §3, §4.5):
O(τ) in time at a fine mesh, O(h²) in space with τ ∝ h², in L1, L2 and Hellinger, least-squares
fits over four levels (three for the 2-D h-ladders).  Tolerances: ±0.1 (τ), ±0.15 (h)."""
import pytest

from pdeflow.cases import get_case
from pdeflow.study.orders import assert_order

METRICS = ("L1", "L2", "hellinger")


def _errors(solve, name, runs, scheme="frozen-mobility"):
    problem = get_case(name)
    errs = {k: [] for k in METRICS}
    for n, tau in runs:
        e = solve(problem, n=n, tau=tau, scheme=scheme).errors[-1]
        assert e["t"] == problem.T
        for k in METRICS:
            errs[k].append(e[k])
    return errs


def _h(name, n):
    d = get_case(name).domain
    return max(b - a for a, b in zip(d.lower, d.upper)) / n


TAU_LADDER = (0.05, 0.025, 0.0125, 0.00625)


@pytest.mark.parametrize("name", ["w-kl-gauss-1d", "fr-kl-gauss-1d", "wfr-kl-gauss-1d", "hk-kl-gauss-1d", "hk-kl-mms-1d"])
def test_time_order_1d(solve, name):
    errs = _errors(solve, name, [(3200, t) for t in TAU_LADDER])
    for k in METRICS:
        assert_order(TAU_LADDER, errs[k], 1.0, 0.1, f"{name} tau {k}")


@pytest.mark.parametrize(
    "name,ns,c",
    [
        ("w-kl-gauss-1d", (50, 100, 200, 400), 1.0),
        ("fr-kl-gauss-1d", (50, 100, 200, 400), 1.0),
        ("wfr-kl-gauss-1d", (50, 100, 200, 400), 1.0),
        ("hk-kl-gauss-1d", (100, 200, 400, 800), 1.0),
        ("hk-kl-mms-1d", (25, 50, 100, 200), 8.0),
    ],
)
def test_space_order_1d(solve, name, ns, c):
    hs = [_h(name, n) for n in ns]
    errs = _errors(solve, name, [(n, c * h * h) for n, h in zip(ns, hs)])
    for k in METRICS:
        assert_order(hs, errs[k], 2.0, 0.15, f"{name} h {k}")


@pytest.mark.parametrize(
    "name,n,taus",
    [("fr-kl-bimodal-2d", 256, TAU_LADDER), ("wfr-kl-gauss-2d", 128, (0.1, 0.05, 0.025, 0.0125))],
)
def test_time_order_2d(solve, name, n, taus):
    errs = _errors(solve, name, [(n, t) for t in taus])
    for k in METRICS:
        assert_order(taus, errs[k], 1.0, 0.1, f"{name} tau {k}")


@pytest.mark.parametrize("name,ns", [("fr-kl-bimodal-2d", (64, 128, 256)), ("wfr-kl-gauss-2d", (32, 64, 128))])
def test_space_order_2d(solve, name, ns):
    hs = [_h(name, n) for n in ns]
    errs = _errors(solve, name, [(n, h * h) for n, h in zip(ns, hs)])
    for k in METRICS:
        assert_order(hs, errs[k], 2.0, 0.15, f"{name} h {k}")


def test_hellinger_jko_time_order(solve):
    errs = _errors(solve, "fr-kl-gauss-1d", [(3200, t) for t in TAU_LADDER], scheme="hellinger-jko")
    for k in METRICS:
        assert_order(TAU_LADDER, errs[k], 1.0, 0.1, f"hellinger-jko tau {k}")
