"""Distances between a P1 density ρ_h and an exact density ρ (MATH §6 for the definitions).

    L1 = ∫_Ω |ρ_h − ρ|,   L2 = (∫_Ω (ρ_h − ρ)²)^{1/2},   He = (∫_Ω (√ρ_h − √ρ)²)^{1/2}

(He is the Hellinger distance without the 4/β factor of the He_β metric, MATH §2.1.)  The exact
density is interpolated into P4 (and √ρ separately; error O(h⁵), far below the O(h²) being measured) and the
integrals use a degree-8 rule on every cell — *not* the lumped rule, which would hide the
interpolation error at the vertices.  Relative mass error: |Σ m_i ρ_i − M(t)| / M(t).
"""
from __future__ import annotations

import dolfinx.fem
import numpy as np
import ufl

from . import compat
from .space import P1Space


class ErrorNorms:
    def __init__(self, space: P1Space, degree: int = 4, quad_degree: int = 8):
        self.space = space
        self.W = compat.function_space(space.mesh, "Lagrange", degree)
        self.exact_fn = dolfinx.fem.Function(self.W)
        # √ρ interpolated on its own: the P4 interpolant of ρ may dip below 0 between nodes
        self.exact_sqrt = dolfinx.fem.Function(self.W)
        self.rho_h = space.function(name="rho_h")
        dx = compat.dx(space.mesh, degree=quad_degree)
        diff = self.rho_h - self.exact_fn
        self.forms = {
            "L1": compat.form(abs(diff) * dx),
            "L2": compat.form(diff * diff * dx),
            "hellinger": compat.form((ufl.sqrt(self.rho_h) - self.exact_sqrt) ** 2 * dx),
        }

    def __call__(self, rho_owned: np.ndarray, exact_density, exact_mass: float) -> dict:
        dim = self.space.dim
        compat.set_owned(self.rho_h, rho_owned)
        # the exact density is positive; clip round-off so that sqrt stays real
        self.exact_fn.interpolate(lambda x: exact_density(x[:dim]))
        self.exact_sqrt.interpolate(lambda x: np.sqrt(np.maximum(exact_density(x[:dim]), 0.0)))
        comm = self.space.comm
        out = {
            "L1": compat.assemble_scalar(self.forms["L1"], comm),
            "L2": np.sqrt(max(compat.assemble_scalar(self.forms["L2"], comm), 0.0)),
            "hellinger": np.sqrt(max(compat.assemble_scalar(self.forms["hellinger"], comm), 0.0)),
        }
        mass = self.space.integral(rho_owned)
        out["mass"] = mass
        out["exact_mass"] = exact_mass
        out["mass_rel"] = abs(mass - exact_mass) / abs(exact_mass)
        return {k: float(v) for k, v in out.items()}
