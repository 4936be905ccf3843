"""Mesh continua of the particle methods (fem/continua.py; MATH §5 'General rule', limit 1): each
continuum against an oracle it must reproduce — Gaussian moment ODEs, the MMD quantile ODE, the
exact Gaussian recursion of the Lie splitting, the existing mesh solvers — plus exact mass
conservation, energy decay and the refusals."""
import json
import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.stats import norm

pytest.importorskip("dolfinx")

from pdeflow.approx.kernels import KERNELS, Kernel  # noqa: E402
from pdeflow.approx.krr import krr, krr_dissipation  # noqa: E402
from pdeflow.approx.methods import MethodParams, lambda_wfr  # noqa: E402
from pdeflow.approx.methods.lambda_fr import grad_log_target, kde_first_variation, time_grid  # noqa: E402
from pdeflow.approx.methods.mmd_flow import TruncatedCDF1D  # noqa: E402
from pdeflow.approx.methods.stein import svgd_velocity  # noqa: E402
from pdeflow.cases import get_case  # noqa: E402
from pdeflow.exact import exact_solution  # noqa: E402
from pdeflow.fem import continua  # noqa: E402
from pdeflow.fem.continua import CONTINUA, CONTINUUM_KEYS, solve_continuum  # noqa: E402
from pdeflow.fem.nonlocal_flows import DENSE_VERTEX_LIMIT, solve_lambda_frk_mesh, solve_lambda_stein_mesh  # noqa: E402
from pdeflow.geometry import Flow  # noqa: E402


def moments(out, k=-1):
    """(mass, mean, variance) of the 1-D mesh density at snapshot k, by the vertex quadrature."""
    m, x, r = out["m"], out["x"][:, 0], out["rho"][k]
    mass = float(m @ r)
    mean = float((m * r) @ x / mass)
    return mass, mean, float((m * r) @ (x - mean) ** 2 / mass)


def gaussian_1d(problem):
    g = problem.target.components[0]
    return float(g.m[0]), float(g.S[0, 0]), float(g.mass)


# --- the kernel sums are the particle methods' own -------------------------------------------


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_sums_match_the_particle_kernel_products(name):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    v = rng.normal(size=40)
    kernel = Kernel(name, 0.7)
    sums = continua._KernelSums(kernel, x)
    assert np.allclose(sums.grad1(v), kernel.apply_grad1(x, x, v), rtol=1e-12, atol=1e-12)
    assert np.allclose(sums.grad2(v), kernel.apply_grad2(x, x, v), rtol=1e-12, atol=1e-12)
    w, score = np.abs(v), rng.normal(size=(40, 2))
    # the Stein velocity in particle form, as stein.py computes it
    ours = sums.apply(w[:, None] * score) + sums.grad2(w)
    assert np.allclose(ours, svgd_velocity(kernel, x, w, score), rtol=1e-12, atol=1e-12)


def test_kde_score_is_stein_kind_b():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(50, 2)), rng.uniform(0.5, 1.5, 50) / 50
    score = rng.normal(size=(50, 2))
    ours = continua.kde_score(continua._KernelSums(Kernel("gaussian", 0.4), x), w, score)
    _, ref, _ = kde_first_variation("b", x, w, 0.4, np.zeros(50), score)
    assert np.allclose(ours, ref, rtol=1e-12, atol=1e-12)


# --- stein --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mass", [None, 0.5])
def test_stein_bilinear_kernel_follows_the_gaussian_moment_ode(mass):
    """MATH §3.4 item 4: with k = 1 + xy and a Gaussian π the SVGD velocity is affine, u = αM0(a + Bx)
    with B = 1 − (s + m(m − m*))/s*, so ṁ = αM0(−(m − m*)/s* + Bm), ṡ = 2αM0Bs.  The nodal-flux
    transport differentiates the vertex-quadrature moments of degree ≤ 2 exactly (the lumped
    gradient of x and x² is exact at interior vertices), so the mesh moments obey the same ODE up to
    the e^{-18} boundary terms — any error in the velocity formula shows (measured 5e-12).  The
    particle weights carry the mass M0 (w_j = M0/N), so the velocity scales with it (mass 0.5)."""
    problem = get_case("w-kl-gauss-1d").with_changes(initial_mass=mass)
    out = solve_continuum(problem, "stein", {"kernel": "bilinear"}, 100)
    assert out["params"]["sigma"] is None and out["params"]["kernel"] == "bilinear"
    mass0, m0, s0 = moments(out, 0)
    ms, ss, _ = gaussian_1d(problem)
    alpha = problem.flow.alpha

    def rhs(_, y):
        m, s = y
        B = 1.0 - (s + m * (m - ms)) / ss
        return [alpha * mass0 * (-(m - ms) / ss + B * m), alpha * mass0 * 2 * B * s]

    ode = solve_ivp(rhs, (0.0, problem.T), [m0, s0], t_eval=out["t"], rtol=1e-12, atol=1e-14)
    for k in range(1, len(out["t"])):
        _, m, s = moments(out, k)
        assert abs(m - ode.y[0, k]) <= 1e-9 and abs(s - ode.y[1, k]) <= 1e-9, (k, m - ode.y[0, k], s - ode.y[1, k])
    assert abs(ode.y[0, -1] - m0) > 0.3  # the flow did move (0.40 at T from 1.0 with mass 1)
    assert abs(mass0 - (1.0 if mass is None else mass)) <= 1e-9


def test_stein_gaussian_kernel_conserves_mass_and_dissipates_ksd():
    """KL decreases at every snapshot; its exact semi-discrete rate −Σ m_iρ_iG_i·u_i equals the
    kernel Stein discrepancy α⟨G, K_ρG⟩ up to the O(h²) error of integrating by parts on the mesh
    (measured 1.8e-3 relative at n = 200, 6.9e-3 at n = 100)."""
    problem = get_case("w-kl-gauss-1d").with_changes(snapshots=tuple(np.linspace(0.1, 1.0, 10)))
    out = solve_continuum(problem, "stein", {"sigma": 0.5}, 200)
    assert abs(out["mass"][-1] / out["mass"][0] - 1) <= 1e-12
    assert np.all(np.diff(out["energy"]) < 0), np.diff(out["energy"])
    assert out["energy"][-1] < 0.5 * out["energy"][0]
    assert np.all(out["rate"] > 0) and np.all(out["ksd2"] > 0)
    rel = np.abs(out["rate"] - out["ksd2"]) / out["ksd2"]
    assert rel.max() <= 5e-3, rel


# --- lambda-stein -------------------------------------------------------------------------------


def test_lambda_stein_ivp_is_the_limit_of_the_explicit_euler_solver():
    """Same spatial operators as solve_lambda_stein_mesh; the explicit Euler solution converges to
    the adaptive one at first order (measured L1 distance 4.73e-4, 2.36e-4 at τ = 2e-3, 1e-3)."""
    problem = get_case("w-kl-gauss-1d").with_changes(T=0.25)
    ivp = solve_continuum(problem, "lambda-stein", {"sigma": 0.5, "lam": 1e-2}, 100)
    assert ivp["params"]["integrator"].startswith("DOP853") and ivp["params"]["rtol"] == 1e-8
    dist = []
    for tau in (2e-3, 1e-3):
        euler = solve_lambda_stein_mesh(problem, 100, tau, 1e-2, Kernel("gaussian", 0.5))
        assert np.array_equal(euler["x"], ivp["x"]) and np.allclose(euler["m"], ivp["m"], rtol=1e-14)
        dist.append(float(ivp["m"] @ np.abs(euler["rho"][-1] - ivp["rho"][-1])))
    assert dist[1] <= 5e-4, dist
    assert 1.8 <= dist[0] / dist[1] <= 2.2, dist
    # nodal flux + exact gradient: the KL rate is exactly the KRR dissipation
    assert np.allclose(ivp["rate"], ivp["dissipation"], rtol=1e-10)
    assert np.all(np.diff(ivp["energy"]) < 0)


def test_lambda_stein_kde_force_approaches_the_exact_gradient_at_second_order():
    """G = ∇log(K_h*ρ) − ∇log π has the bias ∇log(ρ + h²Δρ/2) − ∇log ρ = O(h²) (measured L1 distance
    0.064 and 0.0176 at h = 0.4, 0.2)."""
    problem = get_case("w-kl-gauss-1d").with_changes(T=0.25)
    exact = solve_continuum(problem, "lambda-stein", {"sigma": 0.5, "lam": 1e-2}, 200)
    dist = []
    for h in (0.4, 0.2):
        kde = solve_continuum(problem, "lambda-stein", {"sigma": 0.5, "lam": 1e-2, "kde_bandwidth": h}, 200)
        assert kde["params"]["kde_bandwidth"] == h and "KDE" in kde["params"]["force"]
        dist.append(float(exact["m"] @ np.abs(kde["rho"][-1] - exact["rho"][-1])))
    assert dist[1] <= 0.03 and dist[0] / dist[1] >= 3.0, dist


# --- lambda-fr ----------------------------------------------------------------------------------


def test_lambda_fr_wraps_the_mesh_lambda_frk_ivp_solver():
    problem = get_case("fr-kl-gauss-1d")
    ours = solve_continuum(problem, "lambda-fr", {"sigma": 0.5, "lam": 1e-3}, 100)
    ref = solve_lambda_frk_mesh(problem, 100, 1.0, 1e-3, Kernel("gaussian", 0.5), integrator="ivp", rtol=1e-8)
    assert np.array_equal(ours["rho"], ref["rho"]) and np.array_equal(ours["x"], ref["x"])
    assert np.array_equal(ours["energy"], ref["energy"])
    assert ours["params"]["integrator"].startswith("ivp") and ours["params"]["alpha_ignored"] is False
    # like the particle λ-FR method, the continuum ignores the transport weight of the case
    wfr = solve_continuum(get_case("wfr-kl-gauss-1d"), "lambda-fr", {"sigma": 0.5, "lam": 1e-3}, 100)
    assert np.array_equal(wfr["rho"], ours["rho"]) and wfr["params"]["alpha_ignored"] is True


# --- lambda-wfr ---------------------------------------------------------------------------------

WFR_PARAMS = {"sigma": 0.5, "lam": 1e-2, "kde_bandwidth": 0.3}


def test_lambda_wfr_without_reaction_is_lambda_stein_with_the_kde_score():
    """β = 0: the same nodal-flux KDE-score transport and KRR as lambda-stein (measured: bit-identical,
    max |Δρ| = 0)."""
    problem = get_case("wfr-kl-gauss-1d").with_changes(flow=Flow(1.0, 0.0, True), T=0.5, snapshots=(0.25, 0.5))
    ours = solve_continuum(problem, "lambda-wfr", WFR_PARAMS, 100)
    ref = solve_continuum(problem, "lambda-stein", WFR_PARAMS, 100)
    assert np.array_equal(ours["x"], ref["x"])
    assert np.max(np.abs(ours["rho"] - ref["rho"])) <= 1e-12 * np.max(ref["rho"])
    assert np.allclose(ours["dissipation_transport"], ref["dissipation"], rtol=1e-10)  # α = 1
    assert np.all(ours["dissipation_reaction"] == 0)


def kde_reaction_ode(problem, x, w0, p, rtol):
    """The λ-FR reaction with the KDE first variation, written directly in particle form on log w:
    d/dt log w = −β(r − c), r = 𝖪𝖶(𝖪𝖶 + λI)⁻¹ξ̂, ξ̂ = log((K_h*μ)/π) (kde_first_variation 'b')."""
    kernel = Kernel("gaussian", p["sigma"])
    log_pi = np.asarray(problem.target.log_density(x.T), float)
    beta, spherical = problem.flow.beta, problem.flow.spherical

    def rhs(_, y):
        w = np.exp(y)
        xi, _, _ = kde_first_variation("b", x, w, p["kde_bandwidth"], log_pi)
        r = krr(kernel, x, w, xi, p["lam"])
        return -beta * (r - (np.dot(w, r) / w.sum() if spherical else 0.0))

    sol = solve_ivp(rhs, (0.0, problem.T), np.log(w0), method="DOP853", t_eval=problem.snapshot_times(),
                    rtol=rtol, atol=rtol)
    return np.exp(sol.y.T)


@pytest.mark.parametrize("case", ["wfr-kl-gauss-1d", "hk-kl-gauss-1d"])
def test_lambda_wfr_without_transport_is_the_kde_lambda_fr_reaction(case):
    """α = 0: the pointwise reaction equals an independent solve of the particle-form reaction ODE
    on the vertices (spherical: c = ⟨r⟩; M+: c = 0 and the mass changes; measured relative max
    differences 1.8e-11 and 6.7e-11 at rtol 1e-10, 5.7e-9 and 5.3e-9 at the default 1e-8)."""
    base = get_case(case)
    problem = base.with_changes(flow=Flow(0.0, base.flow.beta, base.flow.spherical))
    ours = solve_continuum(problem, "lambda-wfr", WFR_PARAMS, 60, rtol=1e-10)
    W = kde_reaction_ode(problem, ours["x"], ours["m"] * ours["rho"][0], WFR_PARAMS, 1e-12)
    w = ours["m"] * ours["rho"]
    assert np.max(np.abs(w - W) / W) <= 1e-8, np.max(np.abs(w - W) / W)
    assert np.all(ours["dissipation_transport"] == 0)
    if not problem.flow.spherical:
        assert abs(ours["mass"][-1] - ours["mass"][0]) > 0.2  # the unbalanced reaction changes the mass (0.5 → 0.74)


def particle_rates(problem, x, w, p):
    """(ẋ, ẇ, G, v, ξ̂, r) of lambda_wfr.py at particles x with weights w, recomputed from its own
    pieces: kde_first_variation kind 'b', krr (the Gram matrix built inside), c = ⟨r⟩_w."""
    kernel = Kernel("gaussian", p["sigma"])
    log_pi = np.asarray(problem.target.log_density(x.T), float)
    _, G, _ = kde_first_variation("b", x, w, p["kde_bandwidth"], log_pi, grad_log_target(problem)(x))
    xi, _, _ = kde_first_variation("b", x, w, p["kde_bandwidth"], log_pi)
    v, r = krr(kernel, x, w, G, p["lam"]), krr(kernel, x, w, xi, p["lam"])
    alpha, beta = problem.flow.alpha, problem.flow.beta
    return -alpha * v, -beta * w * (r - np.dot(w, r) / w.sum()), G, v, xi, r


@pytest.mark.parametrize("case", ["wfr-kl-gauss-1d", "wfr-kl-gauss-2d"])
def test_lambda_wfr_rate_is_the_particle_rate_with_the_vertices_as_particles(case):
    """Mean-field consistency at t = 0 (and at a perturbed ρ): with x = the vertices and w = m∘ρ the
    continuum's fields v, r are lambda_wfr.py's, its reaction m∘ρ̇ is the particle ẇ, its transport
    is the nodal flux of the particle velocity, and — independently of the mesh operators — the
    vertex-quadrature moments of degree ≤ 2 change exactly as the particle ones,
    d/dt Σ m_iρ_iφ(x_i) = Σ_i (ẇ_iφ(x_i) + w_i∇φ(x_i)·ẋ_i) (the lumped gradient of a quadratic is exact
    at interior vertices; in 1-D the boundary vertices carry e^{-25} of the mass).  Measured ≤ 4e-15 relative."""
    problem = get_case(case)
    n = 100 if problem.dim == 1 else 12
    V = continua._Vertices(problem, n, "lambda-wfr")
    system = continua.LambdaWfrMesh(problem, V, continua.resolve_params("lambda-wfr", WFR_PARAMS))
    x = V.x
    for rho in (V.rho0, V.rho0 * (1 + 0.3 * np.sin(x.sum(1)))):
        w = V.m * rho
        xdot, wdot, G, v, xi, r = particle_rates(problem, x, w, WFR_PARAMS)
        f = system.fields(rho)
        for key, ref in (("G", G), ("v", v), ("xi", xi), ("r", r)):
            assert np.max(np.abs(f[key] - ref)) <= 1e-10 * np.max(np.abs(ref)), key
        rate = V.m * system.rhs(0.0, rho)
        # ∂_tρ = −∇·(ρẋ): m_iρ̇_i = Σ_k (C_kᵀ(ρ∘ẋ_k))_i = ∫ I_h(ρẋ)·∇ψ_i, plus the particle ẇ
        transport = sum(ct @ (rho * xdot[:, k]) for k, ct in enumerate(system.system.CT))
        assert np.max(np.abs(rate - (transport + wdot))) <= 1e-10 * np.max(np.abs(rate))
        moments_ = [(np.ones(len(x)), np.zeros_like(x)), (x[:, 0], np.eye(problem.dim)[0] + 0 * x)]
        if problem.dim == 1:  # 2-D: the coarse mesh's boundary vertices carry 1e-7 of the mass
            moments_.append(((x * x).sum(1), 2 * x))
        for phi, grad in moments_:
            mesh = float(rate @ phi)
            part = float(wdot @ phi + np.sum(w[:, None] * grad * xdot))
            assert abs(mesh - part) <= 1e-10 * np.sum(np.abs(w * phi)), (mesh, part)


def test_lambda_wfr_diagnostics_match_the_particle_method_run_on_the_vertices(monkeypatch):
    """lambda_wfr.run itself with its initial particles replaced by the vertices (w = m∘ρ0): the KRR
    dissipations it records at its first step (before any move) are the continuum's at t = 0 —
    the particle method's own KDE normalization, score, kernel and regression (measured 2.2e-16)."""
    problem = get_case("wfr-kl-gauss-1d")
    V = continua._Vertices(problem, 100, "lambda-wfr")
    out = solve_continuum(problem, "lambda-wfr", WFR_PARAMS, 100)
    monkeypatch.setattr(lambda_wfr, "sample_initial", lambda *_: (V.x.copy(), V.m * V.rho0))
    params = MethodParams(n_particles=V.n_vertices, lam=WFR_PARAMS["lam"], sigma=WFR_PARAMS["sigma"], dt=1.0, xi="b",
                          extra={"kde_bandwidth": WFR_PARAMS["kde_bandwidth"]})
    for flow, key in ((Flow(1.0, 0.0, True), "dissipation_transport"), (Flow(0.0, 1.0, True), "dissipation_reaction")):
        traj = lambda_wfr.run(problem.with_changes(flow=flow), "lambda-wfr", params)
        assert np.array_equal(out["x"], V.x) and np.array_equal(traj.x[0], V.x)
        assert abs(traj.steps[0][key] - out[key][0]) <= 1e-12 * out[key][0], (key, traj.steps[0][key], out[key][0])


def test_lambda_wfr_conserves_mass_and_decreases_kl():
    """wfr-kl-gauss-1d: spherical mass to round-off, the lumped KL decreases at every snapshot and
    its exact semi-discrete rate −dKL_h/dt is positive; the KRR dissipations are positive."""
    problem = get_case("wfr-kl-gauss-1d").with_changes(snapshots=tuple(np.linspace(0.1, 1.0, 10)))
    out = solve_continuum(problem, "lambda-wfr", WFR_PARAMS, 100)
    assert np.max(np.abs(out["mass"] / out["mass"][0] - 1)) <= 1e-10
    assert np.all(np.diff(out["kl"]) < 0), np.diff(out["kl"])
    assert out["kl"][-1] < 0.1 * out["kl"][0]
    assert np.all(out["kl_rate"] > 0)
    assert np.all(out["dissipation_transport"] > 0) and np.all(out["dissipation_reaction"] > 0)
    p = out["params"]
    assert p["kde_bandwidth"] == 0.3 and p["sigma"] == 0.5 and p["integrator"].startswith("DOP853")
    assert "energy" not in out
    # λ = 0: v = G and r = ξ̂, no kernel k (sigma not needed)
    plain = solve_continuum(problem, "lambda-wfr", {"lam": 0.0, "kde_bandwidth": 0.3}, 100)
    assert plain["params"]["sigma"] is None and np.all(np.diff(plain["kl"]) < 0)
    assert np.max(np.abs(plain["mass"] / plain["mass"][0] - 1)) <= 1e-10


# --- mmd-flow -----------------------------------------------------------------------------------


def p1_quantiles(x, rho, s):
    """Quantiles of the P1 interpolant: its CDF is quadratic on each element, inverted exactly."""
    h, a, b = np.diff(x), rho[:-1], rho[1:]
    cells = 0.5 * h * (a + b)
    F = np.concatenate([[0.0], np.cumsum(cells)]) / cells.sum()
    out = []
    for q in s:
        k = int(np.clip(np.searchsorted(F, q) - 1, 0, h.size - 1))
        c = (q - F[k]) * cells.sum()  # a t + (b − a) t²/(2h) = c on the element
        A, B = (b[k] - a[k]) / (2 * h[k]), a[k]
        t = c / B if abs(A) < 1e-14 else 2 * c / (B + math.sqrt(B * B + 4 * A * c))
        out.append(x[k] + t)
    return np.array(out)


@pytest.mark.parametrize("mass", [None, 2.0])
def test_mmd_flow_energy_kernel_follows_the_quantile_ode(mass):
    """MATH §3.4 item 2 / mmd_flow.py: with k = −|x − y| in 1-D, ∂_tQ(s) = 2αM0(s − F̄(Q(s))), F̄ the
    CDF of π|_Ω.  The quantiles of the mesh solution follow it at second order in h (measured max
    error over s ∈ [0.05, 0.95] at T = 1: 4.9e-3 at n = 100, 1.2e-3 at n = 200, 2.9e-4 at n = 400).
    With mass M0 = 2 the velocity doubles: π̄ is π|_Ω scaled to the mass of ρ0, as in mmd_flow.py."""
    problem = get_case("w-kl-gauss-1d").with_changes(initial_mass=mass)
    s = np.linspace(0.05, 0.95, 19)
    cdf = TruncatedCDF1D(problem.target, problem.domain.lower[0], problem.domain.upper[0])
    errs = []
    for n in (100, 200):
        out = solve_continuum(problem, "mmd-flow", {"kernel": "energy"}, n)
        x, mass0 = out["x"][:, 0], float(out["m"] @ out["rho"][0])
        q0 = p1_quantiles(x, out["rho"][0], s)  # the mesh's own initial quantiles
        assert np.max(np.abs(q0 - (1.0 + 0.7 * norm.ppf(s)))) <= 0.02 * (100 / n) ** 2
        ode = solve_ivp(lambda _, q: 2 * problem.flow.alpha * mass0 * (s - cdf(q)), (0.0, problem.T), q0,
                        t_eval=out["t"], rtol=1e-12, atol=1e-14)
        errs.append(max(np.max(np.abs(p1_quantiles(x, out["rho"][k], s) - ode.y[:, k])) for k in range(len(out["t"]))))
        assert np.max(np.abs(ode.y[:, -1] - q0)) > 0.3  # the quantiles moved
        assert np.all(np.diff(out["energy"]) < 0) and np.all(out["rate"] > 0)
    assert errs[1] <= 2e-3, errs
    assert errs[0] / errs[1] >= 3.5, errs  # order ≥ 1.8


# --- kde-wfr ------------------------------------------------------------------------------------


def kde_wfr_gaussian_ode(alpha, beta, sigma, ms, ss):
    """(m, s) ODE of kde-wfr for ρ = N(m, s), π = N(m*, s*) in 1-D.

    K_σ*ρ = N(m, s + σ²), so ξ_σ = ½(1/s* − 1/(s+σ²))x² − (m*/s* − m/(s+σ²))x + const is quadratic:
    the reaction −βρ(ξ_σ − ⟨ξ_σ⟩) keeps ρ Gaussian and moves the natural parameters P = 1/s, η = m/s
    by Ṗ = β(1/s* − 1/(s+σ²)), η̇ = β(m*/s* − m/(s+σ²)), i.e. ṡ = −s²Ṗ = βs²(1/(s+σ²) − 1/s*) and
    ṁ = (η̇ − mṖ)s = −βs(m − m*)/s*.  The transport part is MATH §3.3 with β = 0:
    ṁ = −α(m − m*)/s*, ṡ = 2α(1 − s/s*).  σ = 0 gives back §3.3 (ṡ = (1 − s/s*)(2α + βs))."""
    def rhs(_, y):
        m, s = y
        return [-(alpha + beta * s) * (m - ms) / ss,
                2 * alpha * (1 - s / ss) + beta * s * s * (1 / (s + sigma**2) - 1 / ss)]
    return rhs


def test_kde_wfr_reaction_field_is_the_quadratic_of_the_gaussian_ode():
    """The derivation above, checked on the mesh: ξ_σ at t = 0 is log N(x; m0, s0 + σ²) − log π
    (away from ∂Ω, where the truncated convolution misses mass)."""
    problem = get_case("wfr-kl-gauss-1d")
    V = continua._Vertices(problem, 200, "kde-wfr")
    system = continua.KdeWfrMesh(V, 0.3, 1.0, 1.0)
    xi, _ = system.xi(V.rho0)
    x = V.x[:, 0]
    expected = norm.logpdf(x, 1.0, math.sqrt(0.49 + 0.09)) - V.log_pi
    inner = np.abs(x) <= 4
    assert np.max(np.abs(xi - expected)[inner]) <= 1e-9


def test_kde_wfr_jacobian_matches_finite_differences():
    problem = get_case("wfr-kl-gauss-1d")
    V = continua._Vertices(problem, 40, "kde-wfr")
    system = continua.KdeWfrMesh(V, 0.5, 1.0, 1.0)
    rho = V.rho0 * (1 + 0.1 * np.cos(V.x[:, 0]))
    J = system.jac(0.0, rho)
    # complex-step derivatives: exact to round-off although ρ spans 20 decades (no difference quotient)
    cs = np.column_stack([system.rhs(0, rho + 1e-30j * e).imag / 1e-30 for e in np.eye(rho.size)])
    assert np.max(np.abs(J - cs)) <= 1e-12 * np.max(np.abs(J)), np.max(np.abs(J - cs))
    assert np.max(np.abs(V.m @ J)) <= 1e-12 * np.max(np.abs(J))  # mass-conserving Newton steps


def test_kde_wfr_follows_its_gaussian_ode():
    """Mesh mean/variance vs the ODE above at σ = 0.3 (measured errors 1.9e-5, 3.5e-5 at n = 200,
    second order in h); the σ-bias against the exact WFR solution is 50 times larger."""
    problem = get_case("wfr-kl-gauss-1d")
    sigma = 0.3
    out = solve_continuum(problem, "kde-wfr", {"sigma": sigma}, 200)
    assert out["params"]["integrator"].startswith("BDF") and "energy" not in out
    _, m0, s0 = moments(out, 0)
    ms, ss, _ = gaussian_1d(problem)
    ode = solve_ivp(kde_wfr_gaussian_ode(1.0, 1.0, sigma, ms, ss), (0, problem.T), [m0, s0], t_eval=out["t"],
                    rtol=1e-12, atol=1e-14)
    for k in range(1, len(out["t"])):
        _, m, s = moments(out, k)
        assert abs(m - ode.y[0, k]) <= 5e-5 and abs(s - ode.y[1, k]) <= 1e-4, (k, m - ode.y[0, k], s - ode.y[1, k])
    _, _, s_wfr = exact_solution(problem).moments(problem.T)
    assert abs(ode.y[1, -1] - s_wfr[0, 0]) >= 50 * 1e-4  # the oracle tells the KDE flow from WFR


def test_kde_wfr_tends_to_the_exact_wfr_flow_as_sigma_to_zero():
    """O(σ²) bias (measured lumped L1 distance to the exact solution 6.5e-3, 1.66e-3, 4.2e-4 for
    σ = 0.2, 0.1, 0.05 at n = 400)."""
    problem = get_case("wfr-kl-gauss-1d")
    exact = exact_solution(problem)
    dist = []
    for sigma in (0.2, 0.1, 0.05):
        out = solve_continuum(problem, "kde-wfr", {"sigma": sigma}, 400)
        dist.append(float(out["m"] @ np.abs(out["rho"][-1] - exact.density(problem.T, out["x"].T))))
    assert dist[2] <= 1e-3, dist
    assert dist[0] / dist[1] >= 3.3 and dist[1] / dist[2] >= 3.3, dist


# --- lie-split ----------------------------------------------------------------------------------


def lie_split_recursion(problem, h, z, m, s):
    """Exact Gaussian recursion of the W-then-FR Lie splitting: the ULA move is affine-Gaussian,
    N(m, s) → N(cm + ατm*/s*, c²s + 2ατ), c = 1 − ατ/s*; the FR substep relaxes the natural
    parameters, P ← aP + (1−a)P*, η ← aη + (1−a)η* (MATH §3.1), and on M+ the mass is ∫ρ'^aπ^{1−a}."""
    alpha, beta = problem.flow.alpha, problem.flow.beta
    ms, ss, zs = gaussian_1d(problem)
    out = [(z, m, s)]
    for _, n_k, tau in time_grid(problem.snapshot_times(), h):
        c, a = 1 - alpha * tau / ss, math.exp(-beta * tau)
        for _ in range(n_k):
            m, s = c * m + alpha * tau * ms / ss, c * c * s + 2 * alpha * tau
            if not problem.flow.spherical:
                def integrand(x, z=z, m=m, s=s):
                    return math.exp(a * (math.log(z) + norm.logpdf(x, m, math.sqrt(s)))
                                    + (1 - a) * (math.log(zs) + norm.logpdf(x, ms, math.sqrt(ss))))
                z = quad(integrand, -np.inf, np.inf, epsabs=0, epsrel=1e-13)[0]
            P, eta = a / s + (1 - a) / ss, a * m / s + (1 - a) * ms / ss
            m, s = eta / P, 1 / P
        out.append((z, m, s))
    return out


@pytest.mark.parametrize("case,tol", [("wfr-kl-gauss-1d", 2e-7), ("hk-kl-gauss-1d", 1e-8)])
def test_lie_split_follows_the_exact_gaussian_recursion(case, tol):
    """Every substep is exact at the vertices up to quadrature (spectrally accurate for these
    Gaussians), so the mesh moments match the recursion to the truncation of the Gaussian tails at
    ∂Ω (measured 4.6e-8 on [-6, 6], 1.1e-9 on [-10, 10], the same at n = 100 and 200)."""
    problem = get_case(case)
    out = solve_continuum(problem, "lie-split", {"h": 0.05}, 200)
    assert out["params"]["n_steps"] == 20 and out["params"]["move"] == "ula"
    rec = lie_split_recursion(problem, 0.05, *moments(out, 0))
    for k in range(1, len(out["t"])):
        z, m, s = moments(out, k)
        assert abs(m - rec[k][1]) <= tol and abs(s - rec[k][2]) <= tol, (k, m - rec[k][1], s - rec[k][2])
        assert abs(z - rec[k][0]) <= tol * max(1.0, rec[k][0]), (k, z - rec[k][0])
    z0, zT = out["mass"][0], out["mass"][-1]
    if problem.flow.spherical:
        assert abs(zT / z0 - 1) <= 1e-12
    else:
        assert abs(zT - z0) > 0.3  # the unbalanced flow changes the mass (0.5 → 1.5)


# --- common properties --------------------------------------------------------------------------

SPHERICAL_PARAMS = {
    "stein": {"sigma": 0.5},
    "lambda-stein": {"sigma": 0.5, "lam": 1e-2},
    "lambda-fr": {"sigma": 0.5, "lam": 1e-2},
    "lambda-wfr": WFR_PARAMS,
    "mmd-flow": {"sigma": 0.5},
    "kde-wfr": {"sigma": 0.3},
    "lie-split": {"h": 0.05},
}


@pytest.mark.parametrize("name", CONTINUA)
def test_spherical_continua_conserve_mass(name):
    """Runge–Kutta and BDF (mᵀJ = 0) preserve the linear invariant Σm_iρ_i to round-off, the Lie
    split renormalizes exactly; λ-FRk integrates log w, so its mass is exact only to the ODE
    tolerance (run here at rtol 1e-11)."""
    problem = get_case("wfr-kl-gauss-1d")
    rtol = 1e-11 if name == "lambda-fr" else 1e-8
    out = solve_continuum(problem, name, SPHERICAL_PARAMS[name], 100, rtol=rtol)
    drift = np.max(np.abs(out["mass"] / out["mass"][0] - 1))
    assert drift <= 1e-10, drift
    assert out["rho"].shape == (4, 101) and np.array_equal(out["t"], problem.snapshot_times())
    assert np.max(np.abs(out["rho"][-1] - out["rho"][0])) > 1e-2  # it moved
    assert np.all(np.diff(out["x"][:, 0]) > 0)  # lexicographic vertex order
    p = out["params"]
    assert p["n"] == 100 and p["n_vertices"] == 101 and "integrator" in p and "tolerance" in p
    json.dumps(p)
    assert out["wall"] > 0


@pytest.mark.parametrize("name", CONTINUA)
def test_two_dimensional_smoke(name):
    problem = get_case("wfr-kl-gauss-2d")
    params = {"stein": {"sigma": 1.0}, "lambda-stein": {"sigma": 1.0, "lam": 1e-2}, "lambda-fr": {"sigma": 1.0, "lam": 1e-2},
              "lambda-wfr": {"sigma": 1.0, "lam": 1e-1, "kde_bandwidth": 0.5}, "mmd-flow": {"sigma": 1.0}, "kde-wfr": {"sigma": 0.8}, "lie-split": {"h": 0.25}}[name]
    out = solve_continuum(problem, name, params, 16)
    assert out["rho"].shape == (4, 17 * 17) and out["x"].shape == (289, 2)
    assert np.all(np.isfinite(out["rho"]))
    assert np.max(np.abs(out["mass"] / out["mass"][0] - 1)) <= 1e-8
    assert out["kl"][-1] < out["kl"][0]


def test_keys_are_documented():
    assert set(CONTINUUM_KEYS) == set(CONTINUA)
    for keys in CONTINUUM_KEYS.values():
        for kind, default, text in keys.values():
            assert kind in (str, float) and isinstance(text, str) and text
            assert default is None or isinstance(default, kind)


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case,name,params,match", [
    ("w-kl-gauss-1d", "stein", {"sigma": 0.5, "bandwith": 1.0}, "unknown parameter 'bandwith'"),
    ("w-kl-gauss-1d", "stein", {}, "'sigma'.*required"),
    ("w-kl-gauss-1d", "mmd-flow", {"kernel": "gaussian"}, "'sigma'.*required"),
    ("wfr-kl-gauss-1d", "kde-wfr", {}, "'sigma'.*required"),
    ("wfr-kl-gauss-1d", "lie-split", {}, "'h'.*required"),
    ("wfr-kl-gauss-1d", "lie-split", {"h": 0.05, "move": "mala"}, "mala.*transition density"),
    ("wfr-kl-gauss-1d", "lie-split", {"h": 0.05, "move": "hmc"}, "'move'"),
    ("w-kl-gauss-1d", "stein", {"sigma": -1.0}, "'sigma' must be > 0"),
    ("w-kl-gauss-1d", "stein", {"sigma": "wide"}, "'sigma' must be a number"),
    ("w-kl-gauss-1d", "stein", {"sigma": 0.5, "kernel": "cauchy"}, "'kernel' must be one of"),
    ("w-kl-gauss-1d", "lambda-stein", {"sigma": 0.5, "lam": -1e-3}, "'lam' must be >= 0"),
    ("w-kl-gauss-1d", "lambda-stein", {"sigma": 0.5, "kde_bandwidth": 0}, "'kde_bandwidth' must be > 0"),
    ("wfr-kl-gauss-1d", "lie-split", {"h": -0.1}, "'h' must be > 0"),
    ("w-kl-gauss-1d", "langevin", {}, "unknown continuum 'langevin'"),
    ("fr-kl-gauss-1d", "stein", {"sigma": 0.5}, "alpha = 0"),
    ("fr-kl-gauss-1d", "mmd-flow", {"sigma": 0.5}, "alpha = 0"),
    ("fr-kl-gauss-1d", "lie-split", {"h": 0.05}, "alpha = 0"),
    ("w-kl-gauss-1d", "lambda-fr", {"sigma": 0.5}, "beta = 0"),
    ("hk-kl-gauss-1d", "kde-wfr", {"sigma": 0.3}, "unbalanced"),
    ("wfr-kl-gauss-1d", "lie-split", {"h": 0.001}, "not resolved by the mesh"),
    ("hk-kl-mms-1d", "stein", {"sigma": 0.5}, "source term"),
    ("wfr-kl-gauss-1d", "lambda-wfr", {"sigma": 0.5, "lam": 1e-2}, "'kde_bandwidth'.*required"),
    ("wfr-kl-gauss-1d", "lambda-wfr", {**WFR_PARAMS, "xi": "c"}, "unknown parameter 'xi'"),
    ("wfr-kl-gauss-1d", "lambda-wfr", {"kde_bandwidth": 0.3}, "'sigma'.*required"),
    ("wfr-kl-gauss-1d", "lambda-wfr", {**WFR_PARAMS, "kde_bandwidth": -0.3}, "'kde_bandwidth' must be > 0"),
    ("hk-kl-mms-1d", "lambda-wfr", WFR_PARAMS, "source term"),
])
def test_refusals_are_one_line_value_errors(case, name, params, match):
    with pytest.raises(ValueError, match=match) as info:
        solve_continuum(get_case(case), name, params, 50)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", CONTINUA)
def test_more_vertices_than_the_dense_limit_are_refused(name):
    problem = get_case("wfr-kl-gauss-1d")
    with pytest.raises(ValueError, match=f"DENSE_VERTEX_LIMIT = {DENSE_VERTEX_LIMIT}.*coarser mesh"):
        solve_continuum(problem, name, SPHERICAL_PARAMS[name], DENSE_VERTEX_LIMIT)
