"""Particle-count convergence against the FE reference (MATH §6 (a)): the Gaussian MMD between
a WFR particle method at T and the reference decays like N^{-1/2} and approaches the Monte-Carlo
floor of N i.i.d. draws from the reference.  Seeds are fixed, so the numbers are reproducible;
benchmarks/n_convergence.py runs the full study (N up to 3000)."""
import numpy as np
import pytest

from pdeflow import compare
from pdeflow.approx import MethodParams, run_approximation
from pdeflow.approx.kernels import Kernel
from pdeflow.cases import get_case
from pdeflow.study.orders import fit_order
from pdeflow.verify import metric_scales


@pytest.fixture(scope="module")
def mixture_reference(solve):
    problem = get_case("wfr-kl-mixture-1d")
    traj = solve(problem, n=400, tau=(12 / 400) ** 2)
    return problem, traj.x, traj.rho[-1], traj.space.gather(traj.space.lumped_mass)


@pytest.mark.parametrize("method", ["smc-wfr", "birth-death"])
def test_mmd_decays_like_inverse_sqrt_n(mixture_reference, method):
    problem, x, rho, m = mixture_reference
    kernel = Kernel("gaussian", metric_scales(problem)[1])
    sizes = (100, 400, 1600)
    means, floors = [], []
    for n in sizes:
        vals = [compare.mmd_to_mesh(kernel, *(lambda t: (t.x[-1], t.w[-1]))(run_approximation(
            problem, method, MethodParams(n_particles=n, seed=s, dt=0.01))), x, rho, m) for s in range(5)]
        means.append(np.mean(vals))
        floors.append(compare.mc_floor(kernel, x, rho, m, n, seeds=5, rng=np.random.default_rng(7))["mean"])
    fit = fit_order(sizes, means)
    assert -0.9 <= fit.order <= -0.25, (fit, means)
    assert means[-1] <= 3.0 * floors[-1], (means, floors)  # near the statistical floor at N = 1600
