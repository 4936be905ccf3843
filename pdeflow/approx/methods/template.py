"""Fisher–Rao reweighting of fixed particles — method ``template-fr``: the template for a new method
(copy this file; docs/new-method.md walks through it).

Continuum PDE approximated
--------------------------
The Fisher–Rao (Hellinger) gradient flow of KL(ρ|π) (MATH §2.1, §3.1), with the reaction weight
β = ``problem.flow.beta`` > 0 and no transport (α = 0 is required: a case with α ≠ 0 is refused,
use ``--set alpha=0``):

    spherical (P, ``problem.flow.spherical``):  ∂_t ρ = −β ρ (ξ − ⟨ξ⟩_ρ),   ξ = log(ρ/π),
    unbalanced (M+):                             ∂_t ρ = −β ρ ξ,

a pointwise ODE in x, hence no boundary condition.  Its solution is the closed form
(:mod:`pdeflow.exact.fisher_rao`)

    ρ_t = ρ0^a π^{1−a} (M+),   ρ_t = M0 ρ0^a π^{1−a} / ∫_Ω ρ0^a π^{1−a} (P),   a = e^{−βt},  M0 = ∫_Ω ρ0.

Particle system
---------------
x_i, i = 1…N, i.i.d. from ρ0 restricted to Ω (:func:`pdeflow.approx.particles.sample_initial`
with ``np.random.default_rng(params.seed)``), w_i(0) = M0/N; the particles never move, so they stay
in Ω and no reflection is needed.  Since ρ_t/ρ0 = (π/ρ0)^{1−a} up to a constant, importance sampling
gives the weights in closed form:

    M+:  w_i(t) = w_i(0) (π/ρ0)^{1−a}(x_i),
    P:   w_i(t) = M0 · w_i(0) (π/ρ0)^{1−a}(x_i) / Σ_j w_j(0) (π/ρ0)^{1−a}(x_j),

i.e. μ_t = Σ_i w_i(t) δ_{x_i} is the exact FR flow of the weights of the empirical measure (MATH
§3.1, last bullet; :func:`pdeflow.exact.fisher_rao.weights_oracle` gives the normalized weights).
ρ0 is :func:`pdeflow.problem.initial_density` (rescaled to ``initial_mass`` where the case sets it).
No time stepping: the only errors are the Monte Carlo error O(N^{-1/2}) of the importance sampling
and its weight degeneracy (ESS) when π and ρ0 differ much.

Mass and weights: w ≥ 0 always; spherical: Σ_i w_i(t) = M0 = Σ_i w_i(0) to round-off at every time;
M+: Σ_i w_i(t) is the importance-sampling estimate of ∫_Ω ρ0^a π^{1−a} (it changes in time).

Parameters (:class:`~pdeflow.approx.methods.MethodParams`): ``n_particles`` N and ``seed`` (the only
source of randomness; the same seed gives the same run bit for bit).  ``dt``, ``lam``, ``sigma``,
``kernel`` and ``xi`` are not used; ``extra`` must be empty.

Outputs: :class:`~pdeflow.approx.particles.ParticleTrajectory` at ``problem.snapshot_times()``
(t = 0 included); ``energy`` is the importance-sampling estimate of KL(ρ_t|π) (MATH E1),
F̂ = Σ_i w_i ξ̂_i − Σ_i w_i + ∫_Ω π with ξ̂_i = log(w_i/w_i(0)) + log(ρ0/π)(x_i); ``steps`` has one
entry per snapshot (t, mass, ESS (Σw)²/Σw²).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ...problem import Problem, initial_density, integrate
from ..particles import ParticleTrajectory, sample_initial
from . import MethodParams
from .lambda_fr import describe_params

NAME = "template-fr"


def _log_normalize(logw: np.ndarray, log_mass: float) -> np.ndarray:
    """log weights shifted so that Σ exp(logw) = exp(log_mass) (log-sum-exp: no under/overflow)."""
    top = float(logw.max())
    return logw + (log_mass - top - math.log(float(np.exp(logw - top).sum())))


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    # 1. Refuse what the method does not approximate: ValueError, one line (the CLI turns it into exit 2).
    if method != NAME:
        raise ValueError(f"template runs method {NAME!r}, not {method!r}")
    flow = problem.flow
    if flow.alpha != 0 or not flow.beta > 0:
        raise ValueError(f"{NAME}: the pure Fisher-Rao flow needs alpha = 0 and beta > 0; case {problem.name!r} "
                         f"has alpha = {flow.alpha:g}, beta = {flow.beta:g} (try --set alpha=0)")
    if params.extra:
        raise ValueError(f"{NAME}: no method-specific parameters, got extra keys {sorted(params.extra)}")

    # 2. Initial particles: the one shared helper, seeded by params.seed only.
    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    x, w0 = sample_initial(problem, params.n_particles, rng)  # x (N, d) in Ω, w0 = M0/N each
    logw0 = np.log(w0)
    log_pi = np.asarray(problem.target.log_density(x.T), dtype=float)
    log_ratio = log_pi - np.asarray(initial_density(problem).log_density(x.T), dtype=float)  # log(π/ρ0)(x_i)
    log_mass0 = math.log(float(w0.sum()))
    pi_mass = integrate(problem.target, problem.domain)

    # 3. The weights at every snapshot time (t = 0 included), here in closed form.
    times = np.array(problem.snapshot_times(), dtype=float)
    W, energy, steps = [], [], []
    for t in times:
        logw = logw0 - math.expm1(-flow.beta * t) * log_ratio  # w0 (π/ρ0)^{1−a}, 1 − a = −expm1(−βt)
        if flow.spherical:
            logw = _log_normalize(logw, log_mass0)
        w = np.exp(logw)
        xi = (logw - logw0) - log_ratio  # ξ̂_i = log(w_i/w_i(0)) + log(ρ0/π)(x_i)
        W.append(w)
        energy.append(float(np.dot(w, xi) - w.sum() + pi_mass))
        steps.append({"t": float(t), "mass": float(w.sum()), "ess": float(w.sum() ** 2 / np.dot(w, w))})

    # 4. The trajectory: positions (n_snap, N, d), weights (n_snap, N), JSON-safe params/steps/info.
    info = {
        "continuum": "d_t rho = -beta rho (log(rho/pi) - <log(rho/pi)>_rho) on P, -beta rho log(rho/pi) on M+ "
                     "(MATH 2.1, 3.1)",
        "beta": flow.beta,
        "spherical": flow.spherical,
        "energy": "importance-sampling KL estimate (E1)",
        "wall_s": time.perf_counter() - started,
    }
    return ParticleTrajectory(
        method=method,
        params=describe_params(params),
        times=times,
        x=np.repeat(x[None], len(times), axis=0),
        w=np.array(W),
        steps=steps,
        info=info,
        energy=np.array(energy),
    )


# --- declarations (pdeflow.approx.methods registry): the one place a new method is registered --------
from . import MethodDecl, refuse_unless_reaction  # noqa: E402

DECLARE = {
    NAME: MethodDecl(
        name=NAME, summary="exact Fisher-Rao reweighting of fixed particles (the template for new methods)",
        keys={},  # method-specific keys: name -> key(type, check, rule); they reach run() in params.extra
        uses=("n_particles", "seed"),
        continuum=lambda problem, params: ("flow", {}),  # no kernel, no step: its limit is the true FR flow
        refuse=refuse_unless_reaction(NAME)),
}
