"""Mesh λ-FRk (fem/nonlocal_flows.py): the deterministic regularized reference of the particle
λ-FRk method.  λ → 0 recovers the Fisher–Rao flow (ZM Thm 6.17; MATH C7), the energy–dissipation
balance holds to the ODE tolerance, and the first-order mirror integrator converges to the ODE."""
import numpy as np
import pytest

from pdeflow.approx.kernels import Kernel
from pdeflow.cases import get_case
from pdeflow.exact import exact_solution
from pdeflow.fem.nonlocal_flows import solve_lambda_frk_mesh
from pdeflow.study.orders import fit_order

KERNEL = Kernel("gaussian", 0.5)


def _l1_to_exact(problem, out):
    ex = exact_solution(problem)
    return float(np.dot(out["m"], np.abs(out["rho"][-1] - ex.density(problem.T, out["x"].T))))


def test_lambda_to_zero_recovers_fisher_rao_monotonically():
    problem = get_case("fr-kl-gauss-1d")
    lams = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    errs, edb = [], []
    for lam in lams:
        out = solve_lambda_frk_mesh(problem, 300, 0.01, lam, KERNEL, integrator="ivp")
        errs.append(_l1_to_exact(problem, out))
        edb.append(np.max(np.abs(out["edb_residual"])))
        assert np.allclose(out["rho"].dot(out["m"]), out["rho"][0].dot(out["m"]), rtol=1e-9)  # spherical mass
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    fit = fit_order(lams, errs)
    assert 0.4 <= fit.order <= 0.8, (fit, errs)  # MATH C7: about λ^0.6–0.8 for smooth ξ
    assert max(edb) <= 1e-6, edb
    # λ = 0 is the FR flow itself, exact at the vertices up to the lumped normalization
    out = solve_lambda_frk_mesh(problem, 300, 0.01, 0.0, KERNEL, integrator="ivp")
    assert _l1_to_exact(problem, out) <= 1e-8


def test_mirror_integrator_is_first_order():
    problem = get_case("fr-kl-gauss-1d").with_changes(T=0.5)
    ref = solve_lambda_frk_mesh(problem, 100, 0.01, 1e-3, KERNEL, integrator="ivp")["rho"][-1]
    errs = []
    taus = [0.05, 0.025, 0.0125]
    for tau in taus:
        out = solve_lambda_frk_mesh(problem, 100, tau, 1e-3, KERNEL, integrator="mirror")
        errs.append(np.abs(out["rho"][-1] - ref).max())
        assert max(abs(s["mass"] - out["steps"][0]["mass"]) for s in out["steps"]) <= 1e-13
        energies = [s["energy"] for s in out["steps"]]
        assert all(b <= a + 1e-12 for a, b in zip(energies, energies[1:]))
    assert abs(fit_order(taus, errs).order - 1.0) <= 0.1, errs


def test_rejects_transport_and_huge_meshes():
    with pytest.raises(ValueError, match="alpha = 0"):
        solve_lambda_frk_mesh(get_case("wfr-kl-gauss-1d"), 50, 0.1, 1e-3, KERNEL)
    with pytest.raises(ValueError, match="dense kernel"):
        solve_lambda_frk_mesh(get_case("fr-kl-bimodal-2d"), 80, 0.1, 1e-3, KERNEL)


@pytest.mark.parametrize("name,n,sigma", [("fr-kl-gauss-1d", 120, 0.5), ("fr-kl-bimodal-2d", 16, 1.0)])
def test_particles_on_vertices_equal_the_mesh_lambda_frk(name, n, sigma):
    """Particles at the vertices with w_i = m_i ρ_i and ξ̂_i = log(w_i/(m_i π_i)): the particle λ-FRk
    code and the mesh λ-FRk code solve the same equations and must agree to round-off."""
    from pdeflow.approx import MethodParams, run_approximation
    from pdeflow.fem.nonlocal_flows import vertex_data

    problem = get_case(name)
    lam, dt = 1e-3, 0.025  # divides the snapshot intervals: both codes take the same steps
    mesh = solve_lambda_frk_mesh(problem, n, dt, lam, Kernel("gaussian", sigma), integrator="mirror")
    x, m, log_pi, phi0 = vertex_data(problem, n)
    params = MethodParams(
        n_particles=x.shape[0], lam=lam, sigma=sigma, dt=dt,
        extra={"initial": (x, m * np.exp(phi0)), "xi_fn": lambda xx, w: np.log(w / m) - log_pi},
    )
    traj = run_approximation(problem, "lambda-fr", params)
    assert np.array_equal(traj.times, mesh["t"])
    rho_particles = traj.w / m[None, :]
    assert np.max(np.abs(rho_particles - mesh["rho"])) <= 1e-10 * np.max(mesh["rho"])
    assert np.max(np.abs(rho_particles[-1] - rho_particles[0])) > 1e-2  # the flow did move
