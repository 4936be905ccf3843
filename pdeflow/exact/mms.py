"""Manufactured solution of the unbalanced WFR (HK) flow of KL on Ω = (0, 1) (MATH §3.5, recipe A).

    ∂_t ρ = α ∂_x(ρ ∂_x ξ) − β ρ ξ + f,   ξ = log(ρ/π),   no-flux ρ ∂_x ξ = 0 at x = 0, 1,
with α = 0.7, β = 1, π = 1 + ½ cos πx and the exact solution
    ρ_ex(t, x) = 1 + 0.4 e^{−t} cos 2πx + 0.2 e^{−2t} cos πx,
so that f = ∂_t ρ_ex − [α ∂_x(ρ_ex ∂_x ξ_ex) − β ρ_ex ξ_ex] (derived with sympy).  Cosine modes have
∂_x ρ_ex = ∂_x log π = 0 at both ends, hence the no-flux condition holds.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..geometry import Flow
from ..problem import Domain, FunctionDensity, Problem
from . import ExactSolution

ALPHA, BETA = sp.Rational(7, 10), sp.Integer(1)


def mms_flow() -> Flow:
    return Flow(float(ALPHA), float(BETA), spherical=False)


@lru_cache(maxsize=None)
def mms_symbolic():
    """Sympy symbols and expressions (t, x, ρ_ex, π, f)."""
    t, x = sp.symbols("t x", real=True)
    pi = 1 + sp.Rational(1, 2) * sp.cos(sp.pi * x)
    rho = 1 + sp.Rational(2, 5) * sp.exp(-t) * sp.cos(2 * sp.pi * x) + sp.Rational(1, 5) * sp.exp(-2 * t) * sp.cos(sp.pi * x)
    xi = sp.log(rho / pi)
    f = sp.diff(rho, t) - (ALPHA * sp.diff(rho * sp.diff(xi, x), x) - BETA * rho * xi)
    return t, x, rho, pi, f


@lru_cache(maxsize=None)
def _numeric():
    t, x, rho, pi, f = mms_symbolic()
    return (
        sp.lambdify((t, x), rho, "numpy"),
        sp.lambdify(x, sp.log(pi), "numpy"),
        sp.lambdify((t, x), f, "numpy"),
    )


def _coordinate(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 1 else x[0]


def _broadcast(value, x1: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), x1.shape).copy()


def rho_exact(t: float, x) -> np.ndarray:
    x1 = _coordinate(x)
    return _broadcast(_numeric()[0](float(t), x1), x1)


def log_target(x) -> np.ndarray:
    x1 = _coordinate(x)
    return _broadcast(_numeric()[1](x1), x1)


def log_initial(x) -> np.ndarray:
    return np.log(rho_exact(0.0, x))


def source(t: float, x) -> np.ndarray:
    """f(t, x) for points x of shape (1, n) (or (n,)), shape (n,)."""
    x1 = _coordinate(x)
    return _broadcast(_numeric()[2](float(t), x1), x1)


class ManufacturedSolution(ExactSolution):
    def log_density(self, t, x):
        return np.log(rho_exact(t, x))

    def density(self, t, x):
        return rho_exact(t, x)

    def mass(self, t) -> float:
        # Both cosine modes integrate to zero over (0, 1).
        return 1.0

    def describe(self) -> dict:
        return {
            "kind": "mms",
            "method": "manufactured solution with sympy source term (MATH 3.5 recipe A)",
            "rho_exact": "1 + 0.4 exp(-t) cos(2 pi x) + 0.2 exp(-2 t) cos(pi x)",
            "target": "1 + 0.5 cos(pi x)",
            "alpha": float(ALPHA),
            "beta": float(BETA),
            "spherical": False,
        }


def mms_problem() -> Problem:
    return Problem(
        name="hk-kl-mms-1d",
        domain=Domain((0.0,), (1.0,)),
        target=FunctionDensity(log_target, 1, "1 + 0.5 cos(pi x)"),
        initial=FunctionDensity(log_initial, 1, "1 + 0.4 cos(2 pi x) + 0.2 cos(pi x)"),
        flow=mms_flow(),
        source=source,
        exact_kind="mms",
        description="manufactured solution on (0,1): pi = 1 + 0.5 cos(pi x), "
        "rho = 1 + 0.4 e^-t cos(2 pi x) + 0.2 e^-2t cos(pi x), unbalanced WFR (HK), alpha = 0.7, beta = 1, "
        "with source term f (MATH 3.5 recipe A)",
    )
