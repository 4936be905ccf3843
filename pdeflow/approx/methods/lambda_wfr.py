"""λ-WFR: kernel-approximate Wasserstein–Fisher–Rao flow on moving weighted particles — method
``lambda-wfr`` (ZM (5.5)–(5.7); MATH §2.3 (b) "Kernel-approximate WFR").

Continuum PDE (α, β, spherical from ``problem.flow``):

    ∂_t ρ = α ∇·(ρ v) − β ρ (r − c),   v = (K_ρ + λ)⁻¹ K_ρ ∇ξ,   r = (K_ρ + λ)⁻¹ K_ρ ξ,   ξ = log(ρ/π),
    c = ⟨r⟩_ρ on P, 0 on M+,

the flow whose dual dissipation is the sum of those of λ-Stein and λ-FRk; λ → 0 formally gives the
(spherical) WFR flow of KL (MATH §2.1).  Particles μ = Σ_i w_i δ_{x_i} from ρ0|_Ω (w_i = M0/N); both
positions and weights move.  ξ̂ and ∇ξ̂ come from the weighted KDE K_h*μ: kind ``b`` (default; the
importance-sampling estimate 'a' needs fixed particles, so ``params.xi`` 'a' is read as 'b')
ξ̂ = log(K_h*μ/π), ∇ξ̂ = ∇log(K_h*μ) − ∇log π, or kind ``c`` the blob first variation and its gradient
(:func:`.lambda_fr.kde_first_variation`; then the blob energy E_h is recorded).  The velocity and
the growth rate are the KRR fits v = 𝖪𝖶(𝖪𝖶+λI)⁻¹∇ξ̂ and r = 𝖪𝖶(𝖪𝖶+λI)⁻¹ξ̂ (:func:`~pdeflow.approx.krr.krr`;
λ = 0: v = ∇ξ̂, r = ξ̂).

Time integration: Lie splitting, per step τ (steps land exactly on ``problem.snapshot_times()``):

1. transport x ← x − ατ v(x, w), then points that left Ω are mirrored back
   (:func:`~pdeflow.approx.particles.reflect`, the particle counterpart of no-flux, MATH §6 (d) 4);
2. reaction: ξ̂ and r recomputed at the new positions, then the mirror step
   w ← w exp(−βτ(r − c)), renormalized to the initial mass on P (:func:`.lambda_fr.mirror_step`).

Both sub-steps use the bandwidths fixed at the start of the step.  Parameters: ``n_particles``,
``lam``, ``kernel`` and ``sigma`` (KRR kernel; None: median heuristic of the current particles,
recomputed every step unless ``extra["median"]`` is False), ``extra["kde_bandwidth"]`` (None: median
heuristic per step), ``dt``, ``seed``, ``xi``.  ``steps`` records t, τ, the bandwidths, the mass, the
transport and reaction KRR dissipations Σ w Ĝ·v and Σ w ξ̂ r, and the ESS (Σw)²/Σw².
"""
from __future__ import annotations

import math
import time

import numpy as np

from ...problem import Problem, integrate
from ..kernels import Kernel
from ..krr import krr, krr_dissipation
from ..particles import ParticleTrajectory, reflect, sample_initial
from . import MethodParams
from .lambda_fr import blob_energy, describe_params, grad_log_target, kde_first_variation, mirror_step, time_grid
from .stein import bandwidth_rule, kde_bandwidth_rule


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    if method != "lambda-wfr":
        raise ValueError(f"lambda_wfr runs method 'lambda-wfr', not {method!r}")
    if params.extra.get("integrator", "euler") not in ("euler", "lie"):
        raise ValueError("lambda-wfr integrates by Lie splitting only (extra['integrator'] = 'euler')")
    flow = problem.flow
    alpha, beta, spherical, lam = flow.alpha, flow.beta, flow.spherical, float(params.lam)
    kind = "c" if params.xi == "c" else "b"

    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    x, w = sample_initial(problem, params.n_particles, rng)
    logw = np.log(w)
    log_mass0 = math.log(w.sum())
    score_fn = grad_log_target(problem) if alpha > 0 else None
    bandwidth = bandwidth_rule(params, x)
    kde_bandwidth = kde_bandwidth_rule(params)
    pi_mass = integrate(problem.target, problem.domain)

    def log_pi(x):
        return np.asarray(problem.target.log_density(x.T), float)

    def regress(kernel, x, w, f):
        return krr(kernel, x, w, f, lam) if lam > 0 else f

    def energy(x, w, h):
        if kind != "c":
            return None
        lp = log_pi(x)
        _, _, log_kde = kde_first_variation(kind, x, w, h, lp)
        return blob_energy(w, log_kde, lp, pi_mass)

    times = problem.snapshot_times()
    X, W = [x.copy()], [w.copy()]
    energies = [energy(x, w, kde_bandwidth(x))]
    steps = []
    t = times[0]
    for k, n_steps, tau in time_grid(times, params.dt):
        for s in range(n_steps):
            w = np.exp(logw)
            ell, h = bandwidth(x), kde_bandwidth(x)
            kernel = Kernel(params.kernel, 1.0 if ell is None else ell)
            entry = {"t": t, "tau": tau, "bandwidth": ell if lam > 0 else None, "kde_bandwidth": h,
                     "mass": float(w.sum()), "ess": float(w.sum() ** 2 / np.dot(w, w))}
            if alpha > 0:
                _, G, _ = kde_first_variation(kind, x, w, h, log_pi(x), score_fn(x))
                v = regress(kernel, x, w, G)
                entry["dissipation_transport"] = krr_dissipation(w, G, v)
                x = reflect(problem.domain, x - alpha * tau * v)
            if beta > 0:
                xi, _, _ = kde_first_variation(kind, x, w, h, log_pi(x))
                r = regress(kernel, x, w, xi)
                entry["dissipation_reaction"] = krr_dissipation(w, xi, r)
                logw = mirror_step(logw, r, beta, tau, spherical, log_mass0)
            steps.append(entry)
            t = times[k] if s == n_steps - 1 else t + tau
        X.append(x.copy())
        W.append(np.exp(logw))
        energies.append(energy(x, W[-1], kde_bandwidth(x)))

    resolved = {"integrator": "lie", "xi": kind,
                "bandwidth": steps[-1]["bandwidth"], "kde_bandwidth": steps[-1]["kde_bandwidth"]}
    info = {
        **resolved,
        "continuum": "d_t rho = alpha div(rho v) - beta rho (r - c), v, r = KRR of grad xi, xi "
                     "(ZM (5.5)-(5.7), MATH 2.3 (b))",
        "alpha": alpha, "beta": beta, "spherical": spherical, "n_steps": len(steps),
        "bandwidth_note": "bandwidths at the last step; per step in steps",
        "wall_s": time.perf_counter() - started,
    }
    if params.xi == "a":
        info["note"] = "xi 'a' (importance sampling) needs fixed particles; the KDE plug-in 'b' was used"
    return ParticleTrajectory(
        method=method,
        params=describe_params(params, **resolved),
        times=np.array(times),
        x=np.array(X),
        w=np.array(W),
        steps=steps,
        info=info,
        energy=None if kind != "c" else np.array(energies),
    )


# --- declarations (pdeflow.approx.methods registry) ------------------------------------------------
from . import MethodDecl, key  # noqa: E402


def _refuse(problem, params):
    if not problem.flow.alpha > 0:
        return f"lambda-wfr moves particles; case {problem.name!r} has alpha = 0 (use lambda-fr)"
    return None


def _continuum(problem, params):
    if params.extra.get("kde_bandwidth") is None:
        raise ValueError("lambda-wfr with the per-step median KDE bandwidth approximates no fixed continuum; "
                         "set kde_bandwidth")
    if params.xi == "c":
        raise ValueError("lambda-wfr with the blob first variation (xi = 'c') has no mesh continuum; use xi = 'b'")
    return "lambda-wfr", {"kernel": params.kernel, "sigma": params.sigma, "lam": params.lam,
                          "kde_bandwidth": params.extra["kde_bandwidth"]}


DECLARE = {
    "lambda-wfr": MethodDecl(
        name="lambda-wfr", summary="kernel-approximate WFR flow on moving weighted particles (ZM (5.5)-(5.7))",
        keys={
            "integrator": key(str, lambda v: v in ("euler", "lie"), "euler or lie (both: Lie splitting)"),
            "kde_bandwidth": key(float, lambda v: v > 0 and math.isfinite(v), "a positive number"),
            "median": key(bool, lambda v: isinstance(v, bool), "true or false"),
        },
        uses=("n_particles", "lam", "sigma", "kernel", "dt", "seed", "xi"), continuum=_continuum, refuse=_refuse,
        fixed_for_verify=("kde_bandwidth",),
        defaults={"integrator": "lie", "kde_bandwidth": "median heuristic per step", "median": True}),
}
