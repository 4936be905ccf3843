"""Energies F(ρ) of the gradient flows and their first variations ξ = δF/δρ (MATH §1) — numpy side.

A case names its energy by a spec string, ``NAME[:key=value,...]`` (the syntax of ``--continuum``):

=================  ===========================================  ==========================================
spec               F(ρ)                                         ξ = δF/δρ
=================  ===========================================  ==========================================
``kl``             ∫ ρ log(ρ/π) − ρ + π              (E1)        log(ρ/π)
``chi2``           ∫ (ρ/π − 1)² π                    (E3)        2(ρ/π − 1)
``reverse-kl``     ∫ π φ_0(ρ/π), φ_0 = s − 1 − log s (E4, p=0)   1 − π/ρ
``power:p=P``      ∫ π φ_p(ρ/π), φ_p = (s^p − p(s−1) − 1)/(p(p−1))  (E4)   ((ρ/π)^{p−1} − 1)/(p − 1)
``mmd:sigma=L``    ½ ∬ k d(ρ−π) d(ρ−π)               (E6)        f_{ρ,π} = 𝒦(ρ − π) (the witness function)
=================  ===========================================  ==========================================

``power:p=1`` is KL, ``power:p=0`` reverse KL, ``power:p=2`` is ½χ², ``power:p=0.5`` is ½FR²(·, π) (E5);
the spec is canonicalized (``power:p=1`` → ``kl``) so that one energy has one name, one checksum.

A **local** energy is F(ρ) = ∫ π φ(ρ/π) with φ convex, φ(1) = φ'(1) = 0; it is described by φ, φ' and
φ'' of the ratio s = ρ/π.  The finite-element schemes (:mod:`pdeflow.fem.scheme`) evaluate it with the
lumped (vertex) rule, F_h(ρ) = Σ_i m_i π_i φ(ρ_i/π_i), and its Bregman divergence
D_F(a‖b) = F(a) − F(b) − ⟨ξ(b), a − b⟩ = Σ_i m_i π_i [φ(a_i/π_i) − φ(b_i/π_i) − φ'(b_i/π_i)(a_i − b_i)/π_i].
The ``mmd`` energy is **nonlocal**: on a weighted point set (vertices with masses m_i, or particles)
F = ½ (w − v)ᵀ 𝖪 (w − v) with w_i = m_i ρ_i, v_i = m_i π_i and 𝖪_ij = k(x_i, x_j) (the dense kernel
matrix of the vertex quadrature); ξ_i = (𝖪(w − v))_i.

Each energy declares the flows its reference solver supports (``supports``): the local ones all of
W / FR / WFR (on M⁺ and spherical); MMD the FR and MMD-geometry flows (:mod:`pdeflow.fem.mmd_flows`).
This module is numpy only; the UFL counterpart is :mod:`pdeflow.fem.energy_forms`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict

import numpy as np


class EnergyError(ValueError):
    """Bad energy name or parameters (one line)."""


def _parse(spec: str) -> tuple:
    if not isinstance(spec, str) or not spec.strip():
        raise EnergyError("energy: expected NAME[:key=value,...]")
    name, _, rest = spec.strip().partition(":")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise EnergyError(f"energy {spec!r}: expected key=value, got {item!r}")
        raw = raw.strip()
        try:
            value = float(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return name.strip(), params


class Energy:
    """Base class: ``name``, ``params``, ``spec`` (canonical string) and ``local``."""

    name: str = ""
    local: bool = True
    supports: tuple = ()  # geometry families of the reference solver: "W", "FR", "WFR", "MMD"

    @property
    def params(self) -> dict:
        return {}

    @property
    def spec(self) -> str:
        p = self.params
        return self.name + (":" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(p.items())) if p else "")

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "params": self.params, "local": self.local,
                "formula": self.formula}

    formula: str = ""

    def __eq__(self, other):
        return isinstance(other, Energy) and other.spec == self.spec

    def __hash__(self):
        return hash(self.spec)

    def __repr__(self):
        return f"Energy({self.spec!r})"


def _fmt(v) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


class LocalEnergy(Energy):
    """F(ρ) = ∫ π φ(ρ/π): subclasses give φ, φ', φ'' of s = ρ/π (arrays, s > 0)."""

    local = True
    supports = ("W", "FR", "WFR")

    def phi(self, s):
        raise NotImplementedError

    def dphi(self, s):
        raise NotImplementedError

    def ddphi(self, s):
        raise NotImplementedError

    # --- in terms of ρ and π ------------------------------------------------------------------
    def density(self, rho, pi):
        """The integrand π φ(ρ/π)."""
        rho, pi = np.asarray(rho, float), np.asarray(pi, float)
        return pi * self.phi(rho / pi)

    def value(self, rho, pi, weights) -> float:
        """Σ_i weights_i π_i φ(ρ_i/π_i) (the lumped F_h with weights = lumped masses)."""
        return float(np.dot(weights, self.density(rho, pi)))

    def xi(self, rho, pi):
        """First variation ξ = φ'(ρ/π)."""
        rho, pi = np.asarray(rho, float), np.asarray(pi, float)
        return self.dphi(rho / pi)

    def dxi(self, rho, pi):
        """∂ξ/∂ρ = φ''(ρ/π)/π (> 0: the energy is strictly convex)."""
        rho, pi = np.asarray(rho, float), np.asarray(pi, float)
        return self.ddphi(rho / pi) / pi

    def rho_dxi(self, rho, pi):
        """ρ ∂ξ/∂ρ = s φ''(s): the factor between a change of log ρ and the change of ξ."""
        s = np.asarray(rho, float) / np.asarray(pi, float)
        return s * self.ddphi(s)

    def bregman(self, a, b, pi, weights) -> float:
        """D_F(a‖b) = F(a) − F(b) − ⟨ξ(b), a − b⟩ ≥ 0 with the same weights."""
        a, b, pi = (np.asarray(v, float) for v in (a, b, pi))
        sa, sb = a / pi, b / pi
        return float(np.dot(weights, pi * (self.phi(sa) - self.phi(sb) - self.dphi(sb) * (sa - sb))))

    def xi_from_log(self, log_rho, log_pi):
        """ξ from log ρ and log π without forming ratios that under/overflow where both are tiny."""
        return self.dphi(np.exp(np.asarray(log_rho, float) - np.asarray(log_pi, float)))


@dataclass(frozen=True, eq=False)
class KL(LocalEnergy):
    name = "kl"
    formula = "KL(rho|pi) = int rho log(rho/pi) - rho + pi"

    def phi(self, s):
        s = np.asarray(s, float)
        return s * np.log(s) - s + 1.0

    def dphi(self, s):
        return np.log(s)

    def ddphi(self, s):
        return 1.0 / np.asarray(s, float)

    def xi_from_log(self, log_rho, log_pi):
        return np.asarray(log_rho, float) - np.asarray(log_pi, float)

    def density(self, rho, pi):
        rho, pi = np.asarray(rho, float), np.asarray(pi, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = rho * (np.log(rho) - np.log(pi)) - rho + pi
        return np.where(rho > 0, out, pi)


@dataclass(frozen=True, eq=False)
class ChiSquare(LocalEnergy):
    name = "chi2"
    formula = "chi2(rho|pi) = int (rho/pi - 1)^2 pi"

    def phi(self, s):
        s = np.asarray(s, float)
        return (s - 1.0) ** 2

    def dphi(self, s):
        return 2.0 * (np.asarray(s, float) - 1.0)

    def ddphi(self, s):
        return np.full_like(np.asarray(s, float), 2.0)


@dataclass(frozen=True, eq=False)
class Power(LocalEnergy):
    """The power entropies D_{φ_p} of ZM (1.15); p = 0 is reverse KL (named ``reverse-kl``)."""

    p: float = 0.5
    name = "power"

    def __post_init__(self):
        if isinstance(self.p, bool) or not (isinstance(self.p, (int, float)) and math.isfinite(self.p)):
            raise EnergyError("energy power: p must be a finite number")
        if self.p in (1.0,):
            raise EnergyError("energy power:p=1 is KL: name it 'kl'")

    @property
    def params(self) -> dict:
        return {} if self.p == 0 else {"p": float(self.p)}

    @property
    def spec(self) -> str:
        return "reverse-kl" if self.p == 0 else f"power:p={_fmt(float(self.p))}"

    @property
    def formula(self) -> str:
        if self.p == 0:
            return "reverse KL = int pi phi_0(rho/pi), phi_0(s) = s - 1 - log s"
        return f"D_phi_p, phi_p(s) = (s^p - p(s-1) - 1)/(p(p-1)), p = {self.p:g}"

    def phi(self, s):
        s = np.asarray(s, float)
        p = self.p
        if p == 0:
            return (s - 1.0) - np.log1p(s - 1.0)
        # s^p − 1 by expm1: near s = 1 the plain form loses digits as ε_mach/(s − 1)² (5 % at |s−1| = 1e-7)
        return (np.expm1(p * np.log(s)) - p * (s - 1.0)) / (p * (p - 1.0))

    def dphi(self, s):
        s = np.asarray(s, float)
        p = self.p
        if p == 0:
            return 1.0 - 1.0 / s
        return (s ** (p - 1.0) - 1.0) / (p - 1.0)

    def ddphi(self, s):
        return np.asarray(s, float) ** (self.p - 2.0)

    def xi_from_log(self, log_rho, log_pi):
        # s^{p−1} = exp((p−1)(log ρ − log π)): no ratio of two tiny numbers
        ell = np.asarray(log_rho, float) - np.asarray(log_pi, float)
        return np.expm1((self.p - 1.0) * ell) / (self.p - 1.0)


@dataclass(frozen=True, eq=False)
class HalfMMD(Energy):
    """½MMD²_k(ρ, π) with a kernel of :mod:`pdeflow.approx.kernels` (E6); nonlocal."""

    sigma: float = 1.0
    kernel: str = "gaussian"
    name = "mmd"
    local = False
    supports = ("FR", "MMD")

    def __post_init__(self):
        if isinstance(self.sigma, bool) or not (isinstance(self.sigma, (int, float)) and self.sigma > 0
                                                and math.isfinite(self.sigma)):
            raise EnergyError("energy mmd: sigma must be a finite positive number")
        from .approx.kernels import KERNELS

        if self.kernel not in KERNELS or self.kernel in ("bilinear",):
            raise EnergyError(f"energy mmd: kernel must be a translation-invariant kernel of "
                              f"{', '.join(k for k in KERNELS if k != 'bilinear')}, got {self.kernel!r}")

    @property
    def params(self) -> dict:
        return {"sigma": float(self.sigma), "kernel": self.kernel}

    formula = "1/2 MMD_k^2(rho, pi) = 1/2 iint k d(rho-pi) d(rho-pi)"

    def kernel_object(self):
        from .approx.kernels import Kernel

        return Kernel(self.kernel, float(self.sigma))

    def gram(self, x):
        """𝖪_ij = k(x_i, x_j) for points x (N, d)."""
        return self.kernel_object().gram(x, x)

    def value(self, w, v, gram) -> float:
        """½ (w − v)ᵀ𝖪(w − v) for weights w (of ρ) and v (of π) on the same points."""
        d = np.asarray(w, float) - np.asarray(v, float)
        return 0.5 * float(d @ (gram @ d))

    def xi(self, w, v, gram):
        """The witness function at the points: (𝖪(w − v))_i."""
        return gram @ (np.asarray(w, float) - np.asarray(v, float))

    def bregman(self, a, b, gram) -> float:
        """D_F(a‖b) = ½MMD²(a, b) (F is quadratic)."""
        d = np.asarray(a, float) - np.asarray(b, float)
        return 0.5 * float(d @ (gram @ d))


def _power(params):
    if "p" not in params:
        raise EnergyError("energy power: needs p (e.g. power:p=0.5)")
    p = params.pop("p")
    if isinstance(p, str):
        raise EnergyError(f"energy power: p must be a number, got {p!r}")
    return Power(float(p))


def _mmd(params):
    sigma = params.pop("sigma", 1.0)
    kernel = params.pop("kernel", "gaussian")
    if isinstance(sigma, str):
        raise EnergyError(f"energy mmd: sigma must be a number, got {sigma!r}")
    return HalfMMD(float(sigma), str(kernel))


# name → constructor from the parsed parameters (each pops the keys it knows; leftovers are refused)
ENERGIES: Dict[str, Callable[[dict], Energy]] = {
    "kl": lambda params: KL(),
    "chi2": lambda params: ChiSquare(),
    "reverse-kl": lambda params: Power(0.0),
    "power": _power,
    "mmd": _mmd,
}


def get_energy(spec) -> Energy:
    """The :class:`Energy` of a spec string (or an Energy, returned as is); EnergyError if bad."""
    if isinstance(spec, Energy):
        return spec
    name, params = _parse(spec)
    if name not in ENERGIES:
        raise EnergyError(f"unknown energy {name!r}; choose from {', '.join(ENERGIES)}")
    if name == "power" and params.get("p") == 1.0:
        return KL()
    if name == "power" and params.get("p") == 0.0:
        params.pop("p")
        return Power(0.0)
    energy = ENERGIES[name](params)
    if params:
        raise EnergyError(f"energy {name}: unknown parameter(s) {', '.join(sorted(params))}")
    return energy


def canonical(spec) -> str:
    """The one name of an energy spec (``power:p=1`` → ``kl``, ``power:p=0`` → ``reverse-kl``)."""
    return get_energy(spec).spec
