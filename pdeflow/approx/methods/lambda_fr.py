"""λ-FRk: kernel-approximate Fisher–Rao flow on fixed particles with evolving weights — method ``lambda-fr``
(ZM Prop. 3.3; MATH §2.3 (b), §5.3 item 4).

Continuum PDE (β = ``problem.flow.beta``; the transport weight α of the case is not used):

    ∂_t ρ = −β ρ (r − c),   r = (K_ρ + λ)⁻¹ K_ρ ξ,   ξ = log(ρ/π),
    c = ⟨r⟩_ρ on P (``problem.flow.spherical``), c = 0 on M+.

r is the kernel-ridge regression of the first variation ξ on ρ; λ = 0 gives the Fisher–Rao flow
itself (r = ξ), with the closed form ρ_t ∝ ρ0^a π^(1−a), a = e^{−βt} (MATH §3.1).

Particle system: x_i fixed, i.i.d. from ρ0|_Ω (``particles.sample_initial`` with
``np.random.default_rng(params.seed)``), μ = Σ_i w_i δ_{x_i}, w_i(0) = M0/N with M0 = ∫_Ω ρ0, and

    ẇ = −β w∘(r − c),   r = 𝖪𝖶(𝖪𝖶 + λI)⁻¹ ξ̂  (:func:`pdeflow.approx.krr.krr`),   c = Σ_j w_j r_j / Σ_j w_j or 0.

First-variation estimates ξ̂ (``params.xi``):

* ``a`` importance sampling: ξ̂_i = log(w_i/w_i(0)) + log(ρ0/π)(x_i) — the exact log ratio of the
  density represented by μ (see :func:`_xi_importance`).  The energy estimate is
  F̂(w) = Σ_i w_i ξ̂_i − Σ_i w_i + ∫_Ω π, whose gradient in w is exactly ξ̂ (KL of E1).
* ``b`` KDE plug-in (Lu–Lu–Nolen type): ξ̂_i = log((K_σ*μ)(x_i)/π(x_i)), K_σ the normalized
  Gaussian heat kernel.  Not the gradient of an energy: no energy is recorded.
* ``c`` blob (Lu–Slepčev–Wang type): ξ̂_i = log((K_σ*μ)(x_i)/π(x_i)) + Σ_j w_j K_σ(x_i−x_j)/(K_σ*μ)(x_j) − 1,
  the exact gradient of E_σ(w) = Σ_i w_i log((K_σ*μ)(x_i)/π(x_i)) − Σ_i w_i + ∫_Ω π (recorded as energy).
  MATH §5.3 item 3 writes it without the −1, which is invisible on P; the −1 makes E_σ the blob
  version of E1 (KL on M+), so that ξ̂ → log(ρ/π) as σ → 0 in the M+ case too.
* ``params.extra["initial"]``: given initial particles (x (N, d), w (N,)) instead of N i.i.d. draws
  from ρ0 — with the mesh vertices and w_i = m_i ρ0_i this is the mesh λ-FRk discretization.
* ``params.extra["xi_fn"]``: a callable (x (N, d), w (N,)) → ξ̂ (N,) overriding the above (e.g. the
  mesh first variation log(w_i/(m_i π_i)) when the "particles" are mesh vertices, MATH §5.3 item 4).

Parameters: ``n_particles`` N, ``lam`` λ ≥ 0, ``kernel`` and ``sigma`` (KRR kernel
``Kernel(kernel, σ)``; σ = None: median heuristic :func:`~pdeflow.approx.kernels.median_bandwidth`
of the fixed particles), ``extra["kde_bandwidth"]`` (KDE bandwidth for ξ̂ b/c; default: the same σ),
``dt``, ``seed``, ``xi``, ``extra["integrator"]``:

* ``"mirror"`` (default): w_i ← w_i exp(−βτ(r_i − c)), exact for frozen r, positive, first order;
  in the spherical case renormalized to the initial mass (MATH §5.3, "Common to all variants").
* ``"exact"``: only for λ = 0, ξ̂ = a: then u = log(w/w(0)) solves the linear ODE
  u̇ = −β(u + log(ρ0/π)) + (a constant in i), integrated exactly by the exponential integrator
  u ← e^{−βτ}u − (1 − e^{−βτ}) log(ρ0/π); it reproduces w_i ∝ (π/ρ0)^{1−e^{−βt}}(x_i) (MATH §3.1) to round-off.

The steps are shortened uniformly between snapshot times so that every time of
``problem.snapshot_times()`` is hit exactly.  Per step ``steps`` records t, τ, the mass, the KRR
dissipation Σ_i w_i ξ̂_i r_i (:func:`~pdeflow.approx.krr.krr_dissipation`, ≥ 0), the rate
β Σ_i w_i ξ̂_i (r_i − c) (= −dF̂/dt for ξ̂ = a or c) and the energy where defined.

This module also holds the helpers shared with :mod:`.stein` and :mod:`.lambda_wfr` (time grid,
bandwidths, KDE first variations, the mirror step).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ...problem import Problem, initial_density, integrate
from ..kernels import Kernel, median_bandwidth
from ..krr import DENSE_LIMIT, krr, krr_dissipation
from ..particles import ParticleTrajectory, sample_initial
from . import MethodParams

# Kernels whose formula has no length scale: their "bandwidth" is a dummy, recorded as None.
SCALE_FREE = ("bilinear", "energy")


# --- helpers shared by the particle methods of this family ---------------------------------------


def time_grid(times, dt: float):
    """[(k, n_steps, τ)] for the intervals (times[k-1], times[k]): uniform steps τ ≤ dt that land
    exactly on every snapshot time (the last step ends at t_k by construction, not by summation)."""
    out = []
    for k in range(1, len(times)):
        span = times[k] - times[k - 1]
        n = max(1, int(math.ceil(span / dt - 1e-9)))
        out.append((k, n, span / n))
    return out


def describe_params(params: MethodParams, **resolved) -> dict:
    """params.describe() made JSON-safe (callables in ``extra`` become their repr) plus the
    values actually used (bandwidths chosen by heuristics, integrator, ...)."""
    out = {k: (repr(v) if callable(v) else v) for k, v in params.describe().items()}
    out.update(resolved)
    return out


def kernel_bandwidth(params: MethodParams, x: np.ndarray, kernel: str = None):
    """σ for ``Kernel(kernel, σ)``: params.sigma, else the median heuristic at x; None (and the
    dummy 1.0 for the Kernel object) for the scale-free kernels."""
    kernel = params.kernel if kernel is None else kernel
    if kernel in SCALE_FREE:
        return None
    return float(params.sigma) if params.sigma is not None else median_bandwidth(x)


def log_heat_normalizer(h: float, d: int) -> float:
    """log of (2πh²)^{-d/2}, the factor turning exp(−|z|²/(2h²)) into the heat kernel K_h."""
    return -0.5 * d * math.log(2 * math.pi * h * h)


def kde_first_variation(kind: str, x: np.ndarray, w: np.ndarray, h: float, log_pi: np.ndarray,
                        grad_log_pi: np.ndarray = None):
    """ξ̂ at the particles from the weighted KDE K_h*μ (kind 'b') or the blob first variation
    (kind 'c'), see the module docstring; with ``grad_log_pi`` (N, d) also ∇ξ̂ (N, d).

    Returns (ξ̂, ∇ξ̂ or None, log (K_h*μ)(x_i)).  The self term w_i K_h(0) keeps K_h*μ > 0 at the
    particles, so the logarithm is always finite."""
    g = Kernel("gaussian", h)
    s = g.apply(x, x, w)
    log_kde = np.log(s) + log_heat_normalizer(h, x.shape[1])
    xi = log_kde - log_pi
    if kind == "c":
        # w_j K_h(x_i − x_j)/(K_h*μ)(x_j): the normalization of K_h cancels in the ratio.
        q = w / s
        xi = xi + g.apply(x, x, q) - 1.0
    elif kind != "b":
        raise ValueError(f"KDE first variation of kind {kind!r}: expected 'b' or 'c'")
    if grad_log_pi is None:
        return xi, None, log_kde
    grad = g.apply_grad1(x, x, w) / s[:, None] - grad_log_pi
    if kind == "c":
        grad = grad + g.apply_grad1(x, x, q)
    return xi, grad, log_kde


def blob_energy(w: np.ndarray, log_kde: np.ndarray, log_pi: np.ndarray, pi_mass: float) -> float:
    """E_σ(w) = Σ w_i log((K_σ*μ)(x_i)/π(x_i)) − Σ w_i + ∫_Ω π, the energy whose gradient is ξ̂ (c)."""
    return float(np.dot(w, log_kde - log_pi) - w.sum() + pi_mass)


def reaction_shift(w: np.ndarray, r: np.ndarray, spherical: bool) -> float:
    """c = ⟨r⟩_w on P (the multiplier of the mass constraint), 0 on M+."""
    return float(np.dot(w, r) / w.sum()) if spherical else 0.0


def mirror_step(logw: np.ndarray, r: np.ndarray, beta: float, tau: float, spherical: bool,
                log_mass0: float) -> np.ndarray:
    """log w ← log w − βτ(r − c): the exponential step, exact for frozen r and positive by
    construction.  Spherical: renormalized to the initial mass M0 rather than to the previous one,
    which is the same in exact arithmetic but cannot drift by round-off over many steps."""
    w = np.exp(logw)
    logw = logw - beta * tau * (r - reaction_shift(w, r, spherical))
    if spherical:
        logw = logw + (log_mass0 - _logsumexp(logw))
    return logw


def _logsumexp(a: np.ndarray) -> float:
    top = float(a.max())
    return top + math.log(float(np.exp(a - top).sum()))


def grad_log_target(problem: Problem):
    """x (N, d) → ∇log π(x) (N, d), from the target's analytic ``grad_log_density``."""
    fn = getattr(problem.target, "grad_log_density", None)
    if not callable(fn):
        raise ValueError(
            f"case {problem.name!r}: the target ({problem.target.describe()['type']}) has no analytic "
            "grad_log_density, which score-based particle methods need")
    return lambda x: np.asarray(fn(x.T), dtype=float).T


# --- λ-FRk ----------------------------------------------------------------------------------------


def _xi_importance(logw, logw0, log_ratio0):
    """ξ̂_i = log(w_i/w_i(0)) + log(ρ0/π)(x_i).

    With x_i i.i.d. from ρ0|_Ω and w_i(0) = M0/N, μ_t = Σ w_i δ_{x_i} represents (in the sense of
    importance sampling) the density ρ̂_t with ρ̂_t(x_i) = (w_i/w_i(0)) ρ0(x_i); so ξ̂_i is exactly
    log(ρ̂_t/π)(x_i) — the same as log(N w_i ρ0(x_i)/(M0 π(x_i))) (MATH §5.3 item 1), now without any
    constant, which matters on M+ where ξ̂ is not mean-subtracted."""
    return (logw - logw0) + log_ratio0


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    if method != "lambda-fr":
        raise ValueError(f"lambda_fr runs method 'lambda-fr', not {method!r}")
    flow = problem.flow
    if not flow.beta > 0:
        raise ValueError(f"lambda-fr needs a reaction weight beta > 0; case {problem.name!r} has beta = {flow.beta}")
    beta, spherical, lam = flow.beta, flow.spherical, float(params.lam)
    integrator = params.extra.get("integrator", "mirror")
    xi_fn = params.extra.get("xi_fn")
    if integrator not in ("mirror", "exact"):
        raise ValueError(f"lambda-fr integrator must be 'mirror' or 'exact', got {integrator!r}")
    if integrator == "exact" and (lam != 0 or params.xi != "a" or xi_fn is not None):
        raise ValueError("the 'exact' integrator needs lam = 0 and xi = 'a' (no xi_fn): only then is the "
                         "ODE for log w linear")
    if xi_fn is not None and not callable(xi_fn):
        raise ValueError("extra['xi_fn'] must be a callable (x, w) -> xi")

    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    initial = params.extra.get("initial")
    if initial is None:
        x, w = sample_initial(problem, params.n_particles, rng)
    else:  # given particles, e.g. the mesh vertices with w_i = m_i ρ0_i (particle = mesh test)
        x, w = np.asarray(initial[0], float), np.asarray(initial[1], float)
        if x.ndim != 2 or w.shape != (x.shape[0],) or np.any(w <= 0):
            raise ValueError("extra['initial'] must be (x of shape (N, d), positive w of shape (N,))")
    logw0 = np.log(w)
    log_mass0 = math.log(w.sum())
    log_pi = np.asarray(problem.target.log_density(x.T), float)
    log_ratio0 = np.asarray(initial_density(problem).log_density(x.T), float) - log_pi
    pi_mass = integrate(problem.target, problem.domain)

    # Fixed particles: the median heuristic is computed once, from the points that never move.
    kind = "fn" if xi_fn is not None else params.xi
    bandwidth = kernel_bandwidth(params, x) if lam > 0 else None
    kernel = Kernel(params.kernel, bandwidth if bandwidth is not None else 1.0) if lam > 0 else None
    kde_bw = None
    if kind in ("b", "c"):
        kde_bw = params.extra.get("kde_bandwidth")
        if kde_bw is None:
            kde_bw = float(params.sigma) if params.sigma is not None else median_bandwidth(x)
        kde_bw = float(kde_bw)

    def first_variation(logw):
        """(ξ̂, energy estimate or None)."""
        w = np.exp(logw)
        if kind == "fn":
            xi = np.asarray(xi_fn(x, w), dtype=float).reshape(-1)
            if xi.shape != w.shape:
                raise ValueError(f"xi_fn returned shape {xi.shape}, expected {w.shape}")
            return xi, None
        if kind == "a":
            xi = _xi_importance(logw, logw0, log_ratio0)
            return xi, float(np.dot(w, xi) - w.sum() + pi_mass)
        xi, _, log_kde = kde_first_variation(kind, x, w, kde_bw, log_pi)
        return xi, (blob_energy(w, log_kde, log_pi, pi_mass) if kind == "c" else None)

    # The particles never move, so the Gram matrix is built once (dense path of krr only).
    gram = kernel.gram(x, x) if (lam > 0 and x.shape[0] <= DENSE_LIMIT) else None

    solve_info = {}

    def regress(w, xi):
        return krr(kernel, x, w, xi, lam, gram=gram, info=solve_info) if lam > 0 else xi

    times = problem.snapshot_times()
    logw = logw0.copy()
    W = [np.exp(logw)]
    energies = [first_variation(logw)[1]]
    steps = []
    t = times[0]
    for k, n, tau in time_grid(times, params.dt):
        decay = math.exp(-beta * tau)
        for s in range(n):
            w = np.exp(logw)
            xi, energy = first_variation(logw)
            r = regress(w, xi)
            c = reaction_shift(w, r, spherical)
            steps.append({
                "t": t, "tau": tau, "mass": float(w.sum()),
                "dissipation": krr_dissipation(w, xi, r),
                "rate": float(beta * np.dot(w, xi * (r - c))),
                "energy": energy,
            })
            if solve_info.get("solver") != "cholesky" and solve_info.get("iterations"):
                # above DENSE_LIMIT particles: the preconditioned CG of krr, its iterations per step
                steps[-1]["krr_iterations"] = int(sum(solve_info["iterations"]))
            if integrator == "exact":
                # u = log(w/w(0)) obeys u̇ = −β(u + log(ρ0/π)) + βc(t); the variation-of-constants
                # step below is exact, and c(t) only shifts u uniformly, which the spherical
                # renormalization removes exactly.
                u = decay * (logw - logw0) + math.expm1(-beta * tau) * log_ratio0
                logw = logw0 + u
                if spherical:
                    logw = logw + (log_mass0 - _logsumexp(logw))
            else:
                logw = mirror_step(logw, r, beta, tau, spherical, log_mass0)
            t = times[k] if s == n - 1 else t + tau
        W.append(np.exp(logw))
        energies.append(first_variation(logw)[1])

    energy = None if any(e is None for e in energies) else np.array(energies)
    xi_label = {"a": "importance sampling log(w/w0) + log(rho0/pi)", "b": "KDE plug-in log(K*mu/pi)",
                "c": "blob first variation", "fn": "extra['xi_fn']"}[kind]
    resolved = {"bandwidth": bandwidth, "kde_bandwidth": kde_bw, "integrator": integrator}
    info = {
        **resolved,
        "continuum": "d_t rho = -beta rho (r - c), r = (K_rho + lam)^-1 K_rho log(rho/pi) (MATH 2.3 (b), 5.3 item 4)",
        "xi": xi_label,
        "beta": beta,
        "spherical": spherical,
        "alpha_ignored": flow.alpha,
        "n_steps": len(steps),
        "energy": {"a": "importance-sampling KL estimate (E1)", "c": "blob energy E_sigma (E1 form)"}.get(kind),
        "wall_s": time.perf_counter() - started,
    }
    return ParticleTrajectory(
        method=method,
        params=describe_params(params, **resolved),
        times=np.array(times),
        x=np.repeat(x[None], len(times), axis=0),
        w=np.array(W),
        steps=steps,
        info=info,
        energy=energy,
    )


# --- declarations (pdeflow.approx.methods registry) ------------------------------------------------
from . import MethodDecl, key, refuse_unless_reaction  # noqa: E402


def _lambda_fr_continuum(problem, params):
    if params.xi != "a":
        raise ValueError(f"lambda-fr with xi = {params.xi!r} (KDE first variation) has no mesh continuum yet; "
                         "use xi = 'a' or give --continuum")
    return "lambda-fr", {"kernel": params.kernel, "sigma": params.sigma, "lam": params.lam}


DECLARE = {
    "lambda-fr": MethodDecl(
        name="lambda-fr", summary="kernel-approximate Fisher-Rao flow on fixed particles (ZM Prop. 3.3)",
        keys={
            "integrator": key(str, lambda v: v in ("mirror", "exact"), "mirror or exact"),
            "kde_bandwidth": key(float, lambda v: v > 0 and math.isfinite(v), "a positive number"),
        },
        uses=("n_particles", "lam", "sigma", "kernel", "dt", "seed", "xi"), continuum=_lambda_fr_continuum,
        refuse=refuse_unless_reaction("lambda-fr"),
        defaults={"integrator": "mirror", "kde_bandwidth": "sigma"}),
}
