"""Kernel-approximate flows on mesh vertices: the deterministic regularized references (MATH §5,
'General rule', and §2.3 (b)).

λ-FRk on the mesh (ZM Prop. 3.3; MATH C7): with ρ_i the nodal density, m_i the lumped masses and
the vertex quadrature (K_ρ f)(x_i) = Σ_j k(x_i, x_j) m_j ρ_j f_j,

    ρ̇_i = −β ρ_i (r_i − ⟨r⟩_ρ),    r = (K_ρ + λ)⁻¹ K_ρ ξ,    ξ_i = log(ρ_i/π_i)

(on M⁺ without the mean ⟨r⟩_ρ = Σ m_j ρ_j r_j / Σ m_j ρ_j).  In the weights w_i = m_i ρ_i this is
*exactly* the particle λ-FRk system with particles at the vertices and ξ̂_i = log(w_i/(m_i π_i)),
so a particle code and this mesh code must agree to round-off (tested), and every particle run has
a deterministic reference at fixed (k, λ).  The kernel matrix is dense (pdeflow.approx.krr):
O(N_v²) memory, 5k vertices ≈ 200 MB — beyond that use particles or a fast summation.  The dense
algebra is replicated on every rank (it is global anyway); only rank 0 writes.

Integrators: ``mirror`` — w ← w·exp(−βτ(r − ⟨r⟩)), renormalized to the previous mass in the
spherical case (the same step as the particle code; first order); ``ivp`` — the ODE for log w
integrated by scipy's DOP853 to rtol 1e-10 with the dissipation integral
∫ D dt, D = β Σ_i w_i (ξ_i − ⟨ξ⟩)(r_i − ⟨r⟩) (= β⟨ξ, (K_ρ+λ)⁻¹K_ρ ξ⟩ on M⁺), carried as an extra
unknown, so that the energy–dissipation balance residual F(ρ_T) − F(ρ_0) + ∫_0^T D dt (MATH §2.4,
EDB) is limited only by the ODE tolerance.

λ-Stein on the mesh (regularized SVGD, the kernel-approximate Wasserstein flow; ZM (4.4)–(4.7)):
∂_tρ = α∇·(ρv), v = (K_ρ + λ)⁻¹K_ρ∇ξ with the same vertex quadrature, v regressed on the lumped
projection of ∇ξ_h to the vertices, explicit Euler transport with the nodal flux ρ_i v_i.  See
:func:`solve_lambda_stein_mesh` for the discretization and why.
"""
from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse
import ufl
from mpi4py import MPI
from scipy.integrate import solve_ivp

from ..approx.kernels import Kernel
from ..approx.krr import krr, krr_dissipation
from ..problem import Problem, initial_density, integrate
from . import compat
from .space import P1Space

DENSE_VERTEX_LIMIT = 5000


def vertex_data(problem: Problem, n: int, comm=MPI.COMM_WORLD):
    """Vertices x (N, d), lumped masses m, log π and the initial ρ0 (exact lumped mass), on every rank."""
    space = P1Space(problem.domain, n, comm)
    rho0 = initial_density(problem)
    phi0 = space.nodal(rho0.log_density)
    mass0 = integrate(rho0, problem.domain)
    phi0 += math.log(mass0 / space.integral(np.exp(phi0)))
    data = (space.gathered_coords, space.gather(space.lumped_mass), space.gather(space.nodal(problem.target.log_density)),
            space.gather(phi0))
    x, m, log_pi, phi0 = comm.bcast(data if comm.rank == 0 else None, root=0)
    return x, m, log_pi, phi0


class LambdaFRkMesh:
    """Right-hand side and energy of the mesh λ-FRk system in the weights w = m∘ρ."""

    def __init__(self, x, m, log_pi, kernel: Kernel, lam: float, beta: float, spherical: bool):
        if x.shape[0] > DENSE_VERTEX_LIMIT:
            raise ValueError(
                f"{x.shape[0]} vertices: the dense kernel matrix of the mesh lambda-FRk is limited to "
                f"{DENSE_VERTEX_LIMIT} vertices (about {DENSE_VERTEX_LIMIT**2 * 8 / 1e9:.1f} GB)"
            )
        self.x, self.m, self.log_pi = x, m, log_pi
        self.kernel, self.lam, self.beta, self.spherical = kernel, lam, beta, spherical
        self.gram = kernel.gram(x, x)  # the vertices do not move: build the kernel matrix once

    def xi(self, w):
        return np.log(w / self.m) - self.log_pi

    def growth(self, w):
        """(r − ⟨r⟩, ξ, r): the growth field and its ingredients at weights w."""
        xi = self.xi(w)
        r = krr(self.kernel, self.x, w, xi, self.lam, gram=self.gram) if self.lam > 0 else xi
        g = r - (np.dot(w, r) / w.sum() if self.spherical else 0.0)
        return g, xi, r

    def dissipation(self, w, xi, r) -> float:
        if self.spherical:
            xi = xi - np.dot(w, xi) / w.sum()
            r = r - np.dot(w, r) / w.sum()
        return self.beta * krr_dissipation(w, xi, r)

    def energy(self, w) -> float:
        """Lumped KL: Σ m_i (ρ_i log(ρ_i/π_i) − ρ_i + π_i)."""
        rho = w / self.m
        return float(np.dot(self.m, rho * (np.log(rho) - self.log_pi) - rho + np.exp(self.log_pi)))


def solve_lambda_frk_mesh(problem: Problem, n: int, tau: float, lam: float, kernel: Kernel,
                          integrator: str = "mirror", comm=MPI.COMM_WORLD, rtol: float = 1e-10) -> dict:
    """λ-FRk on the vertices of the n-per-direction box mesh; returns a dict with ``t``, ``x``,
    ``m``, ``rho`` (n_snap × N_v), ``energy`` (at snapshots), ``edb_residual`` (ivp only) and
    per-step diagnostics (mirror only)."""
    if problem.flow.alpha != 0:
        raise ValueError("the mesh lambda-FRk reference is a pure Fisher-Rao flow: it needs alpha = 0")
    if lam < 0:
        raise ValueError("lam must be >= 0")
    t0 = time.perf_counter()
    x, m, log_pi, phi0 = vertex_data(problem, n, comm)
    system = LambdaFRkMesh(x, m, log_pi, kernel, lam, problem.flow.beta, problem.flow.spherical)
    w = m * np.exp(phi0)
    times = np.array(problem.snapshot_times())
    out = {"t": times, "x": x, "m": m, "steps": []}
    beta = problem.flow.beta
    if integrator == "mirror":
        snaps, energies = [w / m], [system.energy(w)]
        t = 0.0
        for t_snap in times[1:]:
            while t_snap - t > 1e-12 * problem.T:
                dt = min(tau, t_snap - t)
                g, xi, r = system.growth(w)
                D = system.dissipation(w, xi, r)
                mass = w.sum()
                w = w * np.exp(-beta * dt * g)
                if problem.flow.spherical:
                    w *= mass / w.sum()
                t = t_snap if abs(t + dt - t_snap) < 1e-12 * problem.T else t + dt
                out["steps"].append({"t": t, "tau": dt, "dissipation": D, "energy": system.energy(w), "mass": float(w.sum())})
            snaps.append(w / m)
            energies.append(system.energy(w))
        out["rho"], out["energy"] = np.array(snaps), np.array(energies)
    elif integrator == "ivp":
        def rhs(_, y):
            lw = y[:-1]
            wv = np.exp(lw)
            g, xi, r = system.growth(wv)
            return np.append(-beta * g, system.dissipation(wv, xi, r))

        sol = solve_ivp(rhs, (0.0, problem.T), np.append(np.log(w), 0.0), method="DOP853", t_eval=times,
                        rtol=rtol, atol=rtol * 1e-2)
        if not sol.success:
            raise RuntimeError(f"mesh lambda-FRk ODE failed: {sol.message}")
        W = np.exp(sol.y[:-1].T)
        out["rho"] = W / m[None, :]
        out["energy"] = np.array([system.energy(wk) for wk in W])
        out["dissipation_integral"] = sol.y[-1]
        out["edb_residual"] = out["energy"] - out["energy"][0] + sol.y[-1]
        out["n_rhs_evaluations"] = int(sol.nfev)
    else:
        raise ValueError(f"unknown integrator {integrator!r}; choose mirror or ivp")
    out["params"] = {"n": n, "tau": tau, "lam": lam, "integrator": integrator, **kernel.describe(), "n_vertices": x.shape[0]}
    out["wall"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------------------------
# λ-Stein (regularized SVGD / kernel-approximate Wasserstein) on the mesh vertices
# --------------------------------------------------------------------------------------------

STEIN_FLUXES = ("nodal", "product")


class LambdaSteinMesh:
    """Operators of the mesh λ-Stein system on one serial P1 space (dof order, not gathered order).

    ``C[k]`` is the sparse matrix C_k,ij = ∫ ψ_i ∂_kψ_j dx (exact with one-point quadrature), so that
    the lumped L² projection of ∇ξ_h to the vertices is G_k = C_k ξ / m and the nodal-flux transport
    step is m∘ρ̇ = −α Σ_k C_kᵀ(ρ∘v_k) (see :func:`solve_lambda_stein_mesh`)."""

    def __init__(self, space: P1Space, log_pi: np.ndarray, kernel: Kernel, lam: float, alpha: float,
                 flux: str = "nodal"):
        if space.comm.size != 1:
            raise ValueError("the mesh lambda-Stein operators are built on a serial mesh (MPI.COMM_SELF)")
        if flux not in STEIN_FLUXES:
            raise ValueError(f"unknown flux {flux!r}; choose from {', '.join(STEIN_FLUXES)}")
        n_v = space.n_owned
        if n_v > DENSE_VERTEX_LIMIT:
            raise ValueError(
                f"{n_v} vertices: the dense kernel matrix of the mesh lambda-Stein is limited to "
                f"{DENSE_VERTEX_LIMIT} vertices (about {DENSE_VERTEX_LIMIT**2 * 8 / 1e9:.1f} GB)"
            )
        self.space, self.x, self.m, self.log_pi = space, space.coords, space.lumped_mass, log_pi
        self.kernel, self.lam, self.alpha, self.flux = kernel, lam, alpha, flux
        self.dim = space.dim
        self.gram = kernel.gram(self.x, self.x)  # the vertices do not move: build the kernel matrix once
        u, w = ufl.TrialFunction(space.V), ufl.TestFunction(space.V)
        dx1 = compat.dx(space.mesh, degree=1)
        self.C = []
        for k in range(self.dim):
            A = compat.assemble_matrix(compat.form(ufl.grad(u)[k] * w * dx1))
            indptr, indices, data = A.getValuesCSR()
            self.C.append(scipy.sparse.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(n_v, n_v)))
            A.destroy()
        self.CT = [c.T.tocsr() for c in self.C]
        if flux == "product":
            # ∫ ρ_h v_h·∇ψ_i with ρ_h, v_h the P1 interpolants (degree 2: exact)
            self._rho_fn = space.function(name="rho_n")
            self._v_fns = [space.function(name=f"v{k}") for k in range(self.dim)]
            vh = ufl.as_vector(self._v_fns)
            self._transport_form = compat.form(self._rho_fn * ufl.inner(vh, ufl.grad(w)) * compat.dx(space.mesh, degree=2))

    def xi(self, rho: np.ndarray) -> np.ndarray:
        return np.log(rho) - self.log_pi

    def gradient(self, xi: np.ndarray) -> np.ndarray:
        """G_i = (1/m_i) ∫ ∇ξ_h ψ_i, shape (N_v, d)."""
        return np.column_stack([(c @ xi) / self.m for c in self.C])

    def velocity(self, rho: np.ndarray, G: np.ndarray) -> np.ndarray:
        """v = (K_ρ + λ)⁻¹ K_ρ G with the vertex quadrature (weights m∘ρ); v = G for λ = 0."""
        if self.lam == 0:
            return G
        return krr(self.kernel, self.x, self.m * rho, G, self.lam, gram=self.gram)

    def rate(self, rho: np.ndarray, v: np.ndarray) -> np.ndarray:
        """ρ̇ at the vertices: −(α/m_i) ∫ I_h(ρv)·∇ψ_i (nodal) or −(α/m_i) ∫ ρ_h v_h·∇ψ_i (product)."""
        if self.flux == "nodal":
            div = sum(ct @ (rho * v[:, k]) for k, ct in enumerate(self.CT))
        else:
            compat.set_owned(self._rho_fn, rho)
            for k, fn in enumerate(self._v_fns):
                compat.set_owned(fn, np.ascontiguousarray(v[:, k]))
            div = compat.assemble_owned_vector(self._transport_form)
        return -self.alpha * div / self.m

    def dissipation(self, rho: np.ndarray, G: np.ndarray, v: np.ndarray) -> float:
        """α Σ_i m_i ρ_i G_i·v_i = α⟨G, (K_ρ+λ)⁻¹K_ρ G⟩ in the vertex quadrature (≥ 0)."""
        return self.alpha * krr_dissipation(self.m * rho, G, v)

    def energy(self, rho: np.ndarray) -> float:
        """Lumped KL: Σ m_i (ρ_i log(ρ_i/π_i) − ρ_i + π_i)."""
        return float(np.dot(self.m, rho * (np.log(rho) - self.log_pi) - rho + np.exp(self.log_pi)))


def solve_lambda_stein_mesh(problem: Problem, n: int, tau: float, lam: float, kernel: Kernel,
                            comm=MPI.COMM_WORLD, flux: str = "nodal") -> dict:
    """λ-Stein (regularized SVGD, kernel-approximate Wasserstein flow of KL; ZM (4.4)–(4.7), MATH
    §2.3 (b)) on the vertices of the n-per-direction box mesh:

        ∂_tρ = α∇·(ρ v),   v = (K_ρ + λ)⁻¹K_ρ∇ξ,   ξ = log(ρ/π),   (K_ρ f)(x_i) = Σ_j k(x_i, x_j) m_j ρ_j f_j,

    no flux through ∂Ω.  It is the deterministic reference at fixed (k, λ) of SVGD-type particle
    methods (MATH §5, 'General rule', limit 1); λ → 0 recovers the Wasserstein flow (limit 2).

    Discretization (ρ_i nodal P1 values, m_i = ∫ψ_i lumped masses, ξ_h the P1 interpolant of ξ):

    * G_i = (1/m_i) ∫ ∇ξ_h ψ_i dx — the lumped L² projection of the cell-wise constant ∇ξ_h to the
      vertices.  The kernel regression needs the force at the same points as the weights m_iρ_i (the
      "particles" at the vertices), and ∇ξ_h has no vertex values.  G_k = C_k ξ/m with the constant
      matrices C_k,ij = ∫ψ_i ∂_kψ_j, assembled once.
    * v = krr(kernel, x, m∘ρ, G, λ) (vector-valued regression; v = G at λ = 0): exactly the
      particle λ-Stein velocity with particles at the vertices and weights m_iρ_i.
    * Transport, explicit Euler: m_i(ρ_i^{n+1} − ρ_i^n)/τ = −α ∫ I_h(ρⁿv)·∇ψ_i dx = −α Σ_k (C_kᵀ(ρⁿ∘v_k))_i,
      with I_h(ρv) the vector-P1 interpolant of the nodal flux ρ_i v_i (``flux="nodal"``, default).
      Why: the transport matrix is then the exact lumped adjoint of the discrete gradient
      (summation by parts), so the semi-discrete energy identity holds exactly,
      dF_h/dt = Σ_i m_i ξ_i ρ̇_i = −α Σ_i m_iρ_i G_i·v_i = −α⟨G, (K_ρ+λ)⁻¹K_ρ G⟩_{m∘ρ} ≤ 0,
      the same structure as the particle λ-Stein system; the recorded dissipation is this rate.
      ``flux="product"`` uses ∫ ρⁿ_h v_h·∇ψ_i instead (ρ_h, v_h the P1 interpolants; the two differ
      by O(h²)), whose energy rate is only approximately −D.  Both conserve Σ m_iρ_i exactly
      because Σ_i ∇ψ_i = 0, and the no-flux condition is the natural one (no boundary term).
      Explicit Euler because the step is then one kernel regression, like a particle step; it is
      first order and only conditionally stable (τ ≲ h²/α in the diffusive part, less where |v|
      is large), so positivity is checked after every step and a ValueError is raised instead of
      returning a negative density.

    The mesh is built on MPI.COMM_SELF on every rank (the dense kernel algebra, ≤ DENSE_VERTEX_LIMIT
    vertices, is global anyway), so every rank of ``comm`` returns the same result; ``comm`` only
    reduces the wall time.  Returns ``t``, ``x`` (vertices in lexicographic order, as the gathered
    output of the reference solver), ``m``, ``rho`` (n_snap × N_v), ``energy`` (lumped KL at the
    snapshots), ``steps`` (t, tau, mass, energy after the step; dissipation α Σ m_iρ_iG_i·v_i at the
    start of the step), ``params`` and ``wall``.  Snapshot times are landed exactly.
    """
    if problem.flow.beta != 0:
        raise ValueError("the mesh lambda-Stein reference is a pure transport (Wasserstein) flow: it needs beta = 0")
    if problem.source is not None:
        raise ValueError("the mesh lambda-Stein reference has no manufactured source term")
    if not (lam >= 0 and math.isfinite(lam)):
        raise ValueError("lam must be >= 0")
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive, got {tau!r}")
    t0 = time.perf_counter()
    space = P1Space(problem.domain, n, MPI.COMM_SELF)
    log_pi = space.nodal(problem.target.log_density)
    rho0 = initial_density(problem)
    phi0 = space.nodal(rho0.log_density)
    phi0 += math.log(integrate(rho0, problem.domain) / space.integral(np.exp(phi0)))
    system = LambdaSteinMesh(space, log_pi, kernel, lam, problem.flow.alpha, flux)
    m = space.lumped_mass
    rho = np.exp(phi0)
    times = np.array(problem.snapshot_times())
    snaps, energies, steps = [rho], [system.energy(rho)], []
    t = 0.0
    for t_snap in times[1:]:
        while t_snap - t > 1e-12 * problem.T:
            dt = min(tau, t_snap - t)
            if t_snap - (t + dt) < 1e-9 * tau:  # no sliver step before the snapshot
                dt = t_snap - t
            G = system.gradient(system.xi(rho))
            v = system.velocity(rho, G)
            D = system.dissipation(rho, G, v)
            rho_new = rho + dt * system.rate(rho, v)
            t = t_snap if abs(t + dt - t_snap) < 1e-12 * problem.T else t + dt
            if not np.all(rho_new > 0):  # also catches NaN
                low = float(np.nanmin(rho_new)) if np.any(np.isfinite(rho_new)) else float("nan")
                raise ValueError(
                    f"time step too large for the explicit lambda-Stein step: ρ became negative at t = {t:.6g} "
                    f"(min ρ = {low:.3g}, tau = {dt:.3g}); reduce tau"
                )
            rho = rho_new
            steps.append({"t": t, "tau": dt, "mass": float(np.dot(m, rho)), "energy": system.energy(rho), "dissipation": D})
        snaps.append(rho)
        energies.append(system.energy(rho))
    out = {
        "t": times,
        "x": space.gathered_coords,
        "m": space.gather(m),
        "rho": np.array([space.gather(r) for r in snaps]),
        "energy": np.array(energies),
        "steps": steps,
        "params": {"n": n, "tau": tau, "lam": lam, "alpha": problem.flow.alpha, "integrator": "explicit-euler",
                   "flux": flux, **kernel.describe(), "n_vertices": space.n_owned},
    }
    out["wall"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    return out
