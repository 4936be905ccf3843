"""Observed orders of the frozen-mobility scheme for energies other than KL (issue 13): the W, FR
and WFR flows of χ², reverse KL and the power entropies φ_p against the manufactured solutions of
:mod:`pdeflow.exact.mms_energy` (MATH §3.5 recipe A with ξ = φ'(ρ/π)): O(τ) at a fine mesh and
O(h²) with τ = 8h², L1 and L2, least-squares fits over four levels (three in 2-D; the 2-D
τ-order by self-differences, see below).
Tolerances as for KL: ±0.1 (τ), ±0.15 (h)."""
import numpy as np
import pytest

from pdeflow.exact.mms_energy import energy_mms_problem
from pdeflow.study.orders import assert_order

METRICS = ("L1", "L2")
GEOMETRIES = {"W": (0.7, 0.0), "FR": (0.0, 1.0), "WFR": (0.7, 1.0)}
TAU_LADDER = (0.05, 0.025, 0.0125, 0.00625)


def _errors(solve, problem, runs):
    errs = {k: [] for k in METRICS}
    for n, tau in runs:
        traj = solve(problem, n=n, tau=tau)
        e = traj.errors[-1]
        assert e["t"] == problem.T
        for k in METRICS:
            errs[k].append(e[k])
        newton = [s["newton_iterations"] for s in traj.steps]
        assert max(newton) <= 5, f"{problem.energy}: Newton took {max(newton)} iterations"
    return errs


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("energy", ["chi2", "power:p=0.5", "reverse-kl", "power:p=0.25"])
def test_energy_orders_1d(solve, energy, geometry):
    problem = energy_mms_problem(energy, *GEOMETRIES[geometry], dim=1)
    errs = _errors(solve, problem, [(1600, t) for t in TAU_LADDER])
    for k in METRICS:
        assert_order(TAU_LADDER, errs[k], 1.0, 0.1, f"{energy} {geometry} tau {k}")
    ns = (25, 50, 100, 200)
    errs = _errors(solve, problem, [(n, 8.0 / n**2) for n in ns])
    for k in METRICS:
        assert_order([1.0 / n for n in ns], errs[k], 2.0, 0.15, f"{energy} {geometry} h {k}")


@pytest.mark.parametrize("energy,geometry", [("chi2", "WFR"), ("power:p=0.5", "WFR"), ("chi2", "W"), ("power:p=0.5", "FR")])
def test_energy_orders_2d(solve, energy, geometry):
    """In 2-D the spatial error of n = 64 (≈ 3e-4 in L1) hides the time error of τ ≤ 0.05 against
    the exact solution, so the τ-order is measured by self-differences at a fixed mesh,
    d_τ = mean|ρ_τ − ρ_{τ/2}| at the vertices of the uniform grid at T (the spatial error cancels;
    d_τ = Cτ + O(τ²) for a first-order scheme), and the h-order against the exact solution."""
    problem = energy_mms_problem(energy, *GEOMETRIES[geometry], dim=2)
    # at τ = 0.1 the FR and χ² WFR runs are still pre-asymptotic (pairwise orders 0.76, 0.8 there)
    taus = TAU_LADDER
    finals = [solve(problem, n=64, tau=t).rho[-1] for t in taus]
    diffs = [float(np.mean(np.abs(a - b))) for a, b in zip(finals, finals[1:])]
    assert_order(taus[:-1], diffs, 1.0, 0.1, f"2-D {energy} {geometry} tau self-differences")
    ns = (16, 32, 64)
    errs = _errors(solve, problem, [(n, 8.0 / n**2) for n in ns])
    for k in METRICS:
        assert_order([1.0 / n for n in ns], errs[k], 2.0, 0.15, f"2-D {energy} {geometry} h {k}")


@pytest.mark.parametrize("energy,geometry", [("power:p=0.5", "W"), ("reverse-kl", "FR")])
def test_bdf2_is_second_order_for_other_energies(solve, energy, geometry):
    """The BDF2 scheme (fem/scheme2.py) reuses the Newton of the first-order step, so it runs for
    every local energy; measured τ-order 2 on the 1-D manufactured solution (n = 3200, whose
    spatial error is far below the time error of τ ≥ 0.0125)."""
    problem = energy_mms_problem(energy, *GEOMETRIES[geometry], dim=1)
    taus = (0.1, 0.05, 0.025, 0.0125)
    errs = [solve(problem, n=3200, tau=t, scheme="bdf2").errors[-1]["L1"] for t in taus]
    assert_order(taus, errs, 2.0, 0.15, f"bdf2 {energy} {geometry} tau L1")
