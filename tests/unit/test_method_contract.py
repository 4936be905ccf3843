"""The contract every particle method of ``pdeflow.approx.METHODS`` must meet (docs/new-method.md).

A new method is checked with

    .venv/bin/python -m pytest tests/unit/test_method_contract.py -k NAME

Each method runs on every contract case below (the built-in cases with a short T and a snapshot that
is not a multiple of dt, two tiny boxes where transport methods must reflect, the mesh domains); a
case the method does not approximate must be refused with a one-line ValueError (a skip).  Checked:
snapshot times, array shapes, finite values, w ≥ 0, the mass convention, particles inside Ω, and
same seed → identical run, other seed → other run.  Method-specific accuracy (oracles) belongs in
tests/unit/test_approx_oracles.py or test_approx_stochastic.py; the template's own oracle tests are at
the end of this file.  numpy/scipy only: nothing here needs dolfinx.  The whole file runs in ~15 s.
"""
import importlib
import json
import math

import numpy as np
import pytest

from pdeflow.approx.methods import METHODS, MethodParams, run_approximation
from pdeflow.approx.particles import inside
from pdeflow.cases import case_names, get_case
from pdeflow.exact import exact_solution
from pdeflow.exact.fisher_rao import weights_oracle
from pdeflow.geometry import Flow
from pdeflow.problem import Domain, box_quadrature, initial_density, integrate

N = 40  # particles: small, the contract is about structure, not accuracy
DT = 0.05
SNAPSHOTS = (0.07,)  # not a multiple of DT: the method must land on it exactly
T = 0.3

# Contract cases: id -> (built-in case, changes to it).  Append new domain types and cases here.
CASES = {
    "w-kl-gauss-1d": ("w-kl-gauss-1d", {}),
    "fr-kl-gauss-1d": ("fr-kl-gauss-1d", {}),
    "wfr-kl-gauss-1d": ("wfr-kl-gauss-1d", {}),
    "hk-kl-gauss-1d": ("hk-kl-gauss-1d", {}),
    "fr-m-plus-1d": ("hk-kl-gauss-1d", {"flow": Flow(0.0, 1.0, spherical=False)}),  # FR on M+: the mass changes
    "wfr-kl-mixture-1d": ("wfr-kl-mixture-1d", {}),  # initial_mass: ρ0 rescaled on Ω
    "hk-kl-mms-1d": ("hk-kl-mms-1d", {}),  # expression densities: particle methods refuse it
    "wfr-kl-gauss-2d": ("wfr-kl-gauss-2d", {}),
    "fr-kl-bimodal-2d": ("fr-kl-bimodal-2d", {}),
    # π = N(0, I) with 13 % (1-D) or more (2-D) of its mass near the faces: moves must be reflected
    "tiny-box-1d": ("wfr-kl-gauss-1d", {"domain": Domain((-1.5,), (1.5,))}),
    "tiny-box-2d": ("wfr-kl-gauss-2d", {"domain": Domain((-1.0, -1.0), (1.0, 1.0))}),
    # mesh domains (not boxes): sampling, inside and reflection go through the shape
    "wfr-kl-mixture-disk": ("wfr-kl-mixture-disk", {}),
    "fr-disk": ("wfr-kl-mixture-disk", {"flow": Flow(0.0, 1.0, spherical=True)}),
    "wfr-kl-mixture-lshape": ("wfr-kl-mixture-lshape", {}),
    "wfr-kl-gauss-3d": ("wfr-kl-gauss-3d", {}),
}
CASES = {k: v for k, v in CASES.items() if v[0] in case_names()}  # cases of this checkout only

# Method-specific settings where the defaults of MethodParams do not suit the contract runs.
SETTINGS = {}


def contract_problem(case_id):
    name, changes = CASES[case_id]
    return get_case(name).with_changes(T=T, snapshots=SNAPSHOTS, **changes)


def contract_params(method, seed=3):
    return MethodParams(n_particles=N, dt=DT, seed=seed, **SETTINGS.get(method, {}))


def run_or_skip(problem, method, params):
    try:
        return run_approximation(problem, method, params)
    except ValueError as exc:  # the method does not approximate this case: refused, in one line
        message = str(exc)
        assert message and "\n" not in message, f"{method}: a refusal must be a one-line ValueError: {message!r}"
        pytest.skip(f"{method} refuses {problem.name}: {message}")


@pytest.mark.parametrize("case_id", list(CASES))
@pytest.mark.parametrize("method", list(METHODS))
def test_method_contract(method, case_id):
    problem = contract_problem(case_id)
    a = run_or_skip(problem, method, contract_params(method))
    n_snap, d = len(problem.snapshot_times()), problem.dim

    # snapshot times: exactly those of the problem, t = 0 included
    assert a.method == method
    assert np.asarray(a.times).tolist() == list(problem.snapshot_times())
    # shapes and values
    assert a.x.shape == (n_snap, N, d) and a.w.shape == (n_snap, N)
    assert a.x.dtype == np.float64 and a.w.dtype == np.float64
    assert np.all(np.isfinite(a.x)) and np.all(np.isfinite(a.w))
    assert np.all(a.w >= 0)
    if a.energy is not None:
        assert np.shape(a.energy) == (n_snap,) and np.all(np.isfinite(a.energy))
    # particles inside Ω at every snapshot (reflection at the boundary)
    for k in range(n_snap):
        assert inside(problem.domain, a.x[k]).all(), f"particles outside Ω at t = {a.times[k]}"
    # mass: Σ w(0) = ∫_Ω ρ0 (the reference's initial mass); conserved where the flow conserves it
    mass = a.mass()
    assert mass[0] == pytest.approx(integrate(initial_density(problem), problem.domain), rel=1e-12)
    if problem.flow.spherical or problem.flow.beta == 0:
        assert np.allclose(mass, mass[0], rtol=1e-12, atol=0), mass
    else:
        assert np.all(mass > 0)
    # outputs are JSON-safe (pdeflow approx writes summary.json from them)
    json.dumps(a.summary())

    # determinism: the seed is the only source of randomness
    b = run_approximation(problem, method, contract_params(method))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.w, b.w)
    assert (a.energy is None and b.energy is None) or np.array_equal(a.energy, b.energy)
    c = run_approximation(problem, method, contract_params(method, seed=4))
    assert not np.array_equal(a.x[0], c.x[0]), "another seed must draw other initial particles"


@pytest.mark.parametrize("method", list(METHODS))
def test_method_is_documented_and_runs_somewhere(method):
    module = importlib.import_module(f"pdeflow.approx.methods.{METHODS[method]}")
    doc = (module.__doc__ or "").lower()
    assert "continuum pde" in doc, f"{module.__name__}: the docstring must state the continuum PDE it approximates"
    assert "seed" in doc, f"{module.__name__}: the docstring must say how the seed is used"
    assert callable(getattr(module, "run", None))
    accepted = []
    for case_id in CASES:
        try:
            run_approximation(contract_problem(case_id), method, contract_params(method))
            accepted.append(case_id)
        except ValueError:
            pass
    assert accepted, f"{method} refuses every contract case"


# --- the template (template-fr): exact Fisher–Rao reweighting of fixed particles ------------------


def test_template_weights_are_the_closed_form():
    for name in ("fr-kl-gauss-1d", "fr-kl-bimodal-2d"):
        problem = get_case(name)
        traj = run_approximation(problem, "template-fr", MethodParams(n_particles=500, seed=7))
        rho0, m0 = initial_density(problem), integrate(initial_density(problem), problem.domain)
        assert np.all(traj.x == traj.x[0])  # fixed particles
        for t, x, w in zip(traj.times, traj.x, traj.w):
            o = m0 * weights_oracle(t, x.T, rho0, problem.target, problem.flow.beta)
            assert np.max(np.abs(w - o) / o) <= 1e-12
        assert np.all(np.diff(traj.energy) < 0)  # the weights follow the exact gradient flow of F̂
        # an independent implementation: λ-FRk at λ = 0 with its exact integrator
        lfr = run_approximation(problem, "lambda-fr", MethodParams(n_particles=500, seed=7, lam=0.0,
                                                                   extra={"integrator": "exact"}))
        assert np.array_equal(lfr.x, traj.x) and np.max(np.abs(lfr.w / traj.w - 1)) <= 1e-12


def test_template_unbalanced_weights_are_the_closed_form():
    problem = get_case("hk-kl-gauss-1d").with_changes(flow=Flow(0.0, 1.0, spherical=False), exact_kind="fisher-rao")
    traj = run_approximation(problem, "template-fr", MethodParams(n_particles=500, seed=1))
    x = traj.x[0].T
    log_ratio = problem.target.log_density(x) - initial_density(problem).log_density(x)
    for t, w in zip(traj.times, traj.w):
        assert np.max(np.abs(w / (traj.w[0] * np.exp((1 - math.exp(-t)) * log_ratio)) - 1)) <= 1e-12
    # Σ w is the importance-sampling estimate of the FR mass ∫_Ω ρ0^a π^{1−a}: within 4 standard errors
    w = traj.w[-1]
    assert abs(w.sum() - exact_solution(problem).mass(problem.T)) <= 4 * np.std(500 * w) / math.sqrt(500)


def test_template_refuses_transport():
    with pytest.raises(ValueError, match="alpha = 1, a transport it would ignore"):
        run_approximation(get_case("wfr-kl-gauss-1d"), "template-fr", MethodParams(n_particles=10))
    with pytest.raises(ValueError, match="extra"):
        run_approximation(get_case("fr-kl-gauss-1d"), "template-fr", MethodParams(n_particles=10, extra={"x": 1}))


def test_template_mean_converges_to_the_exact_fisher_rao_mean():
    problem = get_case("fr-kl-bimodal-2d")
    exact = exact_solution(problem)  # FisherRaoKL: exact on Ω
    q, qw = box_quadrature(problem.domain, panels=96)
    rho_T = exact.density(problem.T, q)
    mean_T = (q * (qw * rho_T)).sum(axis=1) / np.dot(qw, rho_T)
    rms = {}
    for n in (250, 4000):
        errors = []
        for seed in range(8):
            traj = run_approximation(problem, "template-fr", MethodParams(n_particles=n, seed=seed))
            w = traj.w[-1] / traj.w[-1].sum()
            mean = w @ traj.x[-1]
            # self-normalized importance sampling: standard error sqrt(Σ w_i² |x_i − mean|²) per coordinate
            se = np.sqrt(w**2 @ (traj.x[-1] - mean) ** 2)
            assert np.all(np.abs(mean - mean_T) <= 5 * se), (n, seed, mean, mean_T, se)
            errors.append(np.sum((mean - mean_T) ** 2))
        rms[n] = math.sqrt(np.mean(errors))
    # Monte Carlo rate N^{-1/2}: 16× the particles, about 4× smaller error (2× allowed for 8 seeds)
    assert rms[4000] < rms[250] / 2, rms


# the geometry each built-in method approximates (its continuum): a case outside it must be refused,
# not run with a term silently ignored (svgd used to run on hk-kl-gauss-1d with a mass error of 0.4)
GEOMETRY = {"svgd": "transport", "lambda-stein": "transport", "mmd-flow": "transport", "lambda-fr": "reaction",
            "template-fr": "reaction", "birth-death": "spherical", "smc-wfr": "moving", "lambda-wfr": "moving"}


def test_every_method_declares_its_geometry_here():
    from pdeflow.approx.methods import DECLARATIONS

    assert set(DECLARATIONS) == set(GEOMETRY)


@pytest.mark.parametrize("method", sorted(GEOMETRY))
@pytest.mark.parametrize("case", ["hk-kl-gauss-1d", "wfr-kl-gauss-1d", "w-kl-gauss-1d", "fr-kl-gauss-1d"])
def test_methods_refuse_geometries_they_do_not_approximate(method, case):
    from pdeflow.approx.methods import DECLARATIONS

    problem = get_case(case)
    flow = problem.flow
    kind = GEOMETRY[method]
    must_refuse = {"transport": flow.beta != 0 or flow.alpha == 0,
                   "reaction": flow.alpha != 0 or flow.beta == 0,
                   "spherical": not flow.spherical,
                   "moving": flow.alpha == 0}[kind]
    decl = DECLARATIONS[method]
    reason = decl.refuse(problem, MethodParams(n_particles=10, sigma=0.5)) if decl.refuse else None
    assert bool(reason) == must_refuse, (method, case, reason)
    if must_refuse:
        assert "\n" not in reason and problem.name in reason
        with pytest.raises(ValueError):
            run_approximation(problem, method, MethodParams(n_particles=10, sigma=0.5))
