"""Mesh solutions of the particle methods' own continua (MATH §5, 'General rule', limit 1).

A particle method at fixed kernel k, bandwidth σ, regularization λ or step h does not approximate the
flow of the case but a *regularized* PDE, its mean-field limit.  This module solves that PDE on the
vertices x_i of the P1 mesh (nodal values ρ_i, lumped masses m_i = ∫ψ_i): every kernel sum of the
particle method is evaluated by the vertex quadrature, i.e. with the particles replaced by the
vertices and their weights by m_jρ_j ("particle form"), so that the mesh ODE is the mean-field limit
of the particle system itself, with its conventions (kernel, KDE, scalings, target on Ω).  α, β and
``spherical`` come from ``problem.flow``; π is the target at the vertices (so restricted to Ω).

The continua (equation; discretization):

``stein`` — plain SVGD at fixed kernel k (MATH §2.2, §5.1; :mod:`pdeflow.approx.methods.stein`):
    ∂_tρ = α∇·(ρ K_ρ∇log(ρ/π)),  integrated by parts  ∂_tρ = −∇·(ρu),
    u(x_i) = α Σ_j m_jρ_j [k(x_j, x_i)∇log π(x_j) + ∇_{x_j}k(x_j, x_i)]   (β is ignored).
``lambda-stein`` — regularized SVGD (ZM (4.4)–(4.7), MATH §2.3 (b)):
    ∂_tρ = α∇·(ρv),  v = (K_ρ + λ)⁻¹K_ρ G,  G = ∇log(ρ/π) (lumped vertex gradient of the P1
    interpolant, as :func:`~pdeflow.fem.nonlocal_flows.solve_lambda_stein_mesh`) or, with
    ``kde_bandwidth`` h, G = ∇log(K_h*ρ) − ∇log π by kernel sums (stein.py's KDE kind 'b'); β ignored.
``lambda-fr`` — λ-FRk (ZM Prop. 3.3, MATH §2.3 (b), §5.3 item 4):
    ∂_tρ = −βρ(r − ⟨r⟩_ρ),  r = (K_ρ + λ)⁻¹K_ρ log(ρ/π)  (no mean on M+);  α ignored.
``lambda-wfr`` — λ-WFR with the KDE first variation at fixed k, λ and KDE bandwidth h (ZM (5.5)–(5.7),
    MATH §2.3 (b); :mod:`pdeflow.approx.methods.lambda_wfr`, kind 'b'):
    ∂_tρ = α∇·(ρv) − βρ(r − c),  v = (K_ρ + λ)⁻¹K_ρ G,  r = (K_ρ + λ)⁻¹K_ρ ξ̂,  c = ⟨r⟩_ρ on P, 0 on M+,
    ξ̂ = log((K_h*ρ)/π), G = ∇log(K_h*ρ) − ∇log π, K_h the normalized Gaussian (kde_first_variation).
``mmd-flow`` — W flow of ½MMD²_k(·, π̄) (MATH §5.2; :mod:`pdeflow.approx.methods.mmd_flow`):
    ∂_tρ = α∇·(ρ∇f),  f(z) = Σ_j m_j(ρ_j − π̄_j) k(x_j, z),  π̄ = π|_Ω scaled to the mass of ρ0.
``kde-wfr`` — birth–death + Langevin at fixed KDE bandwidth σ (MATH §5.5; :mod:`.birth_death`):
    ∂_tρ = α∇·(ρ∇log(ρ/π)) − βρ(ξ_σ − ⟨ξ_σ⟩_ρ),  ξ_σ = log((K_σ*ρ)/π),  K_σ the normalized Gaussian.
``lie-split`` — SMC-WFR at fixed step h (MATH §4.3, §5.5; :mod:`.smc_wfr`): per step h,
    ρ'(x_i) = Σ_j m_jρ_j M_h(x_j, x_i)  (the method's reflected-ULA transition density),
    ρ'' = ρ'^a π^{1−a},  a = e^{−βh}  (normalized to the mass on P).

Transport discretization (stein, lambda-stein, mmd-flow): the nodal-flux form of
:class:`~pdeflow.fem.nonlocal_flows.LambdaSteinMesh`, m_iρ̇_i = Σ_k (C_kᵀ(ρ∘u_k))_i = ∫ I_h(ρu)·∇ψ_i
with C_k,ij = ∫ψ_i∂_kψ_j: mass-conserving (Σ_i∇ψ_i = 0), no-flux as the natural condition, and its
transpose is the lumped vertex gradient, so dF_h/dt = Σ_i m_iρ_i ∇_hDF_i·u_i exactly (recorded as
``rate``).  These ODEs are integrated in ρ (not log ρ) by an adaptive error-controlled Runge–Kutta
method (solve_ivp DOP853, to ``rtol``): Runge–Kutta methods preserve linear invariants, so the mass
Σm_iρ_i is conserved to round-off, not to the tolerance.  (At small λ on fine meshes λ-Stein
becomes diffusion-stiff, ≈ α/h², and the explicit method then takes stability-limited steps.)
``kde-wfr``: the Fokker–Planck part as m∘ρ̇ = −αA_π(ρ/π) (π-weighted P1 stiffness), the reaction
pointwise with the vertex-quadrature KDE, BDF with the analytic Jacobian (stiff).  ``lie-split``:
the W substep as a dense Markov matrix on the vertices (columns renormalized to exact mass), the FR
substep exact at the nodes.  ``lambda-fr`` is :func:`~pdeflow.fem.nonlocal_flows.solve_lambda_frk_mesh`.
``lambda-wfr``: the lambda-stein KDE-score transport (nodal flux) plus the pointwise λ-FRk reaction
with the vertex-quadrature KDE ξ̂, one KRR (vertex Gram matrix built once) per right-hand side, DOP853 in ρ.

The mesh is built on MPI.COMM_SELF on every rank (the dense N_v × N_v kernel algebra is global
anyway, ≤ DENSE_VERTEX_LIMIT vertices), so every rank returns the same result; ``comm`` is only used
to agree on the wall time.  Outputs are in the lexicographic vertex order of the gathered reference.
"""
from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse
import ufl
from mpi4py import MPI
from scipy.integrate import solve_ivp

from ..approx.kernels import KERNELS, Kernel
from ..approx.methods.birth_death import grad_log_target as grad_log_target_fd
from ..approx.krr import krr, krr_dissipation
from ..approx.methods.lambda_fr import SCALE_FREE, grad_log_target, log_heat_normalizer, reaction_shift, time_grid
from ..approx.methods.smc_wfr import log_transition
from ..geometry import Flow
from ..problem import Problem, initial_density, integrate
from . import compat
from .nonlocal_flows import DENSE_VERTEX_LIMIT, STEIN_FLUXES, LambdaSteinMesh, solve_lambda_frk_mesh
from .space import P1Space

CONTINUA = ("stein", "lambda-stein", "lambda-fr", "lambda-wfr", "mmd-flow", "kde-wfr", "lie-split")

_KERNEL = (str, "gaussian", "kernel k of the method: " + ", ".join(KERNELS))
_SIGMA = (float, None, "bandwidth l of k (required unless the kernel is scale-free: " + ", ".join(SCALE_FREE) + ")")
_LAM = (float, 1e-3, "KRR regularization lambda >= 0 (0: no regression)")

# {continuum: {key: (type, default, one-line description)}}; default None means "not set".
CONTINUUM_KEYS = {
    "stein": {"kernel": _KERNEL, "sigma": _SIGMA},
    "lambda-stein": {
        "kernel": _KERNEL,
        "sigma": (float, None, _SIGMA[2][:-1] + "; not used when lam = 0)"),
        "lam": _LAM,
        "kde_bandwidth": (float, None, "KDE bandwidth h of the force grad log(K_h*rho) - grad log pi "
                                       "(stein.py kind 'b'); unset: the exact vertex gradient of log(rho/pi)"),
        "flux": (str, "nodal", "transport flux: nodal (I_h(rho v), exact energy rate) or product (rho_h v_h)"),
    },
    "lambda-fr": {
        "kernel": _KERNEL,
        "sigma": (float, None, _SIGMA[2][:-1] + "; not used when lam = 0)"),
        "lam": _LAM,
    },
    "lambda-wfr": {
        "kernel": _KERNEL,
        "sigma": (float, None, _SIGMA[2][:-1] + "; not used when lam = 0)"),
        "lam": _LAM,
        "kde_bandwidth": (float, None, "bandwidth h of the normalized Gaussian KDE K_h of xi = log(K_h*rho/pi) and "
                                       "G = grad log(K_h*rho) - grad log pi (lambda_wfr.py kind 'b'; required)"),
    },
    "mmd-flow": {"kernel": _KERNEL, "sigma": _SIGMA},
    "kde-wfr": {"sigma": (float, None, "bandwidth sigma of the normalized Gaussian KDE kernel K_sigma (required)")},
    "lie-split": {
        "h": (float, None, "step h of the W-then-FR Lie splitting (required)"),
        "move": (str, "ula", "Markov move of the W substep: ula (mala is refused: no transition density)"),
    },
}

CONTINUUM_EQUATIONS = {
    "stein": "d_t rho = alpha div(rho K_rho grad log(rho/pi)), particle form u = alpha sum_j m_j rho_j "
             "[k(x_j,.) grad log pi(x_j) + grad_{x_j} k(x_j,.)] (MATH 2.2, 5.1)",
    "lambda-stein": "d_t rho = alpha div(rho (K_rho + lam)^-1 K_rho G), G = grad log(rho/pi) or "
                    "grad log(K_h*rho) - grad log pi (ZM (4.7), MATH 2.3 (b))",
    "lambda-fr": "d_t rho = -beta rho (r - <r>), r = (K_rho + lam)^-1 K_rho log(rho/pi) (ZM Prop. 3.3, MATH 5.3 item 4)",
    "lambda-wfr": "d_t rho = alpha div(rho v) - beta rho (r - c), v = (K_rho + lam)^-1 K_rho G, r = (K_rho + lam)^-1 "
                  "K_rho xi, xi = log(K_h*rho/pi), G = grad log(K_h*rho) - grad log pi, c = <r>_rho on P, 0 on M+ "
                  "(ZM (5.5)-(5.7), MATH 2.3 (b))",
    "mmd-flow": "d_t rho = alpha div(rho grad f), f = K(rho - pibar), pibar = pi|Omega scaled to the mass of rho0 (MATH 5.2)",
    "kde-wfr": "d_t rho = alpha div(rho grad log(rho/pi)) - beta rho (xi_s - <xi_s>_rho), xi_s = log(K_sigma*rho/pi) (MATH 5.5)",
    "lie-split": "per step h: rho' = sum_j m_j rho_j M_h(x_j, .) (reflected ULA), rho'' = rho'^a pi^(1-a), "
                 "a = exp(-beta h) (MATH 4.3, 5.5)",
}

ODE_METHOD = "DOP853"
MALA_REFUSAL = ("lie-split: move 'mala' has no continuum here: the MALA kernel has an atom at the current point "
                "(rejections), so it has no transition density to apply as a matrix on the vertices, and smc-wfr "
                "reweights MALA moves with the ULA proposal density only as an approximation; use move = 'ula'")


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------


def _as_float(name: str, key: str, raw) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{name}: parameter {key!r} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: parameter {key!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: parameter {key!r} must be finite, got {raw!r}")
    return value


def resolve_params(name: str, params: dict) -> dict:
    """The parameters of continuum ``name``: ``params`` checked against CONTINUUM_KEYS (unknown key,
    wrong type, bad value or missing required key → one-line ValueError naming the key), with the
    defaults filled in."""
    if name not in CONTINUUM_KEYS:
        raise ValueError(f"unknown continuum {name!r}; choose from {', '.join(CONTINUA)}")
    spec = CONTINUUM_KEYS[name]
    params = {} if params is None else dict(params)
    for key in params:
        if key not in spec:
            raise ValueError(f"{name}: unknown parameter {key!r}; accepted: {', '.join(spec)}")
    out = {}
    for key, (kind, default, _) in spec.items():
        raw = params.get(key, default)
        if raw is None:
            out[key] = None
        elif kind is float:
            out[key] = _as_float(name, key, raw)
        elif not isinstance(raw, str):
            raise ValueError(f"{name}: parameter {key!r} must be a string, got {raw!r}")
        else:
            out[key] = raw.strip()
    if "kernel" in out and out["kernel"] not in KERNELS:
        raise ValueError(f"{name}: parameter 'kernel' must be one of {', '.join(KERNELS)}, got {out['kernel']!r}")
    uses_kernel = "kernel" in out and (out.get("lam") is None or out["lam"] > 0)
    if "sigma" in out:
        if out["sigma"] is not None and not out["sigma"] > 0:
            raise ValueError(f"{name}: parameter 'sigma' must be > 0, got {out['sigma']!r}")
        if out["sigma"] is None and (name == "kde-wfr" or (uses_kernel and out["kernel"] not in SCALE_FREE)):
            what = "the KDE bandwidth" if name == "kde-wfr" else f"the bandwidth of the {out['kernel']} kernel"
            raise ValueError(f"{name}: parameter 'sigma' ({what}) is required")
    if out.get("lam") is not None and out["lam"] < 0:
        raise ValueError(f"{name}: parameter 'lam' must be >= 0, got {out['lam']!r}")
    if out.get("kde_bandwidth") is not None and not out["kde_bandwidth"] > 0:
        raise ValueError(f"{name}: parameter 'kde_bandwidth' must be > 0, got {out['kde_bandwidth']!r}")
    if name == "lambda-wfr" and out["kde_bandwidth"] is None:
        raise ValueError("lambda-wfr: parameter 'kde_bandwidth' (the KDE bandwidth h of the first variation) is required")
    if "flux" in out and out["flux"] not in STEIN_FLUXES:
        raise ValueError(f"{name}: parameter 'flux' must be one of {', '.join(STEIN_FLUXES)}, got {out['flux']!r}")
    if name == "lie-split":
        if out["h"] is None:
            raise ValueError("lie-split: parameter 'h' (the step of the splitting) is required")
        if not out["h"] > 0:
            raise ValueError(f"lie-split: parameter 'h' must be > 0, got {out['h']!r}")
        if out["move"] == "mala":
            raise ValueError(MALA_REFUSAL)
        if out["move"] != "ula":
            raise ValueError(f"lie-split: parameter 'move' must be 'ula', got {out['move']!r}")
    return out


def _kernel(p: dict) -> Kernel:
    """Kernel(name, σ); the scale-free kernels get the dummy bandwidth 1.0 (recorded as None)."""
    if p["kernel"] in SCALE_FREE or p["sigma"] is None:
        return Kernel(p["kernel"], 1.0)
    return Kernel(p["kernel"], p["sigma"])


def _bandwidth(p: dict):
    return None if p["kernel"] in SCALE_FREE else p["sigma"]


# --------------------------------------------------------------------------------------------
# vertices, kernel sums, operators
# --------------------------------------------------------------------------------------------


def _check_vertex_count(name: str, n_vertices: int):
    if n_vertices > DENSE_VERTEX_LIMIT:
        raise ValueError(
            f"{name}: the mesh has {n_vertices} vertices, more than DENSE_VERTEX_LIMIT = {DENSE_VERTEX_LIMIT} "
            f"of the dense mesh continua (N x N kernel matrices, {n_vertices**2 * 8 / 1e9:.1f} GB each); "
            "use a coarser mesh (smaller n) or compare with the particle method directly"
        )


class _Vertices:
    """The serial P1 space (MPI.COMM_SELF) with vertices x, lumped masses m, log π and ρ0 at the
    vertices (dof order), ρ0 scaled so that its lumped mass is ∫_Ω ρ0 exactly."""

    def __init__(self, problem: Problem, n: int, name: str):
        if problem.domain.is_box:  # refuse before building a mesh that is too large
            _check_vertex_count(name, (int(n) + 1) ** problem.dim)
        self.space = space = P1Space(problem.domain, n, MPI.COMM_SELF)
        _check_vertex_count(name, space.n_owned)
        self.x, self.m, self.dim = space.coords, space.lumped_mass, space.dim
        self.log_pi = space.nodal(problem.target.log_density)
        rho0 = initial_density(problem)
        phi0 = space.nodal(rho0.log_density)
        phi0 += math.log(integrate(rho0, problem.domain) / space.integral(np.exp(phi0)))
        self.rho0 = np.exp(phi0)
        self.pi = np.exp(self.log_pi)

    @property
    def n_vertices(self) -> int:
        return self.space.n_owned

    def mass(self, rho) -> float:
        return float(np.dot(self.m, rho))

    def kl(self, rho) -> float:
        """Lumped KL Σ m_i(ρ_i log(ρ_i/π_i) − ρ_i + π_i), ρ log ρ = 0 where ρ ≤ 0 (a tail undershoot)."""
        r = np.maximum(rho, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(r > 0, r * (np.log(np.where(r > 0, r, 1.0)) - self.log_pi), 0.0)
        return float(np.dot(self.m, ent - rho + self.pi))

    def output(self, name: str, times, snaps, problem: Problem, info: dict) -> dict:
        """The common result dict in the gathered (lexicographic) vertex order."""
        rho = np.array([self.space.gather(r) for r in snaps])
        masses = [self.mass(r) for r in snaps]
        flow = problem.flow
        params = {"continuum": name, "equation": CONTINUUM_EQUATIONS[name], "n": int(self.space.n),
                  "n_vertices": int(self.n_vertices), "h": float(self.space.h), "alpha": flow.alpha,
                  "beta": flow.beta, "spherical": flow.spherical, **info}
        if "tolerance" not in params:
            params["tolerance"] = f"rtol {params['rtol']:g}, atol {params['atol']:g} (solve_ivp error control)"
        return {
            "t": np.array(times, dtype=float),
            "x": self.space.gathered_coords,
            "m": self.space.gather(self.m),
            "rho": rho,
            "mass": np.array(masses),
            "kl": np.array([self.kl(r) for r in snaps]),
            "rho_min": float(np.min(rho)),
            "params": params,
        }


def _radial_factor(kernel: Kernel, x: np.ndarray) -> np.ndarray:
    """Φ with ∇₁k(x_i, x_j) = Φ_ij (x_i − x_j), for the radial kernels, taken from the kernel's own
    gradient (so no derivative formula is duplicated here); Φ_ii = 0 (the diagonal term is 0·0)."""
    n, d = x.shape
    phi = np.empty((n, n))
    step = max(1, (1 << 21) // max(1, n * d))
    for s in range(0, n, step):
        g = kernel.grad1(x[s : s + step], x)
        diff = x[s : s + step, None, :] - x[None, :, :]
        r2 = (diff * diff).sum(-1)
        phi[s : s + step] = np.where(r2 > 0, (g * diff).sum(-1) / np.where(r2 > 0, r2, 1.0), 0.0)
    return phi


class _KernelSums:
    """Σ_j v_j k(x_i, x_j), Σ_j v_j ∇₁k(x_i, x_j) and Σ_j v_j ∇₂k(x_i, x_j) at the fixed vertices,
    from N × N matrices built once (the vertices do not move): the kernel sums of the particle
    methods with the particles at the vertices."""

    def __init__(self, kernel: Kernel, x: np.ndarray, gram: np.ndarray = None):
        self.kernel, self.x = kernel, x
        self.gram = kernel.gram(x, x) if gram is None else gram
        self.phi = None if kernel.name == "bilinear" else _radial_factor(kernel, x)

    def apply(self, v: np.ndarray) -> np.ndarray:
        return self.gram @ v

    def grad1(self, v: np.ndarray) -> np.ndarray:
        """Σ_j v_j ∇₁k(x_i, x_j) = x_i (Φv)_i − (Φ(v∘x))_i; bilinear: Σ_j v_j x_j."""
        if self.phi is None:
            return np.broadcast_to(v @ self.x, self.x.shape).copy()
        return self.x * (self.phi @ v)[:, None] - self.phi @ (v[:, None] * self.x)

    def grad2(self, v: np.ndarray) -> np.ndarray:
        """Σ_j v_j ∇₂k(x_i, x_j) (= Σ_j v_j ∇_{x_j}k(x_j, x_i), k symmetric) — kernels.apply_grad2."""
        if self.phi is None:
            return self.x * v.sum()
        return -self.grad1(v)


def _transport_rate(system: LambdaSteinMesh, rho: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ρ̇ of ∂_tρ = −∇·(ρu) in nodal-flux form: m_iρ̇_i = Σ_k (C_kᵀ(ρ∘u_k))_i = ∫ I_h(ρu)·∇ψ_i."""
    return sum(ct @ (rho * u[:, k]) for k, ct in enumerate(system.CT)) / system.m


def _needs_transport(problem: Problem, name: str) -> float:
    if not problem.flow.alpha > 0:
        raise ValueError(f"{name}: alpha = {problem.flow.alpha:g} in case {problem.name!r}; this continuum is a "
                         "transport flow and needs alpha > 0")
    return problem.flow.alpha


def _integrate(rhs, y0, times, rtol: float, method: str = ODE_METHOD, jac=None, what: str = ""):
    atol = 1e-3 * rtol * float(np.max(np.abs(y0)))
    kw = {} if jac is None else {"jac": jac}
    sol = solve_ivp(rhs, (times[0], times[-1]), y0, method=method, t_eval=times, rtol=rtol, atol=atol, **kw)
    if not sol.success:
        raise RuntimeError(f"{what}: solve_ivp ({method}, rtol {rtol:g}) failed: {sol.message}")
    return sol, atol


# --------------------------------------------------------------------------------------------
# the continua
# --------------------------------------------------------------------------------------------


def _solve_stein(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """Plain SVGD mean-field limit at fixed kernel k (MATH §2.2, §5.1):

        ∂_tρ = α∇·(ρ K_ρ∇log(ρ/π))  =  −∇·(ρu),
        u(x_i) = α Σ_j m_jρ_j [k(x_j, x_i)∇log π(x_j) + ∇_{x_j}k(x_j, x_i)],

    the SVGD velocity of stein.svgd_velocity with the particles at the vertices (weights m_jρ_j);
    nodal-flux transport, DOP853 in ρ.  β is ignored.  Records the lumped KL (the energy), its exact
    semi-discrete rate −dF_h/dt = −Σ_i m_iρ_i G_i·u_i (G the vertex gradient of log(ρ/π)) and the
    kernel Stein discrepancy KSD² = α Σ_ij w_iw_j k_ij G_i·G_j, to which the rate is equal up to the
    O(h²) error of the integration by parts on the mesh."""
    alpha = _needs_transport(problem, "stein")
    kernel = _kernel(p)
    V = _Vertices(problem, n, "stein")
    system = LambdaSteinMesh(V.space, V.log_pi, kernel, 0.0, alpha)
    sums = _KernelSums(kernel, V.x, system.gram)
    score = grad_log_target(problem)(V.x)  # fixed points: the score is evaluated once

    def velocity(rho):
        w = V.m * rho
        return alpha * (sums.apply(w[:, None] * score) + sums.grad2(w))

    def rhs(_t, rho):
        return _transport_rate(system, rho, velocity(rho))

    times = problem.snapshot_times()
    sol, atol = _integrate(rhs, V.rho0, times, rtol, what="stein")
    snaps = list(sol.y.T)
    rates, ksd2 = [], []
    for rho in snaps:
        with np.errstate(divide="ignore", invalid="ignore"):
            G = system.gradient(system.xi(np.maximum(rho, 1e-300)))
        w = V.m * rho
        rates.append(-float(np.sum(w[:, None] * G * velocity(rho))))
        ksd2.append(alpha * float(np.sum((w[:, None] * G) * sums.apply(w[:, None] * G))))
    out = V.output("stein", times, snaps, problem, {
        "kernel": p["kernel"], "sigma": _bandwidth(p), "integrator": f"{ODE_METHOD} (scipy solve_ivp) in rho",
        "flux": "nodal", "rtol": rtol, "atol": atol, "n_rhs_evaluations": int(sol.nfev), "beta_ignored": problem.flow.beta != 0,
        "energy": "KL(rho|pi), lumped"})
    out["energy"] = np.array([V.kl(r) for r in snaps])
    out["rate"] = np.array(rates)
    out["ksd2"] = np.array(ksd2)
    return out


def kde_score(sums: _KernelSums, w: np.ndarray, score: np.ndarray) -> np.ndarray:
    """∇log(K_h*μ)(x_i) − ∇log π(x_i) for μ = Σ_j w_jδ_{x_j}, by kernel sums with the Gaussian kernel
    of bandwidth h — stein.py's KDE kind 'b' (lambda_fr.kde_first_variation), self term included;
    the normalization of K_h cancels in the ratio."""
    s = sums.apply(w)
    return sums.grad1(w) / s[:, None] - score


def _solve_lambda_stein(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """λ-Stein (regularized SVGD; ZM (4.4)–(4.7), MATH §2.3 (b)):

        ∂_tρ = α∇·(ρv),  v = (K_ρ + λ)⁻¹K_ρ G,
        G = (1/m_i)∫∇ξ_h ψ_i, ξ = log(ρ/π)  (exact lumped vertex gradient, kde_bandwidth unset), or
        G = ∇log(K_h*ρ) − ∇log π by vertex kernel sums (stein.py's KDE kind 'b', kde_bandwidth = h),

    with the operators of :class:`~pdeflow.fem.nonlocal_flows.LambdaSteinMesh` (the same spatial
    discretization as :func:`~pdeflow.fem.nonlocal_flows.solve_lambda_stein_mesh`), integrated in ρ
    by DOP853 to ``rtol`` instead of explicit Euler.  β is ignored (the particle method ignores it).
    Records the lumped KL, its exact semi-discrete rate −Σ_i m_iξ_iρ̇_i and the KRR dissipation
    α⟨G, (K_ρ+λ)⁻¹K_ρG⟩ (equal to the rate for the exact gradient and nodal flux)."""
    alpha = _needs_transport(problem, "lambda-stein")
    lam, h_kde = p["lam"], p["kde_bandwidth"]
    kernel = _kernel(p)
    V = _Vertices(problem, n, "lambda-stein")
    system = LambdaSteinMesh(V.space, V.log_pi, kernel, lam, alpha, p["flux"])
    kde = None
    if h_kde is not None:
        kde = _KernelSums(Kernel("gaussian", h_kde), V.x)
        score = grad_log_target(problem)(V.x)

    def force(rho):
        if kde is None:
            return system.gradient(system.xi(rho))
        return kde_score(kde, V.m * rho, score)

    def rhs(_t, rho):
        if not np.all(rho > 0):  # log ρ and the KRR weights need ρ > 0: reject the trial step
            return np.full_like(rho, np.nan)
        return system.rate(rho, system.velocity(rho, force(rho)))

    times = problem.snapshot_times()
    sol, atol = _integrate(rhs, V.rho0, times, rtol, what="lambda-stein")
    snaps = list(sol.y.T)
    if not all(np.all(r > 0) for r in snaps):
        raise RuntimeError("lambda-stein: the density became non-positive at a snapshot")
    rates, diss = [], []
    for rho in snaps:
        G = force(rho)
        v = system.velocity(rho, G)
        rates.append(-float(np.dot(V.m * system.xi(rho), system.rate(rho, v))))
        diss.append(system.dissipation(rho, G, v))
    out = V.output("lambda-stein", times, snaps, problem, {
        "kernel": p["kernel"], "sigma": _bandwidth(p) if lam > 0 else None, "lam": lam,
        "kde_bandwidth": h_kde, "force": "exact vertex gradient of log(rho/pi)" if kde is None
        else "KDE score grad log(K_h*rho) - grad log pi (stein.py kind b)", "flux": p["flux"],
        "integrator": f"{ODE_METHOD} (scipy solve_ivp) in rho", "rtol": rtol, "atol": atol,
        "n_rhs_evaluations": int(sol.nfev), "beta_ignored": problem.flow.beta != 0, "energy": "KL(rho|pi), lumped"})
    out["energy"] = np.array([V.kl(r) for r in snaps])
    out["rate"] = np.array(rates)
    out["dissipation"] = np.array(diss)
    return out


def _solve_lambda_fr(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """λ-FRk (ZM Prop. 3.3; MATH §2.3 (b), §5.3 item 4):

        ∂_tρ = −βρ(r − ⟨r⟩_ρ),  r = (K_ρ + λ)⁻¹K_ρ log(ρ/π)   (no mean on M+),

    :func:`~pdeflow.fem.nonlocal_flows.solve_lambda_frk_mesh` with integrator "ivp" (DOP853 on
    log w, w = m∘ρ, to ``rtol``; mass is conserved to the tolerance).  α is ignored, as by the
    particle λ-FR method: the case is solved with its transport weight set to 0."""
    flow = problem.flow
    if not flow.beta > 0:
        raise ValueError(f"lambda-fr: beta = {flow.beta:g} in case {problem.name!r}; this continuum is a "
                         "Fisher-Rao (reaction) flow and needs beta > 0")
    lam = p["lam"]
    if problem.domain.is_box:
        _check_vertex_count("lambda-fr", (int(n) + 1) ** problem.dim)
    fr_problem = problem if flow.alpha == 0 else problem.with_changes(flow=Flow(0.0, flow.beta, flow.spherical))
    out = solve_lambda_frk_mesh(fr_problem, n, 1.0, lam, _kernel(p), integrator="ivp", comm=MPI.COMM_SELF, rtol=rtol)
    _check_vertex_count("lambda-fr", out["x"].shape[0])
    out["mass"] = out["rho"] @ out["m"]
    out["kl"] = np.array(out["energy"], dtype=float)  # the energy of λ-FRk is the lumped KL itself
    out["rho_min"] = float(np.min(out["rho"]))
    out["params"] = {
        "continuum": "lambda-fr", "equation": CONTINUUM_EQUATIONS["lambda-fr"], "n": int(n),
        "n_vertices": int(out["x"].shape[0]), "h": float(problem.domain.diameter_box / n), "alpha": flow.alpha,
        "beta": flow.beta, "spherical": flow.spherical, "kernel": p["kernel"],
        "sigma": _bandwidth(p) if lam > 0 else None, "lam": lam,
        "integrator": "ivp: DOP853 (scipy solve_ivp) on log w (nonlocal_flows.solve_lambda_frk_mesh)",
        "rtol": rtol, "atol": rtol * 1e-2, "tolerance": f"rtol {rtol:g}, atol {rtol * 1e-2:g} on log w (solve_ivp)",
        "n_rhs_evaluations": int(out.get("n_rhs_evaluations", 0)),
        "alpha_ignored": flow.alpha != 0, "energy": "KL(rho|pi), lumped",
    }
    return out


class LambdaWfrMesh:
    """Right-hand side of the mesh λ-WFR system (see :func:`_solve_lambda_wfr`): the particle
    velocity and growth of lambda_wfr.py with the particles at the vertices and weights w = m∘ρ."""

    def __init__(self, problem: Problem, V: _Vertices, p: dict):
        flow = problem.flow
        self.V, self.alpha, self.beta, self.spherical = V, flow.alpha, flow.beta, flow.spherical
        self.lam, self.kernel = p["lam"], _kernel(p)
        # λ-Stein's nodal-flux transport operators and the vertex Gram matrix of k (built once)
        self.system = LambdaSteinMesh(V.space, V.log_pi, self.kernel, self.lam, self.alpha)
        self.kde = _KernelSums(Kernel("gaussian", p["kde_bandwidth"]), V.x)
        self.log_norm = log_heat_normalizer(p["kde_bandwidth"], V.dim)
        self.score = grad_log_target(problem)(V.x) if self.alpha > 0 else None  # fixed points: once
        self.n_rejected = 0  # trial states with ρ ≤ 0 somewhere (rejected by returning NaN)

    def fields(self, rho: np.ndarray) -> dict:
        """G, v (transport, α > 0) and ξ̂, r, c (reaction, β > 0) at the vertices, w = m∘ρ:
        ξ̂_i = log Σ_j K_h(x_i − x_j)w_j − log π_i, G = kde_score, and the KRR fits
        v, r = 𝖪𝖶(𝖪𝖶 + λI)⁻¹(G, ξ̂) in one factorization (λ = 0: v = G, r = ξ̂)."""
        V = self.V
        w = V.m * rho
        out = {"w": w}
        cols = []
        if self.alpha > 0:
            out["G"] = kde_score(self.kde, w, self.score)
            cols.append(out["G"])
        if self.beta > 0:
            out["xi"] = np.log(self.kde.apply(w)) + self.log_norm - V.log_pi
            cols.append(out["xi"][:, None])
        if not cols:
            return out
        f = np.column_stack(cols)
        fit = krr(self.kernel, V.x, w, f, self.lam, gram=self.system.gram) if self.lam > 0 else f
        if self.alpha > 0:
            out["v"] = fit[:, : V.dim]
        if self.beta > 0:
            out["r"] = fit[:, -1]
            out["c"] = reaction_shift(w, out["r"], self.spherical)
        return out

    def rate(self, rho: np.ndarray, f: dict) -> np.ndarray:
        """ρ̇ = −(α/m)Σ_k C_kᵀ(ρ∘v_k) − βρ(r − c)."""
        out = self.system.rate(rho, f["v"]) if self.alpha > 0 else np.zeros_like(rho)
        if self.beta > 0:
            out = out - self.beta * rho * (f["r"] - f["c"])
        return out

    def rhs(self, _t, rho):
        if not np.all(rho > 0):  # log(K_h*ρ) and the KRR weights need ρ > 0: reject the trial step
            self.n_rejected += 1
            return np.full_like(rho, np.nan)
        return self.rate(rho, self.fields(rho))


def _solve_lambda_wfr(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """λ-WFR (kernel-approximate WFR, ZM (5.5)–(5.7); MATH §2.3 (b)) with the KDE first variation,
    the mean-field limit of lambda_wfr.py at fixed k, λ and KDE bandwidth h (kind 'b'):

        ∂_tρ = α∇·(ρv) − βρ(r − c),  v = (K_ρ + λ)⁻¹K_ρ G,  r = (K_ρ + λ)⁻¹K_ρ ξ̂,
        ξ̂ = log((K_h*ρ)/π),  G = ∇log(K_h*ρ) − ∇log π,  c = ⟨r⟩_ρ on P, 0 on M+,

    every kernel sum by the vertex quadrature (weights m_jρ_j, K_h the normalized Gaussian, self
    term included, as kde_first_variation), the KRR by krr with the vertex Gram matrix.  Transport:
    the nodal-flux form of lambda-stein (exact mass, no flux); reaction: pointwise, with
    Σ_i m_iρ_i(r_i − c) = 0 on P.  Integrated in ρ by DOP853 to ``rtol`` — the time-continuous
    limit of the particle method's first-order Lie splitting.  ξ̂ is not the first variation of an
    energy, so no ``energy`` is recorded; ``kl_rate`` is −d/dt of the lumped KL (exact
    semi-discrete), ``dissipation_transport`` Σ w G·v and ``dissipation_reaction`` Σ w ξ̂ r as
    lambda_wfr.py records them per step (not scaled by α, β)."""
    lam, h_kde = p["lam"], p["kde_bandwidth"]
    V = _Vertices(problem, n, "lambda-wfr")
    system = LambdaWfrMesh(problem, V, p)
    times = problem.snapshot_times()
    try:
        sol, atol = _integrate(system.rhs, V.rho0, times, rtol, what="lambda-wfr")
    except RuntimeError as exc:
        if not system.n_rejected:
            raise
        raise RuntimeError(f"{exc}; the density was driven to non-positive values {system.n_rejected} times (the "
                           "nodal-flux transport is not positivity-preserving where the KDE force is not resolved "
                           "by the mesh): refine the mesh or increase lam or kde_bandwidth") from None
    snaps = list(sol.y.T)
    if not all(np.all(r > 0) for r in snaps):
        raise RuntimeError("lambda-wfr: the density became non-positive at a snapshot")
    kl_rate, d_transport, d_reaction = [], [], []
    for rho in snaps:
        f = system.fields(rho)
        kl_rate.append(-float(np.dot(V.m * (np.log(rho) - V.log_pi), system.rate(rho, f))))
        d_transport.append(krr_dissipation(f["w"], f["G"], f["v"]) if "v" in f else 0.0)
        d_reaction.append(krr_dissipation(f["w"], f["xi"], f["r"]) if "r" in f else 0.0)
    out = V.output("lambda-wfr", times, snaps, problem, {
        "kernel": p["kernel"], "sigma": _bandwidth(p) if lam > 0 else None, "lam": lam, "kde_bandwidth": h_kde,
        "xi": "b (KDE plug-in log(K_h*rho/pi), normalized Gaussian K_h, vertex quadrature)", "flux": "nodal",
        "integrator": f"{ODE_METHOD} (scipy solve_ivp) in rho", "rtol": rtol, "atol": atol,
        "n_rhs_evaluations": int(sol.nfev),
        "energy": "none (the KDE first variation is not the gradient of an energy); kl is the lumped KL"})
    out["kl_rate"] = np.array(kl_rate)
    out["dissipation_transport"] = np.array(d_transport)
    out["dissipation_reaction"] = np.array(d_reaction)
    return out


def _solve_mmd_flow(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """Wasserstein flow of ½MMD²_k(·, π̄) (Arbel et al. 2019; MATH §5.2):

        ∂_tρ = α∇·(ρ∇f) = −∇·(ρu),  u = −α∇f,
        f(z) = Σ_j m_j(ρ_j − π̄_j) k(x_j, z),   π̄_j = π_j M0/Σ_l m_lπ_l,

    the witness of mmd_flow.py with both ρ and the target π|_Ω (scaled to the mass M0 of ρ0; the W
    flow conserves mass) in the vertex quadrature, and ∇f(x_i) = Σ_j m_j(ρ_j − π̄_j)∇₁k(x_i, x_j)
    exactly as the particle code sums kernel gradients (energy kernel: subgradient 0 at r = 0).  The
    lumped normalization of π̄ makes ρ = π̄ an exact discrete steady state.  Nodal-flux transport,
    DOP853 in ρ.  β is ignored.  Records ½MMD² = ½vᵀ𝖪v (v = m∘(ρ − π̄)), its exact semi-discrete
    rate −Σ_i f_i m_iρ̇_i and the particle dissipation α Σ_i m_iρ_i|∇f(x_i)|²."""
    alpha = _needs_transport(problem, "mmd-flow")
    kernel = _kernel(p)
    V = _Vertices(problem, n, "mmd-flow")
    system = LambdaSteinMesh(V.space, V.log_pi, kernel, 0.0, alpha)
    sums = _KernelSums(kernel, V.x, system.gram)
    mass0 = V.mass(V.rho0)
    w_target = V.m * V.pi * (mass0 / V.mass(V.pi))

    def velocity(rho):
        return -alpha * sums.grad1(V.m * rho - w_target)

    def rhs(_t, rho):
        return _transport_rate(system, rho, velocity(rho))

    times = problem.snapshot_times()
    sol, atol = _integrate(rhs, V.rho0, times, rtol, what="mmd-flow")
    snaps = list(sol.y.T)
    energies, rates, diss = [], [], []
    for rho in snaps:
        v = V.m * rho - w_target
        f = sums.apply(v)
        u = velocity(rho)
        energies.append(0.5 * float(v @ f))
        rates.append(-float(np.dot(f * V.m, _transport_rate(system, rho, u))))
        diss.append(float(np.dot(V.m * rho, (u * u).sum(1))) / alpha)
    out = V.output("mmd-flow", times, snaps, problem, {
        "kernel": p["kernel"], "sigma": _bandwidth(p), "target": "pi|Omega at the vertices, scaled to the mass of rho0",
        "integrator": f"{ODE_METHOD} (scipy solve_ivp) in rho", "flux": "nodal", "rtol": rtol, "atol": atol,
        "n_rhs_evaluations": int(sol.nfev), "beta_ignored": problem.flow.beta != 0,
        "energy": f"1/2 MMD^2(rho, pibar) with kernel {p['kernel']}, vertex quadrature"})
    out["energy"] = np.array(energies)
    out["rate"] = np.array(rates)
    out["dissipation"] = np.array(diss)
    return out


def _pi_weighted_stiffness(V: _Vertices, pi: np.ndarray) -> scipy.sparse.csr_matrix:
    """(A_π)_ij = ∫ π_h ∇ψ_i·∇ψ_j, π_h the P1 interpolant (one-point rule: exact, the cell mean of π_h)."""
    pi_fn = V.space.function(pi, name="pi")
    u, w = ufl.TrialFunction(V.space.V), ufl.TestFunction(V.space.V)
    A = compat.assemble_matrix(compat.form(pi_fn * ufl.inner(ufl.grad(u), ufl.grad(w)) * compat.dx(V.space.mesh, degree=1)))
    indptr, indices, data = A.getValuesCSR()
    n_v = V.n_vertices
    out = scipy.sparse.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(n_v, n_v))
    A.destroy()
    return out


class KdeWfrMesh:
    """Right-hand side and Jacobian of the mesh kde-wfr system (see :func:`_solve_kde_wfr`)."""

    def __init__(self, V: _Vertices, sigma: float, alpha: float, beta: float):
        self.V, self.alpha, self.beta = V, alpha, beta
        # The transport part only sees ρ/π up to a constant and the spherical reaction only ξ up to
        # a constant, so π may be rescaled by its maximum: no overflow of 1/π in the tails.
        self.pi_s = np.exp(V.log_pi - V.log_pi.max())
        if not np.all(self.pi_s > 0):
            raise ValueError("kde-wfr: the target underflows (pi/max pi < 1e-308) at some vertices; use a smaller domain")
        self.A = _pi_weighted_stiffness(V, self.pi_s) if alpha > 0 else None
        d = V.dim
        # normalized Gaussian K_σ as in birth_death.kde_log (isotropic σ)
        self.K = Kernel("gaussian", sigma).gram(V.x, V.x) * (2 * math.pi * sigma**2) ** (-0.5 * d)
        self.T = None
        if alpha > 0:  # −α diag(1/m) A_π diag(1/π): the (sparse) transport Jacobian, constant
            self.T = (-alpha * scipy.sparse.diags(1.0 / V.m) @ self.A @ scipy.sparse.diags(1.0 / self.pi_s)).tocsr()

    def xi(self, rho):
        """ξ_σ = log((K_σ*ρ)/π) at the vertices, with (K_σ*ρ)(x_i) = Σ_j K_σ(x_i − x_j) m_jρ_j."""
        s = self.K @ (self.V.m * rho)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(s) - self.V.log_pi, s

    def reaction(self, rho):
        """−βρ(ξ_σ − ⟨ξ_σ⟩_ρ)."""
        xi, _ = self.xi(rho)
        w = self.V.m * rho
        return -self.beta * rho * (xi - np.dot(w, xi) / w.sum())

    def rhs(self, _t, rho):
        out = self.T @ rho if self.T is not None else np.zeros_like(rho)
        if self.beta > 0:
            out = out + self.reaction(rho)
        return out

    def jac(self, _t, rho):
        """∂ρ̇/∂ρ.  Reaction R_i = −βρ_i(ξ_i − c), ξ_i = log s_i − log π_i, s = K_σ(m∘ρ), c = Σw_iξ_i/Σw_i:
        ∂ξ_i/∂ρ_l = E_il = K_il m_l/s_i, ∂c/∂ρ_l = (m_l(ξ_l − c) + (wᵀE)_l)/Σw, so
        J_R = −β diag(ξ − c) − β diag(ρ)(E − 1⊗∂c); mᵀJ_R = 0 (mass-conserving Newton steps)."""
        if self.beta == 0:
            return self.T
        V = self.V
        w = V.m * rho
        xi, s = self.xi(rho)
        M = w.sum()
        c = np.dot(w, xi) / M
        E = (self.K / s[:, None]) * V.m[None, :]
        dc = (V.m * (xi - c) + w @ E) / M
        J = -self.beta * rho[:, None] * (E - dc[None, :])
        J[np.diag_indices_from(J)] -= self.beta * (xi - c)
        if self.T is not None:
            J += self.T.toarray()
        return J


def _solve_kde_wfr(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """Birth–death with Langevin moves at fixed KDE bandwidth σ (Lu–Lu–Nolen; MATH §5.5), its
    mean-field limit without the finite-N self-term correction:

        ∂_tρ = α∇·(ρ∇log(ρ/π)) − βρ(ξ_σ − ⟨ξ_σ⟩_ρ),   ξ_σ = log((K_σ*ρ)/π),
        K_σ(z) = (2πσ²)^{−d/2} e^{−|z|²/(2σ²)}  (birth_death.kde_log),   no flux on ∂Ω.

    The transport part is the exact Fokker–Planck operator (ULA noise is exact), α∇·(π∇(ρ/π)):
    m∘ρ̇ = −α A_π(ρ/π) with A_π the P1 stiffness matrix weighted by π_h — symmetric with A_π1 = 0, so
    mass-conserving, with the exact discrete steady state ρ ∝ π, and positivity-preserving wherever
    the stiffness matrix has non-positive off-diagonals (1-D, the structured box meshes; not
    guaranteed on general gmsh meshes, where ``rho_min`` reports any undershoot).  The convolution is the vertex quadrature Σ_j K_σ(x_i − x_j)m_jρ_j.
    The system is stiff (α/h²), so it is integrated in ρ by BDF (scipy solve_ivp) with the analytic
    Jacobian (:meth:`KdeWfrMesh.jac`); BDF preserves the linear invariant Σm_iρ_i because mᵀJ = 0.
    Spherical flows only (birth_death refuses M+: it keeps N equal-weight particles)."""
    flow = problem.flow
    if not flow.spherical:
        raise ValueError(f"kde-wfr: case {problem.name!r} has an unbalanced (M+) flow (spherical = false); "
                         "the birth-death continuum conserves mass and needs a spherical flow")
    V = _Vertices(problem, n, "kde-wfr")
    system = KdeWfrMesh(V, p["sigma"], flow.alpha, flow.beta)
    times = problem.snapshot_times()
    sol, atol = _integrate(system.rhs, V.rho0, times, rtol, method="BDF", jac=system.jac, what="kde-wfr")
    snaps = list(sol.y.T)
    out = V.output("kde-wfr", times, snaps, problem, {
        "sigma": p["sigma"], "kde": "normalized Gaussian K_sigma, vertex quadrature (no finite-N self-term correction)",
        "transport": "pi-weighted P1 stiffness, m rho' = -alpha A_pi (rho/pi)",
        "integrator": "BDF (scipy solve_ivp) in rho, analytic Jacobian", "rtol": rtol, "atol": atol,
        "n_rhs_evaluations": int(sol.nfev), "n_jacobian_evaluations": int(sol.njev)})
    return out


def _solve_lie_split(problem: Problem, p: dict, n: int, rtol: float) -> dict:
    """SMC-WFR's continuum at fixed step h (Crucinio–Pathiraja; MATH §4.3, §5.5): Lie splitting of
    the WFR flow of KL, W substep first, as smc_wfr.py moves then reweights.  Per step of length τ
    (``time_grid(problem.snapshot_times(), h)``: τ ≤ h, shortened uniformly to land on snapshots):

        W:   ρ'(x_i) = Σ_j m_jρ_j M̃_τ(x_j, x_i),  M_τ the reflected-ULA transition density of
             smc_wfr.log_transition (mean x + ατ∇log π(x), variance 2ατ per coordinate, mirror
             images in the faces of the box), M̃_τ(x_j, ·) = M_τ(x_j, ·)/Σ_i m_iM_τ(x_j, x_i):
             each column renormalized by its vertex quadrature, so that the mass is conserved exactly;
        FR:  ρ'' = ρ'^a π^{1−a},  a = e^{−βτ}  (MATH §3.1, exact), rescaled to the initial mass on P
             and left unnormalized on M+ (π with its mass).

    The dense matrix is built once per distinct τ.  It needs the transition density resolved by the
    mesh: √(2ατ) ≥ the mesh size (refused otherwise).  ``rtol`` is not used (no ODE)."""
    flow = problem.flow
    alpha, beta = flow.alpha, flow.beta
    if not alpha > 0:
        raise ValueError(f"lie-split: alpha = {alpha:g} in case {problem.name!r}; the W substep is a Markov move "
                         "and needs alpha > 0 (as smc-wfr)")
    if not problem.domain.is_box:
        raise ValueError(f"lie-split: the reflected-Gaussian transition density is implemented for boxes only; "
                         f"case {problem.name!r} is on the mesh domain {problem.domain.mesh!r}")
    V = _Vertices(problem, n, "lie-split")
    times = problem.snapshot_times()
    grid = time_grid(times, p["h"])
    h_mesh = V.space.h
    tau_min = min(tau for _, _, tau in grid)
    if math.sqrt(2 * alpha * tau_min) < h_mesh:
        raise ValueError(
            f"lie-split: parameter 'h' = {p['h']:g} gives a step {tau_min:.4g} whose Markov kernel (standard deviation "
            f"sqrt(2 alpha tau) = {math.sqrt(2 * alpha * tau_min):.3g}) is not resolved by the mesh size {h_mesh:.3g}; "
            f"increase h or refine the mesh (n >= {math.ceil(problem.domain.diameter_box / math.sqrt(2 * alpha * tau_min))})")
    x, m = V.x, V.m
    N, d = x.shape
    grad = grad_log_target_fd(problem)(x)  # smc_wfr's score (finite differences where not analytic)
    matrices = {}

    def move_matrix(tau):
        key = round(tau, 15)
        if key not in matrices:
            var = 2.0 * alpha * tau
            mu = x + alpha * tau * grad
            L = np.empty((N, N))
            step = max(1, (1 << 20) // max(1, N * d))
            for s in range(0, N, step):
                rows = np.arange(s, min(N, s + step))
                Y = np.repeat(x[rows], N, axis=0)  # target point x_i, one row per (i, j)
                MU = np.tile(mu, (rows.size, 1))  # mean μ(x_j) of the move from x_j
                L[rows] = log_transition(problem, Y, MU, var).reshape(rows.size, N)
            Mt = np.exp(L)  # M_τ(x_j → x_i) in row i, column j
            Mt /= (m @ Mt)[None, :]
            matrices[key] = Mt
        return matrices[key]

    log_pi = V.log_pi
    rho = V.rho0.copy()
    mass0 = V.mass(rho)
    snaps, n_steps = [rho.copy()], 0
    for k, n_k, tau in grid:
        Mt = move_matrix(tau)
        a = math.exp(-beta * tau)
        for _ in range(n_k):
            rho1 = Mt @ (m * rho)
            with np.errstate(divide="ignore"):
                rho = np.exp(a * np.log(rho1) + (1.0 - a) * log_pi)
            if flow.spherical:
                rho *= mass0 / V.mass(rho)
            n_steps += 1
        snaps.append(rho.copy())
    out = V.output("lie-split", times, snaps, problem, {
        "h": p["h"], "move": "ula", "steps_per_interval": [int(n_k) for _, n_k, _ in grid],
        "step_lengths": [float(tau) for _, _, tau in grid], "n_steps": n_steps,
        "integrator": "Lie splitting W then FR: dense reflected-ULA Markov matrix (columns renormalized by the "
                      "vertex quadrature: exact mass) then the exact FR substep",
        "tolerance": "none (no ODE; rtol not used)", "rtol": None})
    return out


_SOLVERS = {
    "stein": _solve_stein,
    "lambda-stein": _solve_lambda_stein,
    "lambda-fr": _solve_lambda_fr,
    "lambda-wfr": _solve_lambda_wfr,
    "mmd-flow": _solve_mmd_flow,
    "kde-wfr": _solve_kde_wfr,
    "lie-split": _solve_lie_split,
}


def solve_continuum(problem: Problem, name: str, params: dict, n: int, comm=MPI.COMM_WORLD,
                    rtol: float = 1e-8) -> dict:
    """The mesh solution of continuum ``name`` (one of CONTINUA; equations in the module docstring
    and CONTINUUM_EQUATIONS) on the n-per-direction mesh of ``problem``.

    Returns ``t`` (= problem.snapshot_times()), ``x`` (N_v × d vertices, lexicographic order as the
    gathered reference), ``m`` (lumped masses), ``rho`` (n_snap × N_v nodal densities), ``mass`` and
    ``kl`` (lumped KL(ρ|π)) at the snapshots, ``rho_min``, ``params`` (JSON-safe: everything used,
    incl. n, n_vertices, integrator and tolerance), ``wall`` (s), and ``energy`` where the continuum
    is a gradient flow (stein, lambda-stein, lambda-fr: KL; mmd-flow: ½MMD²), with continuum-specific
    diagnostics.  Unknown or bad parameters, a case the continuum does not cover and more than
    DENSE_VERTEX_LIMIT vertices raise a one-line ValueError."""
    if name not in _SOLVERS:
        raise ValueError(f"unknown continuum {name!r}; choose from {', '.join(CONTINUA)}")
    p = resolve_params(name, params)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"{name}: n must be an integer >= 2 (cells per direction), got {n!r}")
    if isinstance(rtol, bool) or not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"{name}: rtol must be a number in (0, 1), got {rtol!r}")
    if problem.source is not None:
        raise ValueError(f"{name}: case {problem.name!r} has a manufactured source term, which no particle "
                         "method (and so no continuum) has")
    started = time.perf_counter()
    out = _SOLVERS[name](problem, p, int(n), float(rtol))
    out["wall"] = comm.allreduce(time.perf_counter() - started, op=MPI.MAX)
    return out
