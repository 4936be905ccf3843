"""Wasserstein gradient flow of ½MMD²(·, π) on particles (Arbel et al. 2019; MATH §5.2) — method ``mmd-flow``.

Continuum PDE (α = ``problem.flow.alpha`` > 0, the transport weight of the case; β is not used; the
energy is ½MMD²_k(ρ, π̄), not the KL of the case):

    ∂_t ρ = α ∇·(ρ ∇f_{ρ,π̄}),   f_{ρ,π̄}(z) = ∫ k(x, z) dρ(x) − ∫ k(y, z) dπ̄(y)   (the witness function, MATH E6),

with no-flux on ∂Ω.  π̄ is the target restricted to Ω and scaled to the mass M0 = ∫_Ω ρ0 of the
particles: the W flow conserves mass, so this is the only target it can reach.

Particles μ = Σ_j w_j δ_{x_j} (w_j = M0/N, fixed), Euler step with noise injection:

    x_i ← x_i − ατ ∇f(x_i + β_k u_i),   ∇f(z) = Σ_j w_j ∇₁k(z, x_j) − ∇_z ∫ k(y, z) dπ̄(y),   u_i ~ N(0, I),

(k symmetric, so ∇_z k(x_j, z) = ∇₁k(z, x_j)), then reflection into Ω
(:func:`~pdeflow.approx.particles.reflect`, the particle counterpart of no-flux).  β_k =
``extra["noise"]`` (default 0: the vanilla flow).  The target term, ``extra`` keys:

* default: M = ``extra["n_target"]`` (default N) i.i.d. samples y_m of π|_Ω
  (:func:`~pdeflow.approx.particles.sample_on_domain`), each of weight M0/M;
* ``target_quantiles=True`` (1-D): y_m = F̄⁻¹((2m−1)/(2M)), F̄ the CDF of π|_Ω, by root finding —
  a deterministic low-discrepancy sample;
* ``exact_target=True``: the integral in closed form.
  - energy kernel k = −|x−y| in 1-D, Gaussian-mixture π: ∇_z ∫ −|z−y| dπ̄(y) = −∫ sign(z−y) dπ̄(y)
    = −M0 (2F̄(z) − 1), so ∇f(z) = Σ_j w_j ∇₁k(z, x_j) + M0(2F̄(z) − 1), with the exact truncated CDF F̄
    (scipy.special.ndtr).  At a particle z = x_i of N sorted equal-weight particles the first sum is
    −M0(2i − 1 − N)/N (the subgradient 0 at r = 0 drops the self term), hence
    ẋ_i = 2αM0 (s_i − F̄(x_i)), s_i = (2i−1)/(2N): each particle follows the quantile ODE
    ∂_tQ(s) = 2(s − F_π(Q(s))) of MATH §3.4 item 2 exactly.  The code does not use this: it sums the
    kernel gradients over all pairs, so the quantile ODE is an independent oracle.
  - Gaussian kernel, any d, Gaussian-mixture π (on R^d, i.e. ignoring the truncation to Ω, which is
    below e^{-32} for the built-in cases): ∫ k(y, z) dN(m, S)(y) = ℓ^d det(ℓ²I+S)^{-1/2}
    exp(−½(z−m)ᵀ(ℓ²I+S)⁻¹(z−m)) (MATH §3.4 item 5) and its gradient.

Other parameters: ``n_particles``, ``kernel``, ``sigma`` (None: median heuristic of the initial
particles, then fixed, so that the flow dissipates one fixed energy), ``dt`` (= γ/α), ``seed`` (initial
particles, then target samples, then noise), ``extra["integrator"]``: ``"euler"`` (default) or
``"ivp"`` (solve_ivp DOP853, ``extra["rtol"]``/``extra["atol"]`` default 1e-12, no noise, reflection at
snapshot times only — the oracle mode).

``steps`` records per Euler step t, τ, the mass and the dissipation α Σ_i w_i |∇f(x_i)|² (= −d/dt ½MMD²
of the noise-free particle ODE); ``energy`` is ½MMD²(μ, π̄) at the snapshots where it is computable:
sample targets (V-statistic), exact energy kernel in 1-D (MMD² = 2∫(F_μ − F_π̄)²dx, by Gauss–Legendre
between the sorted particles) and exact Gaussian kernel (closed form).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq
from scipy.special import ndtr

from ...problem import GaussianMixture, Problem
from ..kernels import Kernel, median_bandwidth
from ..particles import ParticleTrajectory, reflect, sample_initial, sample_on_domain
from . import MethodParams
from .lambda_fr import SCALE_FREE, describe_params, time_grid

DEFAULT_TOL = 1e-12


def _as_mixture(problem: Problem, what: str) -> GaussianMixture:
    if not isinstance(problem.target, GaussianMixture):
        raise ValueError(f"mmd-flow {what} needs a Gaussian-mixture target; case {problem.name!r} has "
                         f"{problem.target.describe()['type']}")
    return problem.target


class TruncatedCDF1D:
    """F̄(z) = (F(z) − F(a)) / (F(b) − F(a)), F the CDF of a 1-D Gaussian mixture, Ω = [a, b]."""

    def __init__(self, mix: GaussianMixture, lower: float, upper: float):
        if mix.dim != 1:
            raise ValueError("the exact 1-D target CDF needs a 1-D target")
        self.masses = np.array([c.mass for c in mix.components])
        self.means = np.array([c.m[0] for c in mix.components])
        self.sds = np.sqrt([c.S[0, 0] for c in mix.components])
        self.lower, self.upper = float(lower), float(upper)
        self.F_lower, self.F_upper = self._F(self.lower), self._F(self.upper)

    def _F(self, z):
        z = np.asarray(z, float)
        flat = z.reshape(-1, 1)
        return (ndtr((flat - self.means) / self.sds) @ self.masses).reshape(z.shape)

    def __call__(self, z):
        return np.clip((self._F(z) - self.F_lower) / (self.F_upper - self.F_lower), 0.0, 1.0)

    def quantile(self, s: float) -> float:
        return brentq(lambda z: float(self(z)) - s, self.lower, self.upper, xtol=1e-14, rtol=1e-15, maxiter=200)


class GaussianMean:
    """z ↦ ∫ k(y, z) dπ̄(y) and its gradient for the Gaussian kernel and π̄ = scale · π/|π|, π a
    Gaussian mixture on R^d (MATH §3.4 item 5)."""

    def __init__(self, mix: GaussianMixture, ell: float, scale: float):
        self.ell, self.d = ell, mix.dim
        self.comps = [(scale * c.mass / mix.mass, c.m, c.S) for c in mix.components]

    def _pair(self, S):
        """ℓ^d det(ℓ²I + S)^{-1/2} and (ℓ²I + S)⁻¹: E k(Y, z) for Y ~ N(m, S) is this times exp(−½|z−m|²_{A⁻¹})."""
        A = self.ell**2 * np.eye(self.d) + S
        return self.ell**self.d / math.sqrt(np.linalg.det(A)), np.linalg.inv(A)

    def value(self, Z):
        out = np.zeros(Z.shape[0])
        for wc, m, S in self.comps:
            c, Ai = self._pair(S)
            out += wc * c * np.exp(-0.5 * np.einsum("nd,de,ne->n", Z - m, Ai, Z - m))
        return out

    def grad(self, Z):
        out = np.zeros_like(Z)
        for wc, m, S in self.comps:
            c, Ai = self._pair(S)
            D = Z - m
            out -= (wc * c * np.exp(-0.5 * np.einsum("nd,de,ne->n", D, Ai, D)))[:, None] * (D @ Ai)
        return out

    def self_energy(self) -> float:
        """∬ k dπ̄ dπ̄: E k(Y1, Y2) for independent Gaussians has covariance S1 + S2 in the formula."""
        total = 0.0
        for w1, m1, S1 in self.comps:
            for w2, m2, S2 in self.comps:
                c, Ai = self._pair(S1 + S2)
                total += w1 * w2 * c * math.exp(-0.5 * (m1 - m2) @ Ai @ (m1 - m2))
        return total


def run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory:
    if method != "mmd-flow":
        raise ValueError(f"mmd_flow runs method 'mmd-flow', not {method!r}")
    alpha = problem.flow.alpha
    if not alpha > 0:
        raise ValueError(f"mmd-flow is a transport method; case {problem.name!r} has alpha = {alpha}")
    ex = params.extra
    integrator = ex.get("integrator", "euler")
    noise = float(ex.get("noise", 0.0))
    exact, quantiles = bool(ex.get("exact_target", False)), bool(ex.get("target_quantiles", False))
    if integrator not in ("euler", "ivp"):
        raise ValueError(f"mmd-flow integrator must be 'euler' or 'ivp', got {integrator!r}")
    if integrator == "ivp" and noise != 0:
        raise ValueError("mmd-flow: the 'ivp' integrator solves the noise-free ODE; set extra['noise'] = 0")
    if noise < 0:
        raise ValueError("extra['noise'] must be >= 0")
    if exact and quantiles:
        raise ValueError("choose one of extra['exact_target'] and extra['target_quantiles']")

    started = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    x, w = sample_initial(problem, params.n_particles, rng)
    n, d = x.shape
    mass = float(w.sum())
    ell = None if params.kernel in SCALE_FREE else (
        float(params.sigma) if params.sigma is not None else median_bandwidth(x))
    kernel = Kernel(params.kernel, 1.0 if ell is None else ell)

    # The target term z ↦ ∇_z ∫k(y, z)dπ̄(y), and what the energy needs of it.
    y = wy = cdf = gmean = None
    if exact:
        mix = _as_mixture(problem, "exact_target")
        if params.kernel == "energy" and d == 1:
            cdf = TruncatedCDF1D(mix, problem.domain.lower[0], problem.domain.upper[0])
            target_label = "exact: energy kernel, truncated mixture CDF"
        elif params.kernel == "gaussian":
            gmean = GaussianMean(mix, ell, mass)
            target_label = "exact: Gaussian kernel mean embedding of the mixture on R^d"
        else:
            raise ValueError("extra['exact_target'] supports the energy kernel in 1-D and the Gaussian kernel")
    else:
        M = int(ex.get("n_target", n))
        if M < 1:
            raise ValueError("extra['n_target'] must be >= 1")
        if quantiles:
            if d != 1:
                raise ValueError("extra['target_quantiles'] is for 1-D cases")
            lo, hi = problem.domain.lower[0], problem.domain.upper[0]
            q = TruncatedCDF1D(_as_mixture(problem, "target_quantiles"), lo, hi)
            y = np.array([[q.quantile((2 * m - 1) / (2 * M))] for m in range(1, M + 1)])
            target_label = f"{M} quantiles of the truncated target"
        else:
            y = sample_on_domain(_as_mixture(problem, "sampling"), problem.domain, M, rng)
            target_label = f"{M} i.i.d. samples of the target on Omega"
        wy = np.full(M, mass / M)
        yy = float(wy @ kernel.apply(y, y, wy))

    def grad_witness(x, Z):
        g = kernel.apply_grad1(Z, x, w)
        if cdf is not None:
            return g + mass * (2.0 * cdf(Z[:, 0]) - 1.0)[:, None]
        if gmean is not None:
            return g - gmean.grad(Z)
        return g - kernel.apply_grad1(Z, y, wy)

    def half_mmd2(x):
        if cdf is not None:
            return _half_energy_distance_1d(x[:, 0], w, cdf, mass)
        xx = float(w @ kernel.apply(x, x, w))
        if gmean is not None:
            return 0.5 * (xx - 2.0 * float(w @ gmean.value(x)) + gmean.self_energy())
        return 0.5 * (xx - 2.0 * float(w @ kernel.apply(x, y, wy)) + yy)

    times = problem.snapshot_times()
    X, steps, energies = [x.copy()], [], [half_mmd2(x)]
    rtol = float(ex.get("rtol", DEFAULT_TOL))
    atol = float(ex.get("atol", DEFAULT_TOL))
    t = times[0]
    for k, n_steps, tau in time_grid(times, params.dt):
        if integrator == "euler":
            for s in range(n_steps):
                G = grad_witness(x, x)
                entry = {"t": t, "tau": tau, "mass": mass, "dissipation": float(alpha * np.dot(w, (G * G).sum(1)))}
                # The noise only moves the point where the witness is evaluated, not the particle.
                if noise > 0:
                    G = grad_witness(x, x + noise * rng.standard_normal(x.shape))
                steps.append(entry)
                x = reflect(problem.domain, x - alpha * tau * G)
                t = times[k] if s == n_steps - 1 else t + tau
        else:
            def rhs(_t, u):
                z = u.reshape(n, d)
                return (-alpha * grad_witness(z, z)).ravel()

            sol = solve_ivp(rhs, (times[k - 1], times[k]), x.ravel(), method="DOP853", rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(f"mmd-flow: solve_ivp failed on ({times[k - 1]}, {times[k]}): {sol.message}")
            G = grad_witness(x, x)
            steps.append({"t": times[k - 1], "t_end": times[k], "mass": mass, "nfev": int(sol.nfev),
                          "dissipation": float(alpha * np.dot(w, (G * G).sum(1)))})
            x = reflect(problem.domain, sol.y[:, -1].reshape(n, d))
        X.append(x.copy())
        energies.append(half_mmd2(x))

    resolved = {"integrator": integrator, "bandwidth": ell, "noise": noise, "target": target_label}
    info = {**resolved,
            "continuum": "d_t rho = alpha div(rho grad f_{rho,pi}), f the MMD witness (MATH 5.2)",
            "energy": f"1/2 MMD^2 with kernel {params.kernel}", "alpha": alpha, "n_steps": len(steps),
            "reflection": "every step" if integrator == "euler" else "at snapshot times only",
            "wall_s": time.perf_counter() - started}
    return ParticleTrajectory(
        method=method,
        params=describe_params(params, **resolved),
        times=np.array(times),
        x=np.array(X),
        w=np.repeat(w[None], len(times), axis=0),
        steps=steps,
        info=info,
        energy=np.array(energies),
    )


def _half_energy_distance_1d(x, w, cdf: TruncatedCDF1D, mass: float, order: int = 10) -> float:
    """½MMD² for k = −|x−y| in 1-D: MMD²(μ, π̄) = 2∫(F_μ − F_π̄)² dx (with masses M0: times M0²);
    F_μ is constant between sorted particles, F̄ smooth there, so Gauss–Legendre per interval is exact
    up to the smoothness of F̄.  Both measures live on Ω, so the integrand vanishes outside it."""
    order_idx = np.argsort(x)
    xs = np.clip(x[order_idx], cdf.lower, cdf.upper)
    Fmu = np.concatenate([[0.0], np.cumsum(w[order_idx]) / mass])
    edges = np.concatenate([[cdf.lower], xs, [cdf.upper]])
    g, gw = np.polynomial.legendre.leggauss(order)
    a, b = edges[:-1], edges[1:]
    pts = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * g[None, :]
    vals = (Fmu[:, None] - cdf(pts)) ** 2
    integral = float((0.5 * (b - a)[:, None] * gw[None, :] * vals).sum())
    return 0.5 * 2.0 * mass**2 * integral


# --- declarations (pdeflow.approx.methods registry) ------------------------------------------------
from . import INTEGRATION_TOL_KEYS, MethodDecl, key, refuse_unless_transport  # noqa: E402


def _mmd_continuum(problem, params):
    if float(params.extra.get("noise", 0.0)) != 0:
        raise ValueError("mmd-flow with noise injection (noise > 0) approximates no declared continuum; "
                         "set noise = 0 or give --continuum")
    return "mmd-flow", {"kernel": params.kernel, "sigma": params.sigma}


DECLARE = {
    "mmd-flow": MethodDecl(
        name="mmd-flow", summary="Wasserstein flow of MMD^2 on particles (Arbel et al. 2019)",
        keys={
            "noise": key(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0 (noise injection level)"),
            "n_target": key(int, lambda v: 2 <= v <= 10**7, "an integer in [2, 1e7]"),
            "exact_target": key(bool, lambda v: isinstance(v, bool), "true or false"),
            "target_quantiles": key(bool, lambda v: isinstance(v, bool), "true or false"),
            "integrator": key(str, lambda v: v in ("euler", "ivp"), "euler or ivp"),
            **INTEGRATION_TOL_KEYS,
        },
        uses=("n_particles", "sigma", "kernel", "dt", "seed"), continuum=_mmd_continuum,
        refuse=refuse_unless_transport("mmd-flow"),
        defaults={"noise": 0.0, "n_target": "n_particles", "exact_target": False, "target_quantiles": False,
                  "integrator": "euler", "rtol": 1e-12, "atol": 1e-12}),
}
