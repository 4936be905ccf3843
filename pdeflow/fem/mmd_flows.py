"""Flows of the nonlocal energy ½MMD²_k(·, π) (energy spec ``mmd:sigma=L``; MATH E6) on mesh vertices.

Setting (the vertex quadrature, as every dense mesh continuum of :mod:`pdeflow.fem.nonlocal_flows`):
vertices x_i with lumped masses m_i, nodal densities ρ_i, π_i, weights w = m∘ρ, v = m∘π, and the
dense kernel matrix 𝖪_ij = k(x_i, x_j).  Then

    F(ρ) = ½ (w − v)ᵀ𝖪(w − v),     ξ_i = (𝖪(w − v))_i  (the witness f_{ρ,π} at x_i),
    ∂F/∂ρ_i = m_i ξ_i,             so along any curve  dF/dt = Σ_i m_i ξ_i ρ̇_i  (chain rule).

Two geometries (β the reaction weight of ``problem.flow``; α must be 0 — no transport here):

``fr`` — Fisher–Rao flow of ½MMD² (MATH §3.1 last bullet, §3.4 item 3; ZM Lemma 6.11):

    ρ̇_i = −β ρ_i (ξ_i − c),   c = 0 on M⁺,   c = ⟨ξ⟩_ρ = Σ w_jξ_j / Σ w_j (spherical, conserves Σ w),

    dissipation D = β Σ_i w_i (ξ_i − c)².  It coincides with the kernelized FR (FRk) flow of reverse
    KL, ρ̇ = −βρ K_ρ(1 − π/ρ) = −βρ 𝒦(ρ − π) (MATH §2.3 (c)).  Integrated in log ρ (positivity).

``mmd`` — the MMD-geometry ("de-kernelized FR") flow ρ̇ = −β𝒦⁻¹ξ (MATH §2.2; IFT (5), (8), Thm 3.6).
    On the vertices the Onsager inverse is the vertex-quadrature integral operator
    (𝒦u)(x_i) = Σ_j k(x_i, x_j) m_j u_j, i.e. the matrix 𝖪_m = 𝖪 diag(m), so the flow is the linear solve

        𝖪 diag(m) ρ̇ = −β (ξ − c𝟏),

    and since ξ = 𝖪 diag(m)(ρ − π) the exact vertex solution is ρ̇ = −β(ρ − π),
    ρ_t − π = e^{−βt}(ρ_0 − π) (MATH §3.4 item 1).  𝖪 is numerically singular for smooth kernels, so
    the solve is regularized as IFT Rem. 3.1: 𝖪 → 𝖪 + εI (``eps``; Cholesky of 𝖪 + εI once).  The
    regularized flow is ẇ = −β(𝖪 + ε)⁻¹𝖪(w − v): each eigen-component of 𝖪 (eigenvalue κ) relaxes at
    rate βκ/(κ + ε) instead of β, so the exact identity holds up to an ε-bias plus the round-off of a
    solve with condition number ≈ 1/ε — the residual against ε is a genuine test of the code.
    Spherical version (IFT Prop. 3.2 (11)): c = 𝟏ᵀ(𝖪+ε)⁻¹ξ / 𝟏ᵀ(𝖪+ε)⁻¹𝟏, which makes Σ m_iρ̇_i = 0
    exactly.  Dissipation D = β (ξ − c𝟏)ᵀ(𝖪 + ε)⁻¹(ξ − c𝟏) (the regularized ‖ξ‖²_ℋ).  Needs a
    positive-definite kernel (not the conditionally positive ``energy`` kernel).  Integrated in ρ
    (linear ODE, not stiff: the rates βκ/(κ+ε) are ≤ β).

    Measured (1-D, 101 vertices of [−6, 6], Gaussian k, ℓ = 0.5): the error of ρ̇ against −β(ρ − π)
    is ≈ 0.13ε (bias) + 2·10⁻¹⁵/ε (round-off of the solve), smallest (3·10⁻⁸) near ε = 10⁻⁷; the
    trajectory error max_t|ρ_t − π − e^{−t}(ρ_0 − π)|/max|ρ_0 − π| on [0, 2] is 0.05ε for ε ≥ 10⁻⁵ and
    4.8·10⁻⁸ at the default ε = 10⁻⁶ (tests/unit/test_paper_identities.py, docs/identities.md).
    Because the right-hand side carries that round-off, the ODE tolerance is raised to
    ``rtol_effective`` = max(rtol, N·ε_mach/ε): an explicit error control cannot resolve a right-hand
    side below its own noise (at ε = 10⁻⁸ and rtol = 10⁻¹⁰ DOP853 took 4·10⁵ evaluations).

Both are integrated by scipy's solve_ivp (DOP853, rtol 1e-10 by default) with the dissipation
integral ∫_0^t D ds carried as an extra unknown, so that the energy–dissipation balance residual
F(ρ_t) − F(ρ_0) + ∫_0^t D ds (MATH §2.4, EDB) is limited only by the ODE tolerance (the pattern of
:func:`pdeflow.fem.nonlocal_flows.solve_lambda_frk_mesh`, integrator ``ivp``).

:func:`mmd_vertex_flow` is plain numpy/scipy on (x, m, π, ρ0) arrays (testable without dolfinx);
:func:`solve_mmd_flow` takes a :class:`~pdeflow.problem.Problem` whose energy is ``mmd:...`` and
gets the vertex data from :func:`pdeflow.fem.nonlocal_flows.vertex_data` (imported lazily: the only
dolfinx use of this module; importing the package :mod:`pdeflow.fem` loads dolfinx, but nothing is
meshed or compiled until :func:`solve_mmd_flow` is called).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import cho_factor, cho_solve

from ..energies import HalfMMD, get_energy

GEOMETRIES = ("fr", "mmd")
DENSE_VERTEX_LIMIT = 5000  # the N × N kernel matrix (same limit as the other dense mesh continua)
DEFAULT_EPS = 1e-6  # relative to max_i 𝖪_ii; see the module docstring and docs/identities.md (residual vs ε)
NOT_POSITIVE_DEFINITE = ("energy", "bilinear")

EQUATIONS = {
    "fr": "d_t rho_i = -beta rho_i (xi_i - c), xi = K(m rho - m pi), c = <xi>_rho (spherical) or 0 "
          "(FR flow of 1/2 MMD^2; MATH 3.4 item 3)",
    "mmd": "(K + eps I) diag(m) d_t rho = -beta (xi - c 1), c = 1'(K+eps)^-1 xi / 1'(K+eps)^-1 1 (spherical) or 0; "
           "eps = 0: d_t rho = -beta (rho - pi) (MMD geometry, MATH 2.2, 3.4 item 1; IFT Rem. 3.1)",
}


class MmdVertexFlow:
    """Right-hand side, energy and dissipation of a flow of ½MMD² on fixed weighted points.

    ``x`` (N, d) points, ``m`` (N,) masses, ``pi`` (N,) target density at the points, ``energy`` a
    :class:`~pdeflow.energies.HalfMMD` (or its spec), ``geometry`` "fr" or "mmd"."""

    def __init__(self, x, m, pi, energy="mmd:sigma=1", geometry: str = "fr", beta: float = 1.0,
                 spherical: bool = False, eps: float = DEFAULT_EPS, gram: np.ndarray = None):
        energy = get_energy(energy)
        if not isinstance(energy, HalfMMD):
            raise ValueError(f"mmd flows need the energy mmd:sigma=L, got {energy.spec!r}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; choose from {', '.join(GEOMETRIES)}")
        if not (isinstance(beta, (int, float)) and beta > 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a positive finite number, got {beta!r}")
        x = np.asarray(x, float)
        x = x[:, None] if x.ndim == 1 else x
        m, pi = np.asarray(m, float), np.asarray(pi, float)
        n = x.shape[0]
        if m.shape != (n,) or pi.shape != (n,):
            raise ValueError(f"m and pi must have one value per point ({n}), got {m.shape} and {pi.shape}")
        if n > DENSE_VERTEX_LIMIT:
            raise ValueError(f"{n} points: the dense kernel matrix of the mmd flows is limited to "
                             f"{DENSE_VERTEX_LIMIT} points ({n**2 * 8 / 1e9:.1f} GB)")
        if np.any(m <= 0) or np.any(pi < 0) or not np.all(np.isfinite(pi)):
            raise ValueError("masses must be positive and pi nonnegative and finite")
        self.x, self.m, self.pi = x, m, pi
        self.energy, self.geometry = energy, geometry
        self.beta, self.spherical = float(beta), bool(spherical)
        self.v = m * pi
        self.gram = energy.gram(x) if gram is None else np.asarray(gram, float)
        self.eps = None
        if geometry == "mmd":
            if energy.kernel in NOT_POSITIVE_DEFINITE:
                raise ValueError(f"the MMD geometry needs a positive-definite kernel (K^-1 is its Onsager operator); "
                                 f"kernel {energy.kernel!r} is not")
            if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
                raise ValueError(f"eps (the regularization K + eps I of IFT Rem. 3.1) must be > 0, got {eps!r}")
            self.eps = float(eps) * float(np.max(np.diag(self.gram)))
            A = self.gram.copy()
            A[np.diag_indices(n)] += self.eps
            self._chol = cho_factor(A, lower=True)
            self._inv_one = cho_solve(self._chol, np.ones(n))

    # --- energy and first variation --------------------------------------------------------------
    def value(self, rho) -> float:
        """F(ρ) = ½(w − v)ᵀ𝖪(w − v), w = m∘ρ."""
        return self.energy.value(self.m * rho, self.v, self.gram)

    def xi(self, rho) -> np.ndarray:
        """ξ = 𝖪(w − v) (the witness at the points)."""
        return self.energy.xi(self.m * rho, self.v, self.gram)

    # --- the flow -------------------------------------------------------------------------------
    def rate_and_dissipation(self, rho):
        """(ρ̇, D) at the nodal density ρ (module docstring)."""
        xi = self.xi(rho)
        if self.geometry == "fr":
            w = self.m * rho
            c = float(np.dot(w, xi) / w.sum()) if self.spherical else 0.0
            g = xi - c
            return -self.beta * rho * g, self.beta * float(np.dot(w, g * g))
        z = cho_solve(self._chol, xi)  # (𝖪 + ε)⁻¹ξ
        if self.spherical:
            c = float(z.sum() / self._inv_one.sum())
            z = z - c * self._inv_one
            xi = xi - c
        return -self.beta * z / self.m, self.beta * float(np.dot(xi, z))

    def rate(self, rho) -> np.ndarray:
        return self.rate_and_dissipation(rho)[0]

    def energy_rate(self, rho) -> float:
        """dF/dt = Σ_i m_i ξ_i ρ̇_i by the chain rule (exact for the vertex system)."""
        return float(np.dot(self.m * self.xi(rho), self.rate(rho)))


def mmd_vertex_flow(x, m, pi, rho0, times, energy="mmd:sigma=1", geometry: str = "fr", beta: float = 1.0,
                    spherical: bool = False, eps: float = DEFAULT_EPS, rtol: float = 1e-10,
                    dense_output: bool = False) -> dict:
    """Integrate a flow of ½MMD² (:class:`MmdVertexFlow`) from the nodal density ``rho0`` and return
    ``t``, ``rho`` (n_t × N), ``energy``, ``dissipation`` (D at the times), ``dissipation_integral``,
    ``edb_residual`` = F(ρ_t) − F(ρ_0) + ∫_0^t D, ``mass`` (Σ m∘ρ), ``n_rhs_evaluations``,
    ``rtol_effective`` (the tolerance used: raised for the MMD geometry, module docstring), ``system``
    and, with ``dense_output``, the accepted step times ``step_t`` and states ``step_rho``."""
    system = MmdVertexFlow(x, m, pi, energy, geometry, beta, spherical, eps)
    rho0 = np.asarray(rho0, float)
    if rho0.shape != system.m.shape or np.any(rho0 <= 0) or not np.all(np.isfinite(rho0)):
        raise ValueError("rho0 must be positive and finite, one value per point")
    times = np.asarray(times, float)
    if times.ndim != 1 or times[0] != 0.0 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be increasing and start at 0")
    if not (0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    log_state = geometry == "fr"  # FR: log ρ keeps ρ > 0; MMD geometry: linear in ρ
    if geometry == "mmd":  # the solve with (𝖪 + ε) has round-off ≈ N·ε_mach/ε relative (module docstring)
        rtol = max(rtol, system.m.size * np.finfo(float).eps / eps)

    def rhs(_t, y):
        rho = np.exp(y[:-1]) if log_state else y[:-1]
        r, D = system.rate_and_dissipation(rho)
        return np.append(r / rho if log_state else r, D)

    y0 = np.append(np.log(rho0) if log_state else rho0, 0.0)
    # absolute tolerance: on log ρ an O(1) scale; on ρ a fraction of max ρ0; the integral of D on the
    # scale of F(ρ0) (it ends near F(ρ0) − F(ρ_T))
    scale = np.full(y0.size, 1.0 if log_state else float(np.max(rho0)))
    scale[-1] = max(system.value(rho0), 1e-300)
    t0 = time.perf_counter()
    sol = solve_ivp(rhs, (0.0, float(times[-1])), y0, method="DOP853", t_eval=None if dense_output else times,
                    rtol=rtol, atol=1e-3 * rtol * scale, dense_output=dense_output)
    if not sol.success:
        raise RuntimeError(f"mmd {geometry} flow: solve_ivp (DOP853, rtol {rtol:g}) failed: {sol.message}")
    Y = sol.sol(times).T if dense_output else sol.y.T
    rho = np.exp(Y[:, :-1]) if log_state else Y[:, :-1]
    energy_t = np.array([system.value(r) for r in rho])
    out = {
        "t": times,
        "rho": rho,
        "energy": energy_t,
        "dissipation": np.array([system.rate_and_dissipation(r)[1] for r in rho]),
        "dissipation_integral": Y[:, -1].copy(),
        "edb_residual": energy_t - energy_t[0] + Y[:, -1],
        "mass": rho @ system.m,
        "n_rhs_evaluations": int(sol.nfev),
        "rtol_effective": float(rtol),
        "system": system,
        "wall": time.perf_counter() - t0,
    }
    if dense_output:
        out["step_t"] = sol.t
        out["step_rho"] = np.exp(sol.y[:-1].T) if log_state else sol.y[:-1].T
    return out


def solve_mmd_flow(problem, n: int, geometry: str = "fr", eps: float = DEFAULT_EPS, rtol: float = 1e-10,
                   comm=None) -> dict:
    """The ``geometry`` ("fr" or "mmd") flow of the case's energy ½MMD²_k(·, π) (``problem.energy`` =
    ``mmd:sigma=L[,kernel=K]``) on the vertices of the n-per-direction mesh of ``problem``; β and
    ``spherical`` from ``problem.flow`` (α must be 0).  ``eps``: the relative regularization of the MMD
    geometry's solve (𝖪 + ε·max𝖪_ii)·diag(m)ρ̇ = −βξ (ignored for "fr").

    Returns, like the other mesh continua: ``t`` (= problem.snapshot_times()), ``x`` (N_v × d, the
    gathered lexicographic vertex order), ``m``, ``rho`` (n_snap × N_v), ``energy`` (½MMD² at the
    snapshots), ``dissipation``, ``dissipation_integral``, ``edb_residual``, ``mass``, ``rho_min``,
    ``params`` (JSON-safe) and ``wall``.  One-line ValueError for a non-MMD energy, transport (α > 0),
    a kernel that is not positive definite in the MMD geometry, or too many vertices."""
    energy = problem.energy_functional
    if not isinstance(energy, HalfMMD):
        raise ValueError(f"solve_mmd_flow: case {problem.name!r} has energy {problem.energy!r}; it needs mmd:sigma=L")
    if geometry not in GEOMETRIES:
        raise ValueError(f"solve_mmd_flow: unknown geometry {geometry!r}; choose from {', '.join(GEOMETRIES)}")
    flow = problem.flow
    if flow.alpha != 0:
        raise ValueError(f"solve_mmd_flow: alpha = {flow.alpha:g} in case {problem.name!r}; the FR and MMD-geometry "
                         "flows of 1/2 MMD^2 are pure reaction flows (alpha = 0)")
    if problem.source is not None:
        raise ValueError(f"solve_mmd_flow: case {problem.name!r} has a manufactured source term")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"solve_mmd_flow: n must be an integer >= 2 (cells per direction), got {n!r}")
    if problem.domain.is_box and (int(n) + 1) ** problem.dim > DENSE_VERTEX_LIMIT:
        raise ValueError(f"solve_mmd_flow: {(int(n) + 1) ** problem.dim} vertices, more than DENSE_VERTEX_LIMIT = "
                         f"{DENSE_VERTEX_LIMIT} (dense kernel matrix); use a coarser mesh")
    from mpi4py import MPI

    from .nonlocal_flows import vertex_data

    comm = MPI.COMM_WORLD if comm is None else comm
    started = time.perf_counter()
    x, m, log_pi, phi0 = vertex_data(problem, int(n), comm)
    times = np.array(problem.snapshot_times(), dtype=float)
    out = mmd_vertex_flow(x, m, np.exp(log_pi), np.exp(phi0), times, energy, geometry, flow.beta,
                          flow.spherical, eps, rtol)
    system = out.pop("system")
    out.update(x=x, m=m, rho_min=float(np.min(out["rho"])))
    out["params"] = {
        "continuum": f"mmd-{geometry}", "equation": EQUATIONS[geometry], "energy": energy.spec, "n": int(n),
        "n_vertices": int(x.shape[0]), "beta": flow.beta, "spherical": flow.spherical,
        "kernel": energy.kernel, "sigma": float(energy.sigma),
        "eps": eps if geometry == "mmd" else None, "eps_absolute": system.eps,
        "integrator": "DOP853 (scipy solve_ivp) in " + ("log rho" if geometry == "fr" else "rho")
                      + ", dissipation integral carried as an extra unknown",
        "rtol": rtol, "rtol_effective": out["rtol_effective"], "n_rhs_evaluations": out["n_rhs_evaluations"],
    }
    out["wall"] = comm.allreduce(time.perf_counter() - started, op=MPI.MAX)
    return out
