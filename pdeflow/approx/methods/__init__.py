"""Registry of particle methods (MATH §5).  Each module exposes

    run(problem: Problem, method: str, params: MethodParams) -> ParticleTrajectory

and states in its docstring the continuum PDE it approximates.  Modules are imported lazily so
that one broken optional dependency does not hide the others.  A new method: copy ``template.py``,
add its name here, and run ``pytest tests/unit/test_method_contract.py -k NAME``
(docs/new-method.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Optional

METHODS = {
    "lambda-fr": "lambda_fr",
    "lambda-stein": "stein",
    "svgd": "stein",
    "lambda-wfr": "lambda_wfr",
    "birth-death": "birth_death",
    "mmd-flow": "mmd_flow",
    "smc-wfr": "smc_wfr",
    "template-fr": "template",  # the template for new methods (docs/new-method.md): exact FR reweighting
}


@dataclass(frozen=True)
class MethodParams:
    """Parameters shared by the particle methods; ``extra`` holds method-specific ones."""

    n_particles: int = 500
    lam: float = 1e-3  # KRR regularization λ
    sigma: Optional[float] = None  # kernel bandwidth ℓ (None: median heuristic where the method allows it)
    kernel: str = "gaussian"
    dt: float = 0.01
    seed: int = 0
    xi: str = "a"  # first-variation estimate for FR-type methods: a (importance), b (KDE), c (blob)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (isinstance(self.n_particles, int) and self.n_particles >= 2):
            raise ValueError("n_particles must be an integer >= 2")
        if not self.lam >= 0:
            raise ValueError("lam must be >= 0")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError("sigma must be positive")
        if not self.dt > 0:
            raise ValueError("dt must be positive")
        if self.xi not in ("a", "b", "c"):
            raise ValueError("xi must be one of a, b, c")

    def with_changes(self, **kw) -> "MethodParams":
        return replace(self, **kw)

    def describe(self) -> dict:
        return {
            "n_particles": self.n_particles,
            "lam": self.lam,
            "sigma": self.sigma,
            "kernel": self.kernel,
            "dt": self.dt,
            "seed": self.seed,
            "xi": self.xi,
            **{f"extra.{k}": v for k, v in self.extra.items()},
        }


def run_approximation(problem, method: str, params: MethodParams):
    """Run particle method ``method`` on ``problem``; returns a ParticleTrajectory."""
    try:
        module_name = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}") from None
    module = importlib.import_module(f".{module_name}", __name__)
    return module.run(problem, method, params)
