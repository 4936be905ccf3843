"""Stein-geometry particle flows — methods ``svgd`` (Liu & Wang 2016, MATH §5.1) and ``lambda-stein``
(regularized SVGD / R-SVGD, ZM (4.4)–(4.7), MATH §2.3 (b) and §5.1 last paragraph).

Continuum PDEs (α = ``problem.flow.alpha`` > 0, the transport weight of the case; β is not used):

* ``svgd``:          ∂_t ρ = α ∇·(ρ K_ρ ∇ log(ρ/π)),  (K_ρ v)(x) = ∫ k(x, y) v(y) dρ(y),
  the Stein PDE at fixed kernel k — *not* Fokker–Planck (MATH §5.1 pitfall).  Particles:
      ẋ_i = α φ̂(x_i),  φ̂(x) = Σ_j w_j [k(x_j, x) ∇log π(x_j) + ∇_{x_j} k(x_j, x)]  (= −K_μ∇log(μ/π) after
  integration by parts), with the weights w_j = M0/N fixed.
* ``lambda-stein``:  ∂_t ρ = α ∇·(ρ v),  v = (K_ρ + λ)⁻¹ K_ρ ∇ log(ρ/π),
  which tends to the Wasserstein (Fokker–Planck) flow as λ → 0.  Particles: ẋ_i = −α v_i with
  v = 𝖪𝖶(𝖪𝖶 + λI)⁻¹ Ĝ (:func:`~pdeflow.approx.krr.krr`, vector valued; λ = 0: v = Ĝ) and
  Ĝ_j = ∇ξ̂(x_j), ξ̂ from the weighted KDE of bandwidth h: kind ``b`` (default; ``params.xi`` 'a' is read as
  'b' because importance weights need fixed particles) Ĝ = ∇log(K_h*μ) − ∇log π, or kind ``c`` the
  gradient of the blob first variation (see :mod:`.lambda_fr`), for which the blob energy is recorded.

Parameters: ``n_particles``, ``kernel``, ``sigma`` (kernel bandwidth ℓ; None: median heuristic
:func:`~pdeflow.approx.kernels.median_bandwidth`, recomputed every step when
``extra["median"]`` (default True), else fixed from the initial particles), ``lam`` (lambda-stein),
``extra["kde_bandwidth"]`` (lambda-stein; None: median heuristic of the current particles), ``dt``, ``seed``,
``extra["integrator"]``:

* ``"euler"`` (default): x ← x + τ ẋ, then points that left the box Ω are mirrored back with
  :func:`~pdeflow.approx.particles.reflect` — the particle counterpart of the no-flux boundary
  condition of the reference PDE (MATH §6 (d) 4).
* ``"ivp"``: the particle ODE by ``scipy.integrate.solve_ivp`` (DOP853, ``extra["rtol"]``,
  ``extra["atol"]``, default 1e-12) between snapshot times — an oracle mode (MATH §3.4 item 4).  The
  ODE is integrated on R^d; reflection is applied at the snapshot times only (a smooth ODE must not be
  cut by reflections inside an adaptive step), so use it on boxes the particles do not reach.

Steps land exactly on ``problem.snapshot_times()``.  ``steps`` records per Euler step t, τ, the
bandwidth(s) used, the mass, Σ_i w_i|ẋ_i|² and for lambda-stein the KRR dissipation Σ_i w_i Ĝ_i·v_i;
in ivp mode one entry per snapshot interval (bandwidths at its start, number of right-hand sides).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import solve_ivp

from ...problem import Problem, integrate
from ..kernels import Kernel, median_bandwidth
from ..krr import krr, krr_dissipation
from ..particles import ParticleTrajectory, reflect, sample_initial
from . import MethodParams
from .lambda_fr import SCALE_FREE, blob_energy, describe_params, grad_log_target, kde_first_variation, time_grid

DEFAULT_TOL = 1e-12


def bandwidth_rule(params: MethodParams, x0: np.ndarray):
    """x → ℓ: params.sigma; else the median heuristic, per step (extra['median'], default) or fixed at t = 0."""
    if params.kernel in SCALE_FREE:
        return lambda x: None
    if params.sigma is not None:
        return lambda x: float(params.sigma)
    if params.extra.get("median", True):
        return median_bandwidth
    fixed = median_bandwidth(x0)
    return lambda x: fixed


def kde_bandwidth_rule(params: MethodParams):
    h = params.extra.get("kde_bandwidth")
    return (lambda x: float(h)) if h is not None else median_bandwidth


def svgd_velocity(kernel: Kernel, x: np.ndarray, w: np.ndarray, score: np.ndarray) -> np.ndarray:
    """φ̂(x_i) = Σ_j w_j [k(x_j, x_i) ∇log π(x_j) + ∇_{x_j} k(x_j, x_i)], shape (N, d).

    k is symmetric, so k(x_j, x_i) = k(x_i, x_j) (a Gram product) and ∇_{x_j}k(x_j, x_i) = ∇₂k(x_i, x_j)."""
    return kernel.apply(x, x, w[:, None] * score) + kernel.apply_grad2(x, x, w)


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    if method not in ("svgd", "lambda-stein"):
        raise ValueError(f"stein runs methods 'svgd' and 'lambda-stein', not {method!r}")
    alpha = problem.flow.alpha
    if not alpha > 0:
        raise ValueError(f"{method} is a transport method; case {problem.name!r} has alpha = {alpha}")
    integrator = params.extra.get("integrator", "euler")
    if integrator not in ("euler", "ivp"):
        raise ValueError(f"{method} integrator must be 'euler' or 'ivp', got {integrator!r}")
    lam = float(params.lam)
    kind = "c" if params.xi == "c" else "b"

    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    x, w = sample_initial(problem, params.n_particles, rng)
    n, d = x.shape
    score_fn = grad_log_target(problem)
    bandwidth = bandwidth_rule(params, x)
    kde_bandwidth = kde_bandwidth_rule(params)
    pi_mass = integrate(problem.target, problem.domain) if (method == "lambda-stein" and kind == "c") else None

    def velocity(x):
        """(ẋ, diagnostics) at positions x."""
        uses_kernel = method == "svgd" or lam > 0
        ell = bandwidth(x) if uses_kernel else None
        kernel = Kernel(params.kernel, 1.0 if ell is None else ell)
        if method == "svgd":
            v = alpha * svgd_velocity(kernel, x, w, score_fn(x))
            return v, {"bandwidth": ell}
        h = kde_bandwidth(x)
        log_pi = np.asarray(problem.target.log_density(x.T), float)
        _, G, _ = kde_first_variation(kind, x, w, h, log_pi, score_fn(x))
        v = krr(kernel, x, w, G, lam) if lam > 0 else G
        diag = {"bandwidth": ell, "kde_bandwidth": h, "dissipation": krr_dissipation(w, G, v)}
        return -alpha * v, diag

    times = problem.snapshot_times()
    X, steps = [x.copy()], []
    t = times[0]
    rtol = float(params.extra.get("rtol", DEFAULT_TOL))
    atol = float(params.extra.get("atol", DEFAULT_TOL))
    for k, n_steps, tau in time_grid(times, params.dt):
        if integrator == "euler":
            for s in range(n_steps):
                v, diag = velocity(x)
                steps.append({"t": t, "tau": tau, "mass": float(w.sum()),
                              "velocity_norm2": float(np.dot(w, (v * v).sum(1))), **diag})
                x = reflect(problem.domain, x + tau * v)
                t = times[k] if s == n_steps - 1 else t + tau
        else:
            _, diag = velocity(x)
            sol = solve_ivp(lambda _t, y: velocity(y.reshape(n, d))[0].ravel(), (times[k - 1], times[k]), x.ravel(),
                            method="DOP853", rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(f"{method}: solve_ivp failed on ({times[k - 1]}, {times[k]}): {sol.message}")
            steps.append({"t": times[k - 1], "t_end": times[k], "mass": float(w.sum()), "nfev": int(sol.nfev),
                          **{key: diag[key] for key in ("bandwidth", "kde_bandwidth") if key in diag}})
            x = reflect(problem.domain, sol.y[:, -1].reshape(n, d))
            t = times[k]
        X.append(x.copy())

    def blob(x):
        lp = np.asarray(problem.target.log_density(x.T), float)
        _, _, log_kde = kde_first_variation(kind, x, w, kde_bandwidth(x), lp)
        return blob_energy(w, log_kde, lp, pi_mass)

    energies = [blob(xs) for xs in X] if (method == "lambda-stein" and kind == "c") else None
    if params.kernel in SCALE_FREE:
        rule = "none (scale-free kernel)"
    elif method == "lambda-stein" and lam == 0:
        rule = "none (lam = 0: no regression)"
    elif params.sigma is not None:
        rule = "fixed sigma"
    else:
        rule = "median heuristic per step" if params.extra.get("median", True) else "median heuristic at t=0"
    # bandwidths at T; per step (Euler) or per snapshot interval (ivp) in steps
    resolved = {"integrator": integrator, "bandwidth": bandwidth(x) if rule.startswith(("fixed", "median")) else None,
                "bandwidth_rule": rule}
    if method == "lambda-stein":
        resolved.update({"kde_bandwidth": kde_bandwidth(x), "xi": kind})
    continuum = ("d_t rho = alpha div(rho K_rho grad log(rho/pi)) (Stein PDE, MATH 2.2, 5.1)" if method == "svgd" else
                 "d_t rho = alpha div(rho (K_rho + lam)^-1 K_rho grad log(rho/pi)) (ZM (4.7), MATH 2.3 (b))")
    info = {**resolved, "continuum": continuum, "alpha": alpha, "n_steps": len(steps),
            "reflection": "every step" if integrator == "euler" else "at snapshot times only",
            "wall_s": time.perf_counter() - started}
    if method == "lambda-stein" and params.xi == "a":
        info["note"] = "xi 'a' (importance sampling) needs fixed particles; the KDE plug-in 'b' was used"
    return ParticleTrajectory(
        method=method,
        params=describe_params(params, **resolved),
        times=np.array(times),
        x=np.array(X),
        w=np.repeat(w[None], len(times), axis=0),
        steps=steps,
        info=info,
        energy=None if energies is None else np.array(energies),
    )


# --- declarations (pdeflow.approx.methods registry) ------------------------------------------------
from . import INTEGRATION_TOL_KEYS, MethodDecl, key, refuse_unless_transport  # noqa: E402

_STEIN_KEYS = {
    "integrator": key(str, lambda v: v in ("euler", "ivp"), "euler or ivp"),
    "median": key(bool, lambda v: isinstance(v, bool), "true or false (median heuristic recomputed every step)"),
    **INTEGRATION_TOL_KEYS,
}


def _stein_continuum(problem, params):
    return "stein", {"kernel": params.kernel, "sigma": params.sigma}


def _lambda_stein_continuum(problem, params):
    if params.extra.get("kde_bandwidth") is None:
        raise ValueError("lambda-stein with the per-step median KDE bandwidth approximates no fixed continuum; "
                         "set kde_bandwidth")
    out = {"kernel": params.kernel, "sigma": params.sigma, "lam": params.lam}
    if params.extra.get("kde_bandwidth") is not None:
        out["kde_bandwidth"] = params.extra["kde_bandwidth"]
    return "lambda-stein", out


DECLARE = {
    "svgd": MethodDecl(
        name="svgd", summary="Stein variational gradient descent (Liu & Wang 2016)", keys=_STEIN_KEYS,
        uses=("n_particles", "sigma", "kernel", "dt", "seed"), continuum=_stein_continuum,
        refuse=refuse_unless_transport("svgd"),
        defaults={"integrator": "euler", "median": True, "rtol": 1e-12, "atol": 1e-12}),
    "lambda-stein": MethodDecl(
        name="lambda-stein", summary="regularized SVGD (R-SVGD, ZM (4.7)) with a KDE score",
        keys={**_STEIN_KEYS, "kde_bandwidth": key(float, lambda v: v > 0 and math.isfinite(v), "a positive number")},
        uses=("n_particles", "lam", "sigma", "kernel", "dt", "seed", "xi"), continuum=_lambda_stein_continuum,
        refuse=refuse_unless_transport("lambda-stein"), fixed_for_verify=("kde_bandwidth",),
        defaults={"integrator": "euler", "median": True, "rtol": 1e-12, "atol": 1e-12,
                  "kde_bandwidth": "median heuristic of the current particles"}),
}
