"""Registry of particle methods (MATH §5).

A method is a callable ``run(problem, params) -> ParticleTrajectory | {times, x, w[, info]}``
together with a :class:`MethodDecl`: the keys it accepts beyond the common :class:`MethodParams`
fields, the continuum PDE it approximates at fixed parameters (MATH §5, 'General rule') and the
cases or parameters it refuses.  Three sources, resolved by :func:`get_method`:

* **built-in**: every module of this package that defines ``DECLARE = {name: MethodDecl(...)}``
  (discovered at import, so adding a method touches its own module and its test only;
  docs/new-method.md).  Built-in modules keep the signature ``run(problem, method, params)``.
* **external**: ``package.module:function`` or ``path/to/file.py:function`` (a user's code).
* **plug-in**: an installed distribution's entry point in the group ``pdeflow.methods``.

External callables may carry the attributes ``continuum`` (a continuum name such as ``"stein"``,
``"stein:sigma=0.5"``, or a callable ``(problem, params) -> str``) and ``refuse`` (a callable
``(problem, params) -> str | None``); unknown ``--set`` keys reach them in ``params.extra``.
Whatever a method returns is validated at the edge (:func:`pdeflow.approx.external.as_trajectory`).
"""
from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field, replace
from typing import Callable, Optional


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
        if isinstance(self.n_particles, bool) or not (isinstance(self.n_particles, int) and self.n_particles >= 2):
            raise ValueError("n_particles must be an integer >= 2")
        if isinstance(self.lam, bool) or not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError("lam must be a finite number >= 0")
        if self.sigma is not None and (isinstance(self.sigma, bool) or not (self.sigma > 0 and math.isfinite(self.sigma))):
            raise ValueError("sigma must be a finite positive number")
        if isinstance(self.dt, bool) or not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError("dt must be a finite positive number")
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


@dataclass(frozen=True)
class MethodDecl:
    """What a method declares about itself.

    ``keys``: method-specific keys (name → :class:`pdeflow.cases.Key`) that go to ``params.extra``;
    None means "any key" (external methods: values typed by literal parsing).
    ``uses``: which common MethodParams fields the method reads (the others are refused when set).
    ``continuum``: ``(problem, params) -> (name, dict)``, the PDE it approximates at fixed
    parameters; None: not declared (``--continuum`` must then be given).
    ``refuse``: ``(problem, params) -> str | None``, a one-line reason the method does not
    approximate this case / parameter set; checked before any solve.
    ``dt_in_continuum``: the continuum itself depends on the time step (e.g. a splitting at fixed
    step h), so a check must not extrapolate dt → 0.
    ``stochastic_sigma``: the bandwidth is a heuristic of the particles unless given (then a
    verification fixes it first)."""

    name: str
    summary: str
    keys: Optional[dict] = None
    uses: tuple = ("n_particles", "dt", "seed")
    continuum: Optional[Callable] = None
    refuse: Optional[Callable] = None
    dt_in_continuum: bool = False
    # extra keys that default to a per-run heuristic (a bandwidth): a verification fixes them first
    fixed_for_verify: tuple = ()
    defaults: Optional[dict] = None  # the value each own key takes when not set (documentation, `pdeflow methods`)
    run: Optional[Callable] = None  # (problem, params) → result; built-ins are wrapped
    source: str = "built-in"
    # the energies (pdeflow.energies names: kl, chi2, power, mmd) whose flows the method approximates;
    # a case of another energy is refused before any solve.  None: any (external methods decide)
    energies: Optional[tuple] = ("kl",)


def _energy_refusal(decl: "MethodDecl", inner: Optional[Callable]) -> Callable:
    """decl.refuse preceded by the check of the case's energy against decl.energies."""
    def refuse(problem, params):
        if decl.energies is not None:
            energy = problem.energy_functional
            if energy.name not in decl.energies:
                return (f"{decl.name} approximates flows of {', '.join(decl.energies)} only; case "
                        f"{problem.name!r} has energy {problem.energy}")
        return inner(problem, params) if inner is not None else None

    return refuse


def _builtin_registry():
    decls, modules, broken = {}, {}, {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f".{info.name}", __name__)
        except Exception as exc:  # one broken optional dependency must not hide the other methods
            broken[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        for name, decl in getattr(module, "DECLARE", {}).items():
            if name in decls:
                raise RuntimeError(f"method {name!r} is declared by {modules[name]} and {info.name}")
            decls[name] = decl
            modules[name] = info.name
    return decls, modules, broken


DECLARATIONS: dict = {}
METHODS: dict = {}  # name → module name (built-in methods)
BROKEN: dict = {}


def _load():
    if not DECLARATIONS:
        decls, modules, broken = _builtin_registry()
        DECLARATIONS.update(decls)
        METHODS.update(modules)
        BROKEN.update(broken)


def get_method(spec: str) -> MethodDecl:
    """The declaration of a built-in name, ``module:function``, ``file.py:function`` or a
    ``pdeflow.methods`` entry point; ValueError with one line otherwise."""
    _load()
    if spec in DECLARATIONS:
        decl = DECLARATIONS[spec]
        module = importlib.import_module(f".{METHODS[spec]}", __name__)
        return replace(decl, run=lambda problem, params, _m=module, _n=spec: _m.run(problem, _n, params),
                       refuse=_energy_refusal(decl, decl.refuse))
    from ..external import load_external

    return load_external(spec, builtin_names=list(DECLARATIONS))


def run_approximation(problem, method, params: MethodParams):
    """Run particle method ``method`` (a name/spec or a MethodDecl) on ``problem``; returns a
    validated ParticleTrajectory."""
    from ..external import as_trajectory

    decl = get_method(method) if isinstance(method, str) else method
    if decl.refuse is not None:
        reason = decl.refuse(problem, params)
        if reason:
            raise ValueError(reason)
    result = decl.run(problem, params)
    # an external method must return the particle count it was asked for (a sweep in N relies on it);
    # built-ins may be given their own initial particles (lambda-fr's extra['initial'])
    expected = None if decl.source == "built-in" else params.n_particles
    return as_trajectory(result, problem, decl.name, params, expected_n=expected)


# --- helpers for the declarations of the built-in modules ------------------------------------------

def key(kind, check, rule):
    """A method key (a :class:`pdeflow.cases.Key`)."""
    from ...cases import Key

    return Key(kind, check, rule)


def finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


INTEGRATION_TOL_KEYS = {
    "rtol": key(float, lambda v: finite_number(v) and 1e-14 <= v < 1, "a number in [1e-14, 1) (solve_ivp rtol)"),
    "atol": key(float, lambda v: finite_number(v) and 0 < v < 1, "a number in (0, 1) (solve_ivp atol)"),
}


def refuse_unless_transport(name: str):
    """Refusal of a pure-transport (Wasserstein-geometry) method: it needs α > 0 and approximates no
    reaction, so a case with β ≠ 0 (WFR, HK) is refused instead of having β silently ignored."""
    def refuse(problem, params):
        flow = problem.flow
        if not flow.alpha > 0:
            return f"{name} is a transport method; case {problem.name!r} has alpha = {flow.alpha:g}"
        if flow.beta != 0:
            return (f"{name} approximates a Wasserstein-type flow (no reaction); case {problem.name!r} has "
                    f"beta = {flow.beta:g}, which it would ignore (use --set beta=0)")
        return None

    return refuse


def refuse_unless_reaction(name: str):
    """Refusal of a fixed-particle reweighting (Fisher–Rao) method: it needs β > 0 and moves no mass,
    so a case with α ≠ 0 is refused instead of having the transport silently ignored."""
    def refuse(problem, params):
        flow = problem.flow
        if not flow.beta > 0:
            return f"{name} needs a reaction weight beta > 0; case {problem.name!r} has beta = {flow.beta:g}"
        if flow.alpha != 0:
            return (f"{name} reweights fixed particles (a Fisher-Rao flow); case {problem.name!r} has "
                    f"alpha = {flow.alpha:g}, a transport it would ignore (use --set alpha=0)")
        return None

    return refuse


_load()
