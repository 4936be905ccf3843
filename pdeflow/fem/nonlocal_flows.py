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
"""
from __future__ import annotations

import math
import time

import numpy as np
from mpi4py import MPI
from scipy.integrate import solve_ivp

from ..approx.kernels import Kernel
from ..approx.krr import krr, krr_dissipation
from ..problem import Problem, initial_density, integrate
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
