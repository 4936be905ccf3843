"""SMC-WFR: sequential Monte Carlo for the WFR flow (after Crucinio–Pathiraja, arXiv 2506.05905;
MATH §5.5) — method ``smc-wfr``.

Continuum PDE approximated
--------------------------
The spherical Wasserstein–Fisher–Rao flow of KL(ρ|π) on the probability measures (MATH §2.1,
§5.5), with the weights α > 0, β ≥ 0 of ``problem.flow``:

    ∂_t ρ = α ∇·(ρ ∇ log(ρ/π)) − β ρ (ξ − ⟨ξ⟩_ρ),     ξ = log(ρ/π),
    no-flux boundary condition ρ ∂_n log(ρ/π) = 0 on ∂Ω,

by Lie splitting into the Wasserstein part (Fokker–Planck for a time αh, done by a Markov move)
and the Fisher–Rao part, whose exact solution over a step h is ρ ← ρ^a π^{1−a} / Z with
a = e^{−βh} (MATH §3.1), done by importance reweighting.  For an unbalanced (M+, "HK") flow the
same step without the normalization (ρ ← ρ^a π^{1−a}, π with its mass) is applied to unnormalized
weights, so the total weight follows the mass.  α = 0 is rejected: without a move there is no
transition density to estimate ρ with (use a fixed-particle FR method instead).

Algorithm, per step h (the steps are shortened uniformly so that every snapshot time of
``problem.snapshot_times()`` is hit exactly); particles x_j with weights W_j:

1. Move (``extra["move"]``):

   * ``"ula"`` (default): y_j = x_j + αh ∇log π(x_j) + √(2αh) ζ_j;
   * ``"mala"``: the ULA proposal followed by a Metropolis–Hastings accept/reject step targeting
     π restricted to Ω, with the (reflected) proposal density in the ratio; the acceptance rate
     is recorded per step and on average.

   Points that leave the box Ω are mirrored back with
   :func:`pdeflow.approx.particles.reflect` — the particle counterpart of the no-flux boundary
   condition (MATH §6 (d) 4).  The transition density of the reflected ULA move is the sum of
   the Gaussian over the mirror images of the point; the two nearest images (one per face) are
   kept per coordinate (the farther ones weigh less than exp(−W²/(4αh)) for a box of width W),
   and in the mixture below only where they come within IMAGE_CUTOFF standard deviations of a
   mean, i.e. for points near a face.
2. Reweight by the exact FR-substep ratio
       w_i ∝ W_i (π(y_i)/ρ̂(y_i))^{1−e^{−βh}},     ρ̂(y) = Σ_j W_j M_h(x_j, y),
   ρ̂ the mixture of the (reflected) Gaussian ULA transition densities from the previous
   positions: the density of the moved particle cloud, with no bandwidth to choose.  With MALA
   the proposal density stands in for the MALA kernel (which has an atom at rejection), an
   approximation of the order of the rejection rate.  ρ̂ is evaluated in chunks of rows, so
   memory is O(N·chunk); the mixture sum and the weight normalization are done in log form with
   log-sum-exp for stability (no underflow of far-out particles).
3. Resample (``extra["resampling"]``: "systematic" (default) or "multinomial") when the
   effective sample size ESS = 1/ΣW² (normalized weights) falls below
   ``extra["ess_threshold"]``·N (default 0.5).

This concrete form (proposal-mixture density estimate, incremental weight, resampling schedule)
is reconstructed [R] from the abstract and table of contents of the paper (MATH §5.5, §7 item 3),
not read from its Algorithm 1.  Expected errors: O(N^{-1/2}) for expectations, O(h) from the Lie
splitting and ULA (MALA removes the ULA bias of the Wasserstein part at stationarity).  Like a
KDE's self term, the particle's own term W_i M_h(x_i, y_i) in ρ̂(y_i) biases ρ̂ upwards by
O(1/(N (αh)^{d/2})) relative to ρ where ρ is small; summed over the 1/h steps of weight
1 − e^{−βh} ≈ βh this stays bounded only if N (αh)^{d/2} is large, so h must not go to 0 at
fixed N (in 1-D, N = 2000: h = 0.02 is fine, h = 0.005 already lowers the variance at T = 1 by
about 0.02 on wfr-kl-gauss-1d).

Parameters (:class:`~pdeflow.approx.methods.MethodParams`): ``n_particles`` N, ``dt`` h,
``seed`` (the only source of randomness: ``np.random.default_rng(seed)``; a seed reproduces a run
exactly), ``extra`` as above.  ``lam``, ``sigma``, ``kernel`` and ``xi`` are not used.

Diagnostics: ``steps`` has one entry per time step (t, h, ESS after reweighting, resampled or
not, MALA acceptance rate); ``info`` has the number of resamplings, the minimum ESS, the mean
acceptance rate (MALA) and the move.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ...problem import Problem
from ..particles import ParticleTrajectory, reflect, sample_initial
from . import MethodParams
from .birth_death import (
    ess,
    ess_threshold,
    grad_log_target,
    log_gauss_mixture,
    log_target,
    normalize_log,
    resample,
    step_schedule,
)

MOVES = ("ula", "mala")
# Mirror images of y farther than IMAGE_CUTOFF standard deviations from every mean are dropped:
# each weighs < e^{-72} of a Gaussian's peak, against a particle's own term ≥ ~e^{-18} of it.
IMAGE_CUTOFF = 12.0


def _log_gauss1d_reflected(y: np.ndarray, mu: np.ndarray, var: float, lo: float, hi: float) -> np.ndarray:
    """log of the reflected 1-D Gaussian density on [lo, hi] with mean μ and variance var at y
    (arrays of the same shape): images y, 2lo − y and 2hi − y."""
    terms = np.stack([y - mu, 2 * lo - y - mu, 2 * hi - y - mu]) ** 2 * (-0.5 / var)
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).sum(axis=0)) - 0.5 * math.log(2 * math.pi * var)


def log_transition(problem: Problem, y: np.ndarray, mu: np.ndarray, var: float) -> np.ndarray:
    """log M_h(x_i → y_i) per particle, M_h the reflected Gaussian with mean μ = x + αh∇log π(x)
    and variance var = 2αh per coordinate; y, mu of shape (N, d)."""
    lo, hi = problem.domain.lower, problem.domain.upper
    out = np.zeros(y.shape[0])
    for k in range(y.shape[1]):
        out += _log_gauss1d_reflected(y[:, k], mu[:, k], var, lo[k], hi[k])
    return out


def log_mixture(problem: Problem, y: np.ndarray, mu: np.ndarray, logW: np.ndarray, var: float) -> np.ndarray:
    """log ρ̂(y_i) = log Σ_j W_j M_h(x_j, y_i), M_h the reflected Gaussian transition density.

    M_h(x, y) = Σ_{images ỹ of y} N(ỹ; μ(x), var·I), the images of y taken coordinate by
    coordinate (y_k, 2lo_k − y_k, 2hi_k − y_k).  So ρ̂ is the plain Gaussian mixture evaluated at
    y and at those images of y that come within IMAGE_CUTOFF standard deviations of the range of
    the means (only points near a face), combined by log-sum-exp.  Row chunks: memory O(N·chunk).
    """
    n, d = y.shape
    sd = math.sqrt(var)
    sig = np.full(d, sd)
    out = log_gauss_mixture(y, mu, logW, sig)
    lo, hi = np.array(problem.domain.lower), np.array(problem.domain.upper)
    reach = IMAGE_CUTOFF * sd
    # per coordinate: the images of y in the faces lo and hi, and the rows where they can matter
    img_lo, img_hi = 2 * lo[None, :] - y, 2 * hi[None, :] - y
    need_lo = img_lo > mu.min(axis=0)[None, :] - reach
    need_hi = img_hi < mu.max(axis=0)[None, :] + reach
    for pattern in itertools.product((0, 1, 2), repeat=d):
        if not any(pattern):
            continue
        rows = np.ones(n, dtype=bool)
        pts = y.copy()
        for k, choice in enumerate(pattern):
            if choice == 1:
                rows &= need_lo[:, k]
                pts[:, k] = img_lo[:, k]
            elif choice == 2:
                rows &= need_hi[:, k]
                pts[:, k] = img_hi[:, k]
        if rows.any():
            # the images only add to the unreflected mixture: accurate relative to the sum
            out[rows] = log_gauss_mixture(pts[rows], mu, logW, sig, add_to=out[rows])
    return out


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    flow = problem.flow
    alpha, beta = flow.alpha, flow.beta
    if alpha <= 0:
        raise ValueError(
            f"{method}: SMC-WFR needs alpha > 0 (the move's transition density is the density estimate); "
            f"case {problem.name!r} has alpha = 0"
        )
    if not problem.domain.is_box:
        raise ValueError(
            f"{method}: the reflected-Gaussian transition density is implemented for boxes only; "
            f"case {problem.name!r} is on the mesh domain {problem.domain.mesh!r}"
        )
    move = params.extra.get("move", "ula")
    if move not in MOVES:
        raise ValueError(f"{method}: unknown move {move!r}; choose from {', '.join(MOVES)}")
    threshold = ess_threshold(params, method)
    scheme = params.extra.get("resampling", "systematic")

    rng = np.random.default_rng(params.seed)
    N = params.n_particles
    x, w0 = sample_initial(problem, N, rng)
    mass = float(w0.sum())  # total weight; changes in time only for unbalanced flows
    W = np.full(N, 1.0 / N)
    logW = np.log(W)
    grad = grad_log_target(problem)
    logpi_x = log_target(problem, x)

    times = problem.snapshot_times()
    xs, ws = [x.copy()], [mass * W]
    steps = []
    n_resample, ess_min, acc_sum = 0, float(N), 0.0

    for t, h, snap in step_schedule(times, params.dt):
        var = 2.0 * alpha * h
        mu = x + alpha * h * grad(x)
        y = reflect(problem.domain, mu + math.sqrt(var) * rng.standard_normal(x.shape))
        logpi_y = log_target(problem, y)
        record = {"t": t, "h": h}
        if move == "mala":
            mu_back = y + alpha * h * grad(y)
            log_ratio = (
                logpi_y - logpi_x + log_transition(problem, x, mu_back, var) - log_transition(problem, y, mu, var)
            )
            accept = np.log(rng.random(N)) < log_ratio
            y = np.where(accept[:, None], y, x)
            logpi_y = np.where(accept, logpi_y, logpi_x)
            rate = float(accept.mean())
            acc_sum += rate
            record["acceptance"] = rate
        a = -math.expm1(-beta * h)  # 1 − e^{−βh}
        if a > 0:
            log_rho = log_mixture(problem, y, mu, logW, var) + math.log(mass)
            logw = logW + math.log(mass) + a * (logpi_y - log_rho)
            if not flow.spherical:
                top = logw.max()
                mass = float(math.exp(top) * np.exp(logw - top).sum())
            W, logW = normalize_log(logw)
        x, logpi_x = y, logpi_y
        e = ess(W)
        ess_min = min(ess_min, e)
        record["ess"] = e
        resampled = e < threshold * N
        if resampled:
            idx = resample(W, rng, scheme)
            x, logpi_x = x[idx], logpi_x[idx]
            W = np.full(N, 1.0 / N)
            logW = np.log(W)
            n_resample += 1
        record["resampled"] = bool(resampled)
        steps.append(record)
        if snap is not None:
            xs.append(x.copy())
            ws.append(mass * W)

    info = {
        "move": move,
        "alpha": alpha,
        "beta": beta,
        "spherical": flow.spherical,
        "n_steps": len(steps),
        "n_resample": n_resample,
        "ess_min": ess_min,
        "ess_threshold": threshold,
        "resampling": scheme,
    }
    if move == "mala":
        info["acceptance_rate"] = acc_sum / max(1, len(steps))
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
from .birth_death import RESAMPLING_KEYS  # noqa: E402


def _refuse(problem, params):
    if not problem.flow.alpha > 0:
        return f"smc-wfr needs alpha > 0 (the move's transition density is the density estimate); case {problem.name!r} has alpha = 0"
    if not problem.domain.is_box:
        return (f"smc-wfr: the reflected-Gaussian transition density is implemented for boxes only; case "
                f"{problem.name!r} is on the mesh domain {problem.domain.mesh!r}")
    return None


DECLARE = {
    "smc-wfr": MethodDecl(
        name="smc-wfr", summary="sequential Monte Carlo for the WFR flow (after Crucinio-Pathiraja)",
        keys={
            "move": key(str, lambda v: v in MOVES, "ula or mala"),
            **RESAMPLING_KEYS,
        },
        uses=("n_particles", "dt", "seed"),
        continuum=lambda problem, params: ("lie-split", {"h": params.dt, "move": params.extra.get("move", "ula")}),
        refuse=_refuse, dt_in_continuum=True,
        defaults={"move": "ula", "ess_threshold": 0.5, "resampling": "systematic"}),
}
