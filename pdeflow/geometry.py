"""Flow geometries (MATH §2.1): Onsager operators of W, Fisher–Rao/Hellinger and WFR/HK.

For a first variation ξ = δF/δρ the flow is ∂_t ρ = −𝕂(ρ) ξ with

* Wasserstein (β = 0):              𝕂(ρ)ξ = −α ∇·(ρ∇ξ)           (no-flux on ∂Ω)
* Hellinger on M+ (α = 0):          𝕂(ρ)ξ = β ρ ξ
* spherical Fisher–Rao on P:        𝕂(ρ)ξ = β ρ (ξ − ⟨ξ⟩_ρ)
* WFR / HK on M+:                   𝕂(ρ)ξ = −α ∇·(ρ∇ξ) + β ρ ξ
* spherical WFR on P:               𝕂(ρ)ξ = −α ∇·(ρ∇ξ) + β ρ (ξ − ⟨ξ⟩_ρ)

and dissipation 𝒟(ρ) = ⟨ξ, 𝕂(ρ)ξ⟩ = ∫ ρ(α|∇ξ|² + β ξ²)  (β Var_ρ ξ in the spherical case).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    """Geometry of a local gradient flow: transport weight α ≥ 0, reaction weight β ≥ 0."""

    alpha: float
    beta: float
    spherical: bool = True

    def __post_init__(self):
        for key in ("alpha", "beta"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{key} must be a finite number ≥ 0, got {v!r}")
            object.__setattr__(self, key, float(v))
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta cannot both be zero: the flow would not move")

    @property
    def name(self) -> str:
        """W, FR, SFR (spherical FR), HK (unbalanced WFR) or WFR (spherical WFR)."""
        if self.beta == 0:
            return "W"
        if self.alpha == 0:
            return "SFR" if self.spherical else "FR"
        return "WFR" if self.spherical else "HK"

    @property
    def conserves_mass(self) -> bool:
        return self.spherical or self.beta == 0

    @property
    def has_multiplier(self) -> bool:
        """The spherical constraint needs a Lagrange multiplier only when there is reaction."""
        return self.spherical and self.beta > 0

    def describe(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta, "spherical": self.spherical}
