"""Kernel birth–death with Langevin moves (Lu–Lu–Nolen 2019; MATH §5.5) — method ``birth-death``.

Continuum PDE approximated
--------------------------
The spherical Wasserstein–Fisher–Rao flow of KL(ρ|π) on the probability measures (MATH §2.1,
§5.5), with the weights α, β of ``problem.flow``:

    ∂_t ρ = α ∇·(ρ ∇ log(ρ/π)) − β ρ (ξ − ⟨ξ⟩_ρ),     ξ = log(ρ/π),
    no-flux boundary condition ρ ∂_n log(ρ/π) = 0 on ∂Ω.

More precisely, because ξ is replaced by the kernel-density plug-in ξ̂ = log((K_σ*μ)/π)
(MATH §5.3 item 2), the particle system approximates at fixed σ the flow in which the reaction
term uses log((K_σ*ρ)/π): a KDE-smoothed energy, with a bias O(σ²) against the flow above
(from K_σ*ρ = ρ + σ²Δρ/2 + O(σ⁴)).  At finite N the KDE's self term W_i K_σ(0) (j = i is
included, as in Lu–Lu–Nolen) adds a bias O(1/(Nσ^d)): its mean-field limit is
ξ = log(K_σ*ρ + (K_σ(0)/N) ρ/ρ̃) − log π, ρ̃ the density the particle positions are drawn from
(ρ0 when α = 0); in 1-D with N = 2000, σ = 0.25 it is as large as the O(σ²) bias (see
tests/unit/test_approx_stochastic.py).  Then the KDE variance O((Nσ^d)⁻¹), the Monte Carlo
error O(N^{-1/2}) and the time-step error O(Δt) of the Lie splitting and of ULA.  Near ∂Ω the
truncated KDE loses mass in a layer of width σ (MATH §6 (b)); the test cases keep the target
about 6 standard deviations inside Ω.  Unbalanced (M+, "HK") flows are rejected: the method
keeps N particles of equal (or normalized) weight, so it conserves mass.

Algorithm, per step Δt (the steps are shortened uniformly so that every snapshot time of
``problem.snapshot_times()`` is hit exactly):

1. Langevin (ULA) move, skipped when α = 0:
   x ← x + αΔt ∇log π(x) + √(2αΔt) ζ,  ζ ~ N(0, I); points that leave the box Ω are mirrored
   back with :func:`pdeflow.approx.particles.reflect` — the particle counterpart of the no-flux
   boundary condition (MATH §6 (d) 4).
2. Birth–death with rate β Λ_i, Λ_i = ξ̂_i − mean(ξ̂) (skipped when β = 0), where
   ξ̂_i = log((K_σ*μ)(x_i)/π(x_i)) with the normalized Gaussian kernel K_σ (diagonal bandwidth).
   Two variants, ``params.extra["variant"]``:

   * ``"stochastic"`` (default, Lu–Lu–Nolen): for each i, if Λ_i > 0 particle i is killed with
     probability 1 − exp(−βΛ_iΔt) and a uniformly chosen other particle is duplicated; if
     Λ_i < 0 particle i is duplicated with probability 1 − exp(βΛ_iΔt) and a uniformly chosen
     other particle is killed.  The fired events are applied in a random order, so N stays
     fixed; the weights stay equal.  Λ is frozen during a step.
   * ``"weighted"``: positions only move by ULA; the weights follow the exponential (mirror)
     step w ← w exp(−βΔt(ξ̂ − Σ_j w_j ξ̂_j)), renormalized, and the particles are resampled
     (``extra["resampling"]``: "systematic" (default) or "multinomial") whenever the effective
     sample size ESS = 1/Σw² (normalized weights) falls below ``extra["ess_threshold"]``·N
     (default 0.5).

Parameters (:class:`~pdeflow.approx.methods.MethodParams`): ``n_particles`` N, ``dt`` Δt,
``seed`` (the only source of randomness: ``np.random.default_rng(seed)``; a seed reproduces a run
exactly), ``sigma`` (KDE bandwidth, isotropic); when ``sigma`` is None the bandwidth is fixed once
from the initial particles by the rule ``extra["bandwidth_rule"]``:

* ``"silverman"`` (default): σ_k = (4/(d+2))^{1/(d+4)} std_k N^{−1/(d+4)} per coordinate
  (= 1.06 std N^{−1/5} in 1-D);
* ``"median"``: the median heuristic of :func:`pdeflow.approx.kernels.median_bandwidth`.

The σ actually used is recorded in ``info["sigma"]``.  ``lam``, ``kernel`` and ``xi`` are not
used (the plug-in is always the KDE one, MATH §5.3 item 2).

Diagnostics: ``steps`` has one entry per time step (t, h, ESS, number of kill/birth events,
resampled or not); ``info`` has the totals (``kill_events``, ``birth_events``, ``killed``,
``duplicated``, ``n_resample``), the minimum ESS and the bandwidth.
"""
from __future__ import annotations

import math

import numpy as np

from ...problem import Problem
from .. import sums
from ..kernels import Kernel, median_bandwidth
from ..particles import ParticleTrajectory, reflect, sample_initial
from . import MethodParams
from .lambda_fr import grad_log_target as analytic_grad_log_target
from .lambda_fr import time_grid

UNIT_GAUSSIAN = Kernel("gaussian", 1.0)

ROW_BUDGET = 1 << 18  # entries of one (chunk × N) block: memory O(N·chunk), 2 MB of float64 (cache-friendly)

# --- helpers shared with smc_wfr ---------------------------------------------------------------


def log_target(problem: Problem, x: np.ndarray) -> np.ndarray:
    """log π at points x of shape (N, d)."""
    return np.asarray(problem.target.log_density(x.T), dtype=float)


def grad_log_target(problem: Problem):
    """A callable x (N, d) → ∇log π(x) (N, d): the target's analytic ``grad_log_density``
    (:func:`.lambda_fr.grad_log_target`), else central finite differences of ``log_density``
    (step 1e-5 · (1 + |x|)) — e.g. the manufactured-solution target, which has no gradient method."""
    target = problem.target
    if callable(getattr(target, "grad_log_density", None)):
        return analytic_grad_log_target(problem)

    def finite_differences(x):
        g = np.empty_like(x)
        for k in range(x.shape[1]):
            e = np.zeros(x.shape[1])
            step = 1e-5 * (1.0 + np.abs(x[:, k]))
            e[k] = 1.0
            xp, xm = x + step[:, None] * e, x - step[:, None] * e
            g[:, k] = (target.log_density(xp.T) - target.log_density(xm.T)) / (2 * step)
        return g

    return finite_differences


def step_schedule(times, dt: float):
    """Yield (t_end, h, snapshot_index or None) over the step grid of :func:`.lambda_fr.time_grid`
    (uniform steps h ≤ dt within each snapshot interval, landing exactly on every snapshot)."""
    for k, n, h in time_grid(times, dt):
        t0, t1 = times[k - 1], times[k]
        for s in range(1, n + 1):
            yield (t1 if s == n else t0 + s * h), h, (k if s == n else None)


def ess(W: np.ndarray) -> float:
    """Effective sample size 1/Σ W_i² of normalized weights."""
    return float(1.0 / np.sum(W * W))


def ess_threshold(params: MethodParams, method: str) -> float:
    """``extra["ess_threshold"]`` (default 0.5), checked to lie in (0, 1]."""
    value = float(params.extra.get("ess_threshold", 0.5))
    if not 0 < value <= 1:
        raise ValueError(f"{method}: ess_threshold must lie in (0, 1], got {value!r}")
    return value


def normalize_log(logw: np.ndarray):
    """(normalized weights, normalized log weights) from log weights, by log-sum-exp."""
    top = logw.max()
    lse = top + math.log(np.exp(logw - top).sum())
    logW = logw - lse
    return np.exp(logW), logW


def resample(W: np.ndarray, rng: np.random.Generator, scheme: str = "systematic") -> np.ndarray:
    """Ancestor indices (N,) drawn from normalized weights W: systematic or multinomial."""
    n = W.size
    cdf = np.cumsum(W)
    cdf[-1] = 1.0
    if scheme == "systematic":
        u = (rng.random() + np.arange(n)) / n
    elif scheme == "multinomial":
        u = np.sort(rng.random(n))
    else:
        raise ValueError(f"unknown resampling scheme {scheme!r}; choose 'systematic' or 'multinomial'")
    return np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)


def ula_move(problem: Problem, grad, x: np.ndarray, alpha: float, h: float, rng: np.random.Generator):
    """x + αh∇log π(x) + √(2αh) ζ, reflected into Ω."""
    y = x + alpha * h * grad(x) + math.sqrt(2.0 * alpha * h) * rng.standard_normal(x.shape)
    return reflect(problem.domain, y)


def row_chunk(n_cols: int, factor: int = 1) -> int:
    return max(1, ROW_BUDGET // max(1, n_cols * factor))


# --- the KDE plug-in ---------------------------------------------------------------------------


def log_gauss_mixture(y: np.ndarray, centers: np.ndarray, logW: np.ndarray, sigma: np.ndarray,
                      add_to: np.ndarray = None) -> np.ndarray:
    """log Σ_j W_j N(y_i; c_j, diag(σ²)) for points y (n, d), centers c (m, d), log weights (m,);
    with ``add_to`` (log values A_i), log(e^{A_i} + that sum), accurate relative to the total.

    In the scaled coordinates y/σ the sum is a Gaussian kernel sum of bandwidth 1: a fast one
    (NUFFT, :func:`pdeflow.approx.sums.log_sum_positive`, every row to relative accuracy 1e-7) when
    the kernel-sum back-end picks it, else, and for the rows that the fast sum cannot resolve, the
    exact log-sum-exp of :func:`log_gauss_mixture_exact`."""
    const = -np.log(sigma).sum() - 0.5 * y.shape[1] * math.log(2 * math.pi)
    if y.shape[0] == 0 or centers.shape[0] == 0:  # no targets; or no mass anywhere: log 0
        empty = np.full(y.shape[0], -np.inf)
        return empty if add_to is None else np.asarray(add_to, float) + 0.0 * empty

    def exact(rows):
        return log_gauss_mixture_exact(y[rows], centers, logW, sigma) - const

    shifted = None if add_to is None else np.asarray(add_to, float) - const
    return sums.log_sum_positive(UNIT_GAUSSIAN, y / sigma[None, :], centers / sigma[None, :], logW, exact,
                                 add_to=shifted) + const


def log_gauss_mixture_exact(y: np.ndarray, centers: np.ndarray, logW: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log Σ_j W_j N(y_i; c_j, diag(σ²)) by log-sum-exp in row chunks of y; one preallocated
    (chunk × m) buffer, so memory O(m·chunk)."""
    n, d = y.shape
    z, c = y / sigma[None, :], centers / sigma[None, :]
    const = -np.log(sigma).sum() - 0.5 * d * math.log(2 * math.pi)
    col = logW - 0.5 * (c * c).sum(1)  # log W_j − |c_j|²/2
    row = -0.5 * (z * z).sum(1)
    out = np.empty(n)
    step = min(n, row_chunk(c.shape[0]))
    buf = np.empty((step, c.shape[0]))
    for s in range(0, n, step):
        G = buf[: min(step, n - s)]
        np.matmul(z[s : s + step], c.T, out=G)  # z_i·c_j
        G += col[None, :]
        G += row[s : s + step, None]  # = log W_j − |z_i − c_j|²/2
        np.minimum(G, logW[None, :], out=G)  # |z_i − c_j|² ≥ 0 despite round-off
        top = G.max(axis=1)
        top = np.where(np.isfinite(top), top, 0.0)
        G -= top[:, None]
        np.exp(G, out=G)
        out[s : s + step] = top + np.log(G.sum(axis=1))
    return out + const


def kde_log(x: np.ndarray, W: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log (K_σ*μ)(x_i) for μ = Σ_j W_j δ_{x_j}, K_σ the normalized Gaussian with diagonal
    bandwidth σ (d,) — the self term j = i included."""
    with np.errstate(divide="ignore"):
        logW = np.log(W)
    return log_gauss_mixture(x, x, logW, sigma)


def choose_bandwidth(x: np.ndarray, W: np.ndarray, params: MethodParams):
    """(σ per coordinate (d,), rule name)."""
    n, d = x.shape
    if params.sigma is not None:
        return np.full(d, float(params.sigma)), "given"
    rule = params.extra.get("bandwidth_rule", "silverman")
    if rule == "silverman":
        mean = W @ x
        std = np.sqrt(np.maximum(W @ (x - mean) ** 2, 1e-300))
        factor = (4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (d + 4))
        return factor * std, rule
    if rule == "median":
        return np.full(d, median_bandwidth(x)), rule
    raise ValueError(f"unknown bandwidth rule {rule!r}; choose 'silverman' or 'median' (or set sigma)")


# --- the method --------------------------------------------------------------------------------

VARIANTS = ("stochastic", "weighted")


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    flow = problem.flow
    if not flow.spherical:
        raise ValueError(
            f"{method}: the birth-death method approximates the spherical (mass-conserving) WFR flow; "
            f"case {problem.name!r} has an unbalanced (M+) flow"
        )
    variant = params.extra.get("variant", "stochastic")
    if variant not in VARIANTS:
        raise ValueError(f"{method}: unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    threshold = ess_threshold(params, method)
    scheme = params.extra.get("resampling", "systematic")
    alpha, beta = flow.alpha, flow.beta

    rng = np.random.default_rng(params.seed)
    N = params.n_particles
    x, w0 = sample_initial(problem, N, rng)
    mass = float(w0.sum())
    W = np.full(N, 1.0 / N)
    logW = np.log(W)
    sigma, rule = choose_bandwidth(x, W, params)
    grad = grad_log_target(problem)

    times = problem.snapshot_times()
    xs, ws = [x.copy()], [mass * W]
    steps = []
    totals = {"kill_events": 0, "birth_events": 0, "n_resample": 0}
    ess_min = float(N)

    for t, h, snap in step_schedule(times, params.dt):
        if alpha > 0:
            x = ula_move(problem, grad, x, alpha, h, rng)
        record = {"t": t, "h": h}
        if beta > 0:
            xi = kde_log(x, W, sigma) - log_target(problem, x)
            if variant == "stochastic":
                lam = xi - xi.mean()
                prob = -np.expm1(-beta * h * np.abs(lam))
                fired = np.flatnonzero(rng.random(N) < prob)
                order = fired[rng.permutation(fired.size)]
                partners = rng.integers(N - 1, size=order.size)
                kills = 0
                for i, j in zip(order, partners):
                    j = j + (j >= i)  # uniformly among the other N − 1 particles
                    if lam[i] > 0:  # kill i, duplicate j
                        x[i] = x[j]
                        kills += 1
                    else:  # duplicate i, kill j
                        x[j] = x[i]
                births = order.size - kills
                totals["kill_events"] += kills
                totals["birth_events"] += births
                record.update(kill_events=kills, birth_events=births)
            else:
                logW = logW - beta * h * (xi - W @ xi)
                W, logW = normalize_log(logW)
                e = ess(W)
                ess_min = min(ess_min, e)
                record["ess"] = e
                resampled = e < threshold * N
                if resampled:
                    idx = resample(W, rng, scheme)
                    x = x[idx]
                    W = np.full(N, 1.0 / N)
                    logW = np.log(W)
                    totals["n_resample"] += 1
                record["resampled"] = bool(resampled)
        steps.append(record)
        if snap is not None:
            xs.append(x.copy())
            ws.append(mass * W)

    info = {
        "variant": variant,
        "sigma": [float(s) for s in sigma],
        "bandwidth_rule": rule,
        "alpha": alpha,
        "beta": beta,
        "n_steps": len(steps),
        "kill_events": totals["kill_events"],
        "birth_events": totals["birth_events"],
        # every event kills one particle and duplicates another
        "killed": totals["kill_events"] + totals["birth_events"],
        "duplicated": totals["kill_events"] + totals["birth_events"],
        "n_resample": totals["n_resample"],
    }
    if variant == "weighted":
        info.update(ess_threshold=threshold, resampling=scheme, ess_min=ess_min)
    return ParticleTrajectory(
        method=method,
        params=params.describe(),
        times=np.array(times, dtype=float),
        x=np.stack(xs),
        w=np.stack(ws),
        steps=steps,
        info=info,
    )


# --- declarations (pdeflow.approx.methods registry) ------------------------------------------------
from . import MethodDecl, key  # noqa: E402


def _refuse(problem, params):
    if not problem.flow.spherical:
        return (f"birth-death approximates the spherical (mass-conserving) WFR flow; case {problem.name!r} has an "
                f"unbalanced (M+) flow")
    return None


# the resampling keys, shared with smc-wfr (which resamples with the same helpers)
RESAMPLING_KEYS = {
    "ess_threshold": key(float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "resampling": key(str, lambda v: v in ("systematic", "multinomial"), "systematic or multinomial"),
}

DECLARE = {
    "birth-death": MethodDecl(
        name="birth-death", summary="kernel birth-death with Langevin moves (Lu-Lu-Nolen 2019)",
        keys={
            "variant": key(str, lambda v: v in VARIANTS, "stochastic or weighted"),
            "bandwidth_rule": key(str, lambda v: v in ("silverman", "median"), "silverman or median"),
            **RESAMPLING_KEYS,
        },
        uses=("n_particles", "sigma", "dt", "seed"),
        continuum=lambda problem, params: ("kde-wfr", {"sigma": params.sigma}), refuse=_refuse,
        defaults={"variant": "stochastic", "bandwidth_rule": "silverman", "ess_threshold": 0.5,
                  "resampling": "systematic"}),
}
