"""The UFL counterpart of :mod:`pdeflow.energies`: the integrand π φ(ρ/π) of a local energy and its
first variation φ'(ρ/π) as UFL expressions of finite-element functions, and the *consistent*
(quadrature, not lumped) energy F(ρ_h) = ∫_Ω π_h φ(ρ_h/π_h) dx of P1 functions.

The schemes use the lumped F_h = Σ m_i π_i φ(ρ_i/π_i), which makes their discrete energy identity
exact (fem/scheme.py); F(ρ_h) differs from it by the lumping error O(h²), which
tests/unit/test_energies.py measures — an independent check of the numpy side (the same φ written
twice, in numpy and in UFL).
"""
from __future__ import annotations

import ufl

from ..energies import get_energy
from . import compat


def integrand(energy, rho, pi):
    """π φ(ρ/π) for UFL expressions ρ, π > 0 (E1, E3, E4 of MATH §1)."""
    e = get_energy(energy)
    s = rho / pi
    if e.name == "kl":
        return rho * ufl.ln(s) - rho + pi
    if e.name == "chi2":
        return pi * (s - 1) ** 2
    if e.name == "power":
        p = float(e.p)
        if p == 0:
            return pi * (s - 1 - ufl.ln(s))
        return pi * (s**p - p * (s - 1) - 1) / (p * (p - 1))
    raise ValueError(f"energy {e.spec}: no local integrand (nonlocal energies are assembled on vertices)")


def first_variation(energy, rho, pi):
    """ξ = φ'(ρ/π) as a UFL expression."""
    e = get_energy(energy)
    s = rho / pi
    if e.name == "kl":
        return ufl.ln(s)
    if e.name == "chi2":
        return 2 * (s - 1)
    if e.name == "power":
        p = float(e.p)
        return 1 - 1 / s if p == 0 else (s ** (p - 1) - 1) / (p - 1)
    raise ValueError(f"energy {e.spec}: no local first variation")


def consistent_energy(space, energy, rho_nodal, pi_nodal, degree: int = 6) -> float:
    """∫_Ω π_h φ(ρ_h/π_h) dx of the P1 interpolants of the owned nodal values (all ranks)."""
    rho, pi = space.function(rho_nodal, name="rho"), space.function(pi_nodal, name="pi")
    M = compat.form(integrand(energy, rho, pi) * compat.dx(space.mesh, degree=degree))
    return compat.assemble_scalar(M, space.comm)
