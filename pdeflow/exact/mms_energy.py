"""Manufactured solutions of the W / FR / WFR flows of any local energy on Ω = (0, 1)^d, d = 1, 2
(MATH §3.5, recipe A, with the energy's first variation in place of log(ρ/π)).

    ∂_t ρ = α ∇·(ρ ∇ξ) − β ρ ξ + f,     ξ = φ'(ρ/π),     no-flux ρ ∂_n ξ = 0 on ∂Ω,

on M⁺ (no spherical multiplier), with

    π(x)      = Π_k (1 + ½ cos π x_k),
    ρ_ex(t,x) = 1 + 0.4 e^{−t} cos 2πx_1 · c(x) + 0.2 e^{−2t} cos πx_1,   c = 1 (1-D), cos πx_2 (2-D),

and f = ∂_t ρ_ex − [α ∇·(ρ_ex ∇ξ_ex) − β ρ_ex ξ_ex] derived with sympy for the energy and (α, β) of
the case.  Every mode is a cosine, so ∂_n ρ_ex = ∂_n π = 0 on the faces; since ∇ξ = φ''(s) ∇s with
s = ρ/π, ∂_n ξ_ex = 0 and the no-flux condition holds for every energy.  ρ_ex ≥ 0.4 > 0.

The source is derived for one (energy, α, β): :func:`energy_mms_problem` makes the problem, and
:func:`pdeflow.cases.apply_overrides` re-derives it when ``energy``, ``alpha`` or ``beta`` change;
:func:`exact_solution` (pdeflow.exact) returns ρ_ex only while the source matches the problem.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..energies import get_energy
from ..geometry import Flow
from ..problem import Domain, FunctionDensity, Problem
from . import ExactSolution


def _dphi_symbolic(energy, s):
    """φ'(s) of a local energy as a sympy expression (the first variations of MATH §1)."""
    if energy.name == "kl":
        return sp.log(s)
    if energy.name == "chi2":
        return 2 * (s - 1)
    if energy.name == "power":
        p = sp.nsimplify(energy.p)
        return 1 - 1 / s if p == 0 else (s ** (p - 1) - 1) / (p - 1)
    raise ValueError(f"energy {energy.spec}: no manufactured solution (local energies only)")


@lru_cache(maxsize=None)
def _symbolic(dim: int):
    t = sp.symbols("t", real=True)
    xs = sp.symbols("x0:%d" % dim, real=True)
    pi = sp.Integer(1)
    for xk in xs:
        pi = pi * (1 + sp.Rational(1, 2) * sp.cos(sp.pi * xk))
    c = sp.cos(sp.pi * xs[1]) if dim == 2 else 1
    rho = 1 + sp.Rational(2, 5) * sp.exp(-t) * sp.cos(2 * sp.pi * xs[0]) * c \
        + sp.Rational(1, 5) * sp.exp(-2 * t) * sp.cos(sp.pi * xs[0])
    return t, xs, rho, pi


@lru_cache(maxsize=None)
def _numeric_solution(dim: int):
    t, xs, rho, pi = _symbolic(dim)
    return sp.lambdify((t, *xs), rho, "numpy"), sp.lambdify(xs, sp.log(pi), "numpy")


@lru_cache(maxsize=None)
def _numeric_source(spec: str, alpha: float, beta: float, dim: int):
    t, xs, rho, pi = _symbolic(dim)
    xi = _dphi_symbolic(get_energy(spec), rho / pi)
    a, b = sp.nsimplify(alpha), sp.nsimplify(beta)
    div = sum(sp.diff(rho * sp.diff(xi, xk), xk) for xk in xs)
    f = sp.diff(rho, t) - (a * div - b * rho * xi)
    return sp.lambdify((t, *xs), f, "numpy")


def _coords(x, dim):
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    return [x[k] for k in range(dim)]


def _values(fn, x, dim, *lead):
    cs = _coords(x, dim)
    return np.broadcast_to(np.asarray(fn(*lead, *cs), dtype=float), cs[0].shape).copy()


class _Source:
    """f(t, x) for points (d, n); remembers what it was derived for (``derived_for``)."""

    def __init__(self, spec: str, alpha: float, beta: float, dim: int):
        self.derived_for = (spec, float(alpha), float(beta), dim)
        self._fn = _numeric_source(spec, float(alpha), float(beta), dim)
        self.dim = dim

    def __call__(self, t, x):
        return _values(self._fn, x, self.dim, float(t))


def rho_exact(t: float, x, dim: int) -> np.ndarray:
    return _values(_numeric_solution(dim)[0], x, dim, float(t))


def log_target(x, dim: int) -> np.ndarray:
    return _values(_numeric_solution(dim)[1], x, dim)


class EnergyManufacturedSolution(ExactSolution):
    def __init__(self, dim: int, spec: str, alpha: float, beta: float):
        self.dim, self.spec, self.alpha, self.beta = dim, spec, alpha, beta

    def log_density(self, t, x):
        return np.log(rho_exact(t, x, self.dim))

    def density(self, t, x):
        return rho_exact(t, x, self.dim)

    def mass(self, t) -> float:
        return 1.0  # every cosine mode integrates to zero over (0, 1)^d

    def describe(self) -> dict:
        c = " cos(pi y)" if self.dim == 2 else ""
        return {
            "kind": "mms-energy",
            "method": "manufactured solution with sympy source term for the case's energy (MATH 3.5 recipe A)",
            "rho_exact": f"1 + 0.4 exp(-t) cos(2 pi x){c} + 0.2 exp(-2 t) cos(pi x)",
            "target": "prod_k (1 + 0.5 cos(pi x_k))",
            "energy": self.spec, "alpha": self.alpha, "beta": self.beta, "spherical": False,
        }


def matches(problem) -> bool:
    """True when the problem's source was derived for its own energy, α, β and dimension."""
    src = problem.source
    return (isinstance(src, _Source) and not problem.flow.spherical
            and src.derived_for == (problem.energy, float(problem.flow.alpha), float(problem.flow.beta), problem.dim))


def energy_mms_problem(energy: str = "chi2", alpha: float = 0.7, beta: float = 1.0, dim: int = 1,
                       name: str = None, T: float = 1.0, snapshots=(0.25, 0.5, 1.0)) -> Problem:
    """The manufactured case of the given energy and geometry (module docstring)."""
    spec = get_energy(energy).spec
    if dim not in (1, 2):
        raise ValueError("manufactured energy cases exist in 1-D and 2-D")
    c = " cos(pi y)" if dim == 2 else ""
    return Problem(
        name=name or f"mms-{dim}d",
        domain=Domain((0.0,) * dim, (1.0,) * dim),
        target=FunctionDensity(lambda x: log_target(x, dim), dim, "prod_k (1 + 0.5 cos(pi x_k))"),
        initial=FunctionDensity(lambda x: np.log(rho_exact(0.0, x, dim)), dim,
                                f"1 + 0.4 cos(2 pi x){c} + 0.2 cos(pi x)"),
        flow=Flow(float(alpha), float(beta), spherical=False),
        energy=spec, T=T, snapshots=snapshots,
        source=_Source(spec, alpha, beta, dim),
        exact_kind="mms-energy",
        description=f"manufactured solution on (0,1)^{dim} for the energy {spec}: pi = prod(1 + 0.5 cos(pi x_k)), "
        f"rho = 1 + 0.4 e^-t cos(2 pi x){c} + 0.2 e^-2t cos(pi x), unbalanced, alpha = {alpha:g}, beta = {beta:g}, "
        "with source term f (MATH 3.5 recipe A); --set energy/alpha/beta re-derive f",
    )
