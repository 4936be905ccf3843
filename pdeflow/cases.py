"""Registry of named verification cases (issue #2 list) and the validation of user overrides.

Every case is the flow of one geometry of one energy (KL unless it says otherwise: the
``*-chi2-*`` / ``*-power-*`` manufactured cases; ``--set energy=SPEC`` changes it, see
:mod:`pdeflow.energies`); the parameters are fixed here once, so that a
number in a study can always be traced back to them.  Variances are written as in the issue
(N(m, s) with s the variance where a scalar is given).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np

from .geometry import Flow
from .problem import Domain, Gaussian, GaussianMixture, Problem


class CaseError(ValueError):
    """Bad case name or bad override; the message is one line that names the key."""


def _g(mean, cov, mass=1.0) -> GaussianMixture:
    mean = tuple(mean) if isinstance(mean, (tuple, list)) else (mean,)
    if not isinstance(cov, (tuple, list)):
        cov = ((cov,),)
    return GaussianMixture((Gaussian(mean, cov, mass),))


def _diag(*v):
    return tuple(tuple(v[i] if i == j else 0.0 for j in range(len(v))) for i in range(len(v)))


def _gauss_1d(name: str, alpha: float, beta: float) -> Problem:
    return Problem(
        name=name,
        domain=Domain((-6.0,), (6.0,)),
        target=_g(0.0, 1.0),
        initial=_g(1.0, 0.7**2),
        flow=Flow(alpha, beta, spherical=True),
        exact_kind="gaussian",
        description=f"pi = N(0,1), rho0 = N(1, 0.7^2) on [-6,6], spherical, (alpha, beta) = ({alpha:g}, {beta:g})",
    )


def _hk_gauss_1d() -> Problem:
    return Problem(
        name="hk-kl-gauss-1d",
        domain=Domain((-10.0,), (10.0,)),
        target=_g(1.0, 0.5, mass=2.0),
        initial=_g(-1.0, 2.0, mass=0.5),
        flow=Flow(0.5, 1.0, spherical=False),
        exact_kind="gaussian",
        description="unbalanced WFR (HK) on M+, pi = 2 N(1, 0.5), rho0 = 0.5 N(-1, 2) (variances), alpha = 0.5, beta = 1",
    )


def _wfr_gauss_2d() -> Problem:
    return Problem(
        name="wfr-kl-gauss-2d",
        domain=Domain((-5.0, -5.0), (5.0, 5.0)),
        target=_g((0.0, 0.0), _diag(1.0, 1.0)),
        initial=_g((1.0, -0.5), _diag(0.7**2, 0.9**2)),
        flow=Flow(1.0, 1.0, spherical=True),
        exact_kind="gaussian",
        description="pi = N(0, I), rho0 = N((1,-0.5), diag(0.7^2, 0.9^2)) on [-5,5]^2, spherical WFR, alpha = beta = 1",
    )


def _fr_bimodal_2d() -> Problem:
    rho0 = GaussianMixture(
        (
            Gaussian((-1.5, 0.0), _diag(0.25, 0.25), 0.5),
            Gaussian((1.5, 0.5), _diag(0.36, 0.36), 0.5),
        )
    )
    return Problem(
        name="fr-kl-bimodal-2d",
        domain=Domain((-5.0, -5.0), (5.0, 5.0)),
        target=_g((0.0, 0.0), _diag(1.0, 1.0)),
        initial=rho0,
        flow=Flow(0.0, 1.0, spherical=True),
        exact_kind="fisher-rao",
        description="pi = N(0, I), rho0 = 1/2 N((-1.5,0), 0.5^2 I) + 1/2 N((1.5,0.5), 0.6^2 I) on [-5,5]^2, spherical FR, beta = 1",
    )


def _mixture_1d() -> Problem:
    # pi ∝ exp(-(x+2)^2/(2·0.25)) + exp(-(x-2)^2/(2·0.25)): two equal-mass normalized Gaussians,
    # total mass 1 on R (the normalization of pi does not change a spherical flow).
    target = GaussianMixture((Gaussian((-2.0,), ((0.25,),), 0.5), Gaussian((2.0,), ((0.25,),), 0.5)))
    return Problem(
        name="wfr-kl-mixture-1d",
        domain=Domain((-6.0,), (6.0,)),
        target=target,
        initial=_g(1.5, 0.64),
        initial_mass=1.0,
        flow=Flow(1.0, 1.0, spherical=True),
        exact_kind=None,
        description="pi ∝ exp(-(x+2)^2/0.5) + exp(-(x-2)^2/0.5), rho0 ∝ exp(-(x-1.5)^2/1.28) with mass 1 on [-6,6], "
        "spherical WFR, alpha = beta = 1; no closed form (self-convergence)",
    )


def _mixture_disk() -> Problem:
    # Two target modes in the lower half of the disk of radius 3; ρ0 sits 1.2 from the curved
    # boundary (1.7 standard deviations), so the no-flux condition on the circle matters.
    target = GaussianMixture((Gaussian((-1.2, -0.6), _diag(0.3, 0.3), 0.5), Gaussian((1.2, -0.6), _diag(0.3, 0.3), 0.5)))
    return Problem(
        name="wfr-kl-mixture-disk",
        domain=Domain.from_mesh("disk"),
        target=target,
        initial=_g((0.0, 1.8), _diag(0.5, 0.5)),
        initial_mass=1.0,
        flow=Flow(1.0, 1.0, spherical=True),
        exact_kind=None,
        description="disk |x| <= 3 (gmsh mesh), pi = 1/2 N((-1.2,-0.6), 0.3 I) + 1/2 N((1.2,-0.6), 0.3 I), "
        "rho0 ∝ N((0,1.8), 0.5 I) with mass 1, spherical WFR, alpha = beta = 1; no closed form (self-convergence)",
    )


def _mixture_lshape() -> Problem:
    # ρ0 in the upper-left arm, π with one mode in each lower arm: mass that reaches the lower-right
    # mode by transport must pass the re-entrant corner at 0, where ρ is not H²-regular.
    target = GaussianMixture((Gaussian((-1.5, -1.5), _diag(0.3, 0.3), 0.5), Gaussian((1.5, -1.5), _diag(0.3, 0.3), 0.5)))
    return Problem(
        name="wfr-kl-mixture-lshape",
        domain=Domain.from_mesh("lshape"),
        target=target,
        initial=_g((-1.5, 1.5), _diag(0.4, 0.4)),
        initial_mass=1.0,
        flow=Flow(1.0, 1.0, spherical=True),
        exact_kind=None,
        description="L-shape [-3,3]^2 minus (0,3]^2 (gmsh mesh), pi = 1/2 N((-1.5,-1.5), 0.3 I) + 1/2 N((1.5,-1.5), 0.3 I), "
        "rho0 ∝ N((-1.5,1.5), 0.4 I) with mass 1, spherical WFR, alpha = beta = 1; no closed form (self-convergence)",
    )


def _wfr_gauss_3d() -> Problem:
    return Problem(
        name="wfr-kl-gauss-3d",
        domain=Domain((-4.0, -4.0, -4.0), (4.0, 4.0, 4.0)),
        target=_g((0.0, 0.0, 0.0), _diag(1.0, 1.0, 1.0)),
        initial=_g((0.5, -0.5, 0.25), _diag(0.6**2, 0.8**2, 0.7**2)),
        flow=Flow(1.0, 1.0, spherical=True),
        T=0.5,
        snapshots=(0.25, 0.5),
        exact_kind="gaussian",
        description="pi = N(0, I_3), rho0 = N((0.5,-0.5,0.25), diag(0.6^2, 0.8^2, 0.7^2)) on [-4,4]^3, spherical WFR, "
        "alpha = beta = 1, T = 0.5",
    )


def _mms_1d() -> Problem:
    from .exact.mms import mms_problem

    return mms_problem()


def _energy_mms(name: str, energy: str, dim: int) -> Problem:
    from .exact.mms_energy import energy_mms_problem

    return energy_mms_problem(energy, 0.7, 1.0, dim, name=name)


_REGISTRY: Dict[str, Callable[[], Problem]] = {
    "w-kl-gauss-1d": lambda: _gauss_1d("w-kl-gauss-1d", 1.0, 0.0),
    "fr-kl-gauss-1d": lambda: _gauss_1d("fr-kl-gauss-1d", 0.0, 1.0),
    "wfr-kl-gauss-1d": lambda: _gauss_1d("wfr-kl-gauss-1d", 1.0, 1.0),
    "hk-kl-gauss-1d": _hk_gauss_1d,
    "wfr-kl-gauss-2d": _wfr_gauss_2d,
    "fr-kl-bimodal-2d": _fr_bimodal_2d,
    "wfr-kl-mixture-1d": _mixture_1d,
    "hk-kl-mms-1d": _mms_1d,
    "hk-chi2-mms-1d": lambda: _energy_mms("hk-chi2-mms-1d", "chi2", 1),
    "hk-power-mms-2d": lambda: _energy_mms("hk-power-mms-2d", "power:p=0.5", 2),
    "wfr-kl-mixture-disk": _mixture_disk,
    "wfr-kl-mixture-lshape": _mixture_lshape,
    "wfr-kl-gauss-3d": _wfr_gauss_3d,
}


_BUILTIN = frozenset(_REGISTRY)


def case_names() -> list:
    return list(_REGISTRY)


def get_case(name: str) -> Problem:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise CaseError(f"unknown case {name!r}; known cases: {', '.join(_REGISTRY)}") from None
    return factory()


@dataclass(frozen=True)
class Key:
    kind: type
    check: Callable[[object], bool]
    rule: str


# Keys a user may set on the command line (`--set key=value`): the problem keys change the case,
# the solver keys go to solve_reference.
PROBLEM_KEYS = {
    "T": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number"),
    "alpha": Key(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0"),
    "beta": Key(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0"),
    "energy": Key(str, lambda v: _valid_energy(v),
                  "an energy: kl, chi2, reverse-kl, power:p=P or mmd:sigma=L[,kernel=K]"),
}


def _valid_energy(spec) -> bool:
    from .energies import EnergyError, get_energy

    try:
        get_energy(spec)
    except EnergyError:
        return False
    return True


SOLVER_KEYS = {
    "n": Key(int, lambda v: v >= 2, "an integer >= 2 (cells per direction)"),
    "tau": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number"),
    "scheme": Key(str, lambda v: v in ("frozen-mobility", "hellinger-jko", "bdf2"),
                  "'frozen-mobility', 'hellinger-jko' or 'bdf2' (second order)"),
    "solver": Key(str, lambda v: v in ("auto", "direct", "cg-gamg"), "'auto', 'direct' or 'cg-gamg'"),
    "newton_tol": Key(float, lambda v: 0 < v < 1e-2, "a number in (0, 1e-2)"),
    "newton_max_it": Key(int, lambda v: v >= 1, "an integer >= 1"),
    "tau_min": Key(float, lambda v: v > 0, "a positive number"),
    "mmd_geometry": Key(str, lambda v: v in ("fr", "mmd"), "'fr' or 'mmd' (flows of the mmd energy)"),
}


def _convert(key: str, raw, spec: Key):
    if spec.kind is int:
        if isinstance(raw, bool):
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}")
        try:
            as_float = float(raw)
        except (TypeError, ValueError):
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}") from None
        if not as_float.is_integer():
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}")
        value = int(as_float)
    elif spec.kind is bool:
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            value = raw.strip().lower() in ("true", "1", "yes")
        else:
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}")
    elif spec.kind is float:
        if isinstance(raw, bool):  # TOML true/false is not a number
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}") from None
    else:
        value = str(raw)
    if not spec.check(value):
        raise CaseError(f"{key}: expected {spec.rule}, got {raw!r}")
    return value


def parse_overrides(pairs, extra_keys: dict = None) -> dict:
    """``["n=64", "tau=1e-3"]`` → ``{"n": 64, "tau": 0.001}``, validated; CaseError otherwise.

    ``extra_keys``: further accepted keys (name → Key), e.g. the particle-method keys."""
    specs = {**PROBLEM_KEYS, **SOLVER_KEYS, **(extra_keys or {})}
    out = {}
    for item in pairs or ():
        if "=" not in item:
            raise CaseError(f"--set expects key=value, got {item!r}")
        key, raw = (s.strip() for s in item.split("=", 1))
        spec = specs.get(key)
        if spec is None:
            raise CaseError(f"unknown key {key!r}; known keys: {', '.join(specs)}")
        out[key] = _convert(key, raw, spec)
    return out


# The resource budget of one command (README "Resource budget"): inputs beyond it are refused before any
# work with the number and the limit, unless --allow-large.  Sized for a 2-core, 24 GiB machine: 2e6 P1
# vertices is a 3-D mesh of n = 125 (minutes per step), 1e6 time steps hours of 1-D steps, 1e6 particles
# a dense kernel step of 1e12 evaluations; 1e5 runs of one study group are weeks of small runs.
RESOURCE_LIMITS = {"vertices": 2_000_000, "steps": 1_000_000, "particles": 1_000_000, "halvings": 30,
                   "runs": 100_000}


def check_budget(problem: Problem, n=None, tau=None, tau_min=None, n_particles=None, dt=None,
                 allow_large: bool = False) -> None:
    """CaseError (one line, naming the key, the number and the limit) when a run would exceed
    RESOURCE_LIMITS; nothing with ``allow_large``."""
    if allow_large:
        return
    lim = RESOURCE_LIMITS
    hint = " (--allow-large to run it anyway)"
    if n is not None and (n + 1) ** problem.dim > lim["vertices"]:
        raise CaseError(f"n = {n}: about {(n + 1) ** problem.dim:.3g} mesh vertices in {problem.dim}-D exceed the "
                        f"budget of {lim['vertices']:.0e}{hint}")
    if tau is not None and problem.T / tau > lim["steps"]:
        raise CaseError(f"tau = {tau:g}: T/tau = {problem.T / tau:.3g} time steps exceed the budget of "
                        f"{lim['steps']:.0e}{hint}")
    if tau is not None and tau_min is not None and tau / tau_min > 2.0 ** lim["halvings"]:
        raise CaseError(f"tau_min = {tau_min:g}: tau/tau_min = {tau / tau_min:.3g} allows more than "
                        f"{lim['halvings']} halvings of a rejected step (2^{lim['halvings']} sub-steps){hint}")
    if n_particles is not None and n_particles > lim["particles"]:
        raise CaseError(f"n_particles = {n_particles}: more than the budget of {lim['particles']:.0e} particles{hint}")
    if dt is not None and problem.T / dt > lim["steps"]:
        raise CaseError(f"dt = {dt:g}: T/dt = {problem.T / dt:.3g} particle steps exceed the budget of "
                        f"{lim['steps']:.0e}{hint}")


def apply_overrides(problem: Problem, values: dict) -> tuple:
    """Split validated overrides into (modified problem, solver options)."""
    changes = {}
    if "T" in values:
        changes["T"] = values["T"]
    if "alpha" in values or "beta" in values:
        try:
            changes["flow"] = Flow(
                values.get("alpha", problem.flow.alpha), values.get("beta", problem.flow.beta), problem.flow.spherical
            )
        except ValueError as exc:
            raise CaseError(f"alpha/beta: {exc}") from None
    if "energy" in values:
        from .energies import canonical

        if canonical(values["energy"]) != problem.energy:
            changes["energy"] = canonical(values["energy"])
    if changes:
        if problem.exact_kind == "mms" and ("flow" in changes or "energy" in changes):
            raise CaseError(f"{'energy' if 'energy' in changes else 'alpha/beta'}: the manufactured source of this "
                            "case is derived for KL and its own alpha and beta (the cases mms-energy "
                            "hk-chi2-mms-1d, hk-power-mms-2d re-derive it for any energy, alpha and beta)")
        if problem.exact_kind == "mms-energy":
            from .exact.mms_energy import energy_mms_problem

            flow = changes.get("flow", problem.flow)
            try:
                problem = energy_mms_problem(changes.get("energy", problem.energy), flow.alpha, flow.beta,
                                             problem.dim, name=problem.name, T=changes.get("T", problem.T),
                                             snapshots=problem.snapshots)
            except ValueError as exc:
                raise CaseError(f"energy: {exc}") from None
        else:
            problem = problem.with_changes(**changes)
        if problem.exact_kind == "fisher-rao" and problem.flow.alpha != 0:
            problem = problem.with_changes(exact_kind=None)
        if problem.exact_kind in ("fisher-rao", "gaussian") and problem.energy != "kl":
            problem = problem.with_changes(exact_kind=None)  # closed forms of the KL flows only
    solver = {k: v for k, v in values.items() if k in SOLVER_KEYS}
    return problem, solver


# Keys of `pdeflow approx` (particle methods) common to all methods: the MethodParams fields.  Each
# method declares its own further keys (MethodDecl.keys, in its module); the reference keys n, tau, ...
# come from SOLVER_KEYS.
METHOD_KEYS = {
    "n_particles": Key(int, lambda v: v >= 2, "an integer >= 2"),
    "lam": Key(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0"),
    "sigma": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number (kernel bandwidth)"),
    "bandwidth": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number (alias of sigma)"),
    "kernel": Key(str, lambda v: v in ("gaussian", "imq", "laplace", "matern32", "energy", "bilinear"),
                  "one of gaussian, imq, laplace, matern32, energy, bilinear"),
    "dt": Key(float, lambda v: v > 0 and math.isfinite(v), "a positive number"),
    "seed": Key(int, lambda v: v >= 0, "an integer >= 0"),
    "xi": Key(str, lambda v: v in ("a", "b", "c"), "a (importance sampling), b (KDE) or c (blob)"),
}


def method_keys(decl) -> dict:
    """The keys `--set` accepts for method ``decl`` besides the problem and solver keys: the common
    MethodParams fields and the method's own declared keys (None: an external method, any key)."""
    return {**METHOD_KEYS, **(decl.keys or {})}


def parse_method_overrides(pairs, decl) -> tuple:
    """``--set`` pairs for a run of method ``decl`` → (values, extra).

    ``values``: validated problem, solver and common method keys; ``extra``: the method's own keys
    (validated by its declaration) or, for an external method (``decl.keys is None``), every
    unknown key, typed by literal parsing (:func:`pdeflow.approx.external.parse_literal`)."""
    known = {**PROBLEM_KEYS, **SOLVER_KEYS, **METHOD_KEYS}
    if decl.keys is None:
        from .approx.external import ExternalMethodError, parse_literal

        plain, extra = [], {}
        for item in pairs or ():
            if "=" not in item:
                raise CaseError(f"--set expects key=value, got {item!r}")
            key, raw = (t.strip() for t in item.split("=", 1))
            if key in known:
                plain.append(item)
            elif not key.isidentifier():
                raise CaseError(f"--set {item!r}: {key!r} is not a valid key name")
            else:
                try:
                    extra[key] = parse_literal(raw)
                except ExternalMethodError as exc:
                    raise CaseError(f"{key}: {exc}") from None
        return parse_overrides(plain, extra_keys=METHOD_KEYS), extra
    values = parse_overrides(pairs, extra_keys=method_keys(decl))
    own = set(decl.keys) - set(METHOD_KEYS)
    extra = {k: values.pop(k) for k in list(values) if k in own}
    return values, extra


# ------------------------------------------------------------------------------------------
# cases given as data (the [cases.NAME] tables of a study spec)
# ------------------------------------------------------------------------------------------
CASE_TABLE_KEYS = ("description", "domain", "target", "initial", "initial_mass", "flow", "energy", "T", "snapshots")


def _number(v) -> bool:
    """A finite int or float, and not a bool (TOML true is not 1)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _mixture_from_table(path: str, table, dim: int) -> GaussianMixture:
    """{components = [{mean = [...], cov = [[...]] | variance = v, mass = m}, ...]}, or one
    component given directly ({mean, cov | variance, mass})."""
    if not isinstance(table, dict):
        raise CaseError(f"{path}: expected a table with mean and cov (or components), got {table!r}")
    comps = table.get("components", [table] if "mean" in table else None)
    unknown = set(table) - ({"components"} if "components" in table else {"mean", "cov", "variance", "mass"})
    if unknown:
        raise CaseError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    if not isinstance(comps, list) or not comps:
        raise CaseError(f"{path}: expected a non-empty list of components")
    out = []
    for i, c in enumerate(comps):
        cp = f"{path}.components[{i}]" if "components" in table else path
        if not isinstance(c, dict):
            raise CaseError(f"{cp}: expected a table, got {c!r}")
        bad = set(c) - {"mean", "cov", "variance", "mass"}
        if bad:
            raise CaseError(f"{cp}: unknown key {sorted(bad)[0]!r} (allowed: mean, cov, variance, mass)")
        mean = c.get("mean")
        mean = [mean] if isinstance(mean, (int, float)) and not isinstance(mean, bool) else mean
        if not (isinstance(mean, list) and len(mean) == dim and all(_number(v) for v in mean)):
            raise CaseError(f"{cp}.mean: expected {dim} finite number(s), got {c.get('mean')!r}")
        if ("cov" in c) == ("variance" in c):
            raise CaseError(f"{cp}: give exactly one of cov (matrix) and variance (number: v·I)")
        if "variance" in c:
            v = c["variance"]
            if not (_number(v) and v > 0):
                raise CaseError(f"{cp}.variance: expected a finite positive number, got {v!r}")
            cov = tuple(tuple(float(v) if i == j else 0.0 for j in range(dim)) for i in range(dim))
        else:
            cov = c["cov"]
            rows = cov if isinstance(cov, list) else [cov]
            if not all(_number(v) for row in rows for v in (row if isinstance(row, list) else [row])):
                raise CaseError(f"{cp}.cov: expected finite numbers, got {cov!r}")
        mass = c.get("mass", 1.0)
        if not (_number(mass) and mass > 0):
            raise CaseError(f"{cp}.mass: expected a finite positive number, got {mass!r}")
        try:
            out.append(Gaussian(tuple(float(v) for v in mean), cov, float(mass)))
        except (ValueError, TypeError) as exc:
            raise CaseError(f"{cp}.cov: {exc}") from None
    return GaussianMixture(tuple(out))


def _check_representable(path: str, density: GaussianMixture, domain: Domain) -> None:
    """CaseError when the density underflows to 0 on all of Ω or its log is not finite there (a
    component far outside the domain, a variance of 1e-320): the solver works with log ρ, π and
    their masses on Ω, which are then 0 or NaN in every run.  Checked at each component's mean
    clipped to the (bounding) box, where a Gaussian with diagonal covariance is largest on it."""
    points = np.clip(np.array([c.mean for c in density.components], dtype=float), domain.lower, domain.upper)
    with np.errstate(all="ignore"):
        logs = density.log_density(points.T)
    if not np.all(np.isfinite(logs) | (logs == -np.inf)):
        raise CaseError(f"{path}: its log density is not finite on the domain (a variance too small to represent?)")
    if not np.max(logs) > LOG_DENSITY_FLOOR:
        raise CaseError(f"{path}: the density underflows to 0 on the whole domain (log density {np.max(logs):.3g} "
                        f"at its modes clipped to the domain); move it into the domain or widen it")


# exp(-700) ≈ 1e-304: below this a density is 0 in double precision
LOG_DENSITY_FLOOR = -700.0


def case_from_table(name: str, table: dict) -> Problem:
    """A Problem from a table of data (KL flow of Gaussian-mixture densities on a box or a mesh):

        domain = {lower = [-6.0], upper = [6.0]}       # or {mesh = "disk"} (pdeflow.shapes.SHAPES)
        target = {components = [{mean = [-2.0], variance = 0.25, mass = 0.5}, ...]}   # or one {mean, cov|variance, mass}
        initial = {mean = [1.5], variance = 0.64}
        initial_mass = 1.0            # optional: rescale ρ0 to this mass on Ω
        flow = {alpha = 1.0, beta = 1.0, spherical = true}
        T = 1.0                       # optional
        snapshots = [0.25, 0.5, 1.0]  # optional: strictly increasing, in (0, T]
        energy = "chi2"               # optional (default "kl"): a spec of pdeflow.energies

    The exact solution is the Gaussian ODE when target and initial are single Gaussians, the FR
    closed form when alpha = 0, else none.  CaseError (one line, naming the key) on bad data, also for a
    density that underflows to 0 on the whole domain."""
    if not isinstance(table, dict):
        raise CaseError(f"cases.{name}: expected a table")
    bad = set(table) - set(CASE_TABLE_KEYS)
    if bad:
        raise CaseError(f"cases.{name}: unknown key {sorted(bad)[0]!r} (allowed: {', '.join(CASE_TABLE_KEYS)})")
    for key in ("domain", "target", "initial", "flow"):
        if key not in table:
            raise CaseError(f"cases.{name}.{key}: required")
    dom = table["domain"]
    if isinstance(dom, dict) and set(dom) == {"mesh"}:
        try:
            domain = Domain.from_mesh(str(dom["mesh"]))
        except ValueError as exc:
            raise CaseError(f"cases.{name}.domain.mesh: {exc}") from None
    elif not (isinstance(dom, dict) and set(dom) == {"lower", "upper"}):
        raise CaseError(f"cases.{name}.domain: expected {{lower = [...], upper = [...]}} or {{mesh = NAME}}")
    else:
        bounds = [v for key in ("lower", "upper") for v in (dom[key] if isinstance(dom[key], list) else [dom[key]])]
        if not all(_number(v) for v in bounds):
            raise CaseError(f"cases.{name}.domain: lower and upper must be finite numbers, got {dom!r}")
        try:
            domain = Domain(tuple(dom["lower"]) if isinstance(dom["lower"], list) else (dom["lower"],),
                            tuple(dom["upper"]) if isinstance(dom["upper"], list) else (dom["upper"],))
        except (ValueError, TypeError) as exc:
            raise CaseError(f"cases.{name}.domain: {exc}") from None
        # [-1e308, 1e308] has finite bounds but an infinite width: h = L/n would be inf
        if not all(math.isfinite(b - a) for a, b in zip(domain.lower, domain.upper)):
            raise CaseError(f"cases.{name}.domain: the width upper - lower overflows, got {dom!r}")
    target = _mixture_from_table(f"cases.{name}.target", table["target"], domain.dim)
    initial = _mixture_from_table(f"cases.{name}.initial", table["initial"], domain.dim)
    for key, density in (("target", target), ("initial", initial)):
        _check_representable(f"cases.{name}.{key}", density, domain)
    fl = table["flow"]
    if not isinstance(fl, dict) or set(fl) - {"alpha", "beta", "spherical"}:
        raise CaseError(f"cases.{name}.flow: expected {{alpha, beta, spherical}}")
    if not isinstance(fl.get("spherical", True), bool):
        raise CaseError(f"cases.{name}.flow.spherical: expected true or false")
    for key in ("alpha", "beta"):
        if key in fl and not (_number(fl[key]) and fl[key] >= 0):
            raise CaseError(f"cases.{name}.flow.{key}: expected a finite number >= 0, got {fl[key]!r}")
    try:
        flow = Flow(fl.get("alpha", 0.0), fl.get("beta", 0.0), fl.get("spherical", True))
    except ValueError as exc:
        raise CaseError(f"cases.{name}.flow: {exc}") from None
    extra = {}
    if "T" in table:
        if not _number(table["T"]):  # _convert would also take the TOML string "1"
            raise CaseError(f"cases.{name}.T: expected {PROBLEM_KEYS['T'].rule}, got {table['T']!r}")
        extra["T"] = _convert(f"cases.{name}.T", table["T"], PROBLEM_KEYS["T"])
    if "snapshots" in table:
        snaps = table["snapshots"]
        if not (isinstance(snaps, list) and snaps and all(_number(v) and v > 0 for v in snaps)):
            raise CaseError(f"cases.{name}.snapshots: expected a non-empty list of finite positive times")
        # Problem sorts, merges and drops times beyond T silently; in a table they are a typo
        T = extra.get("T", Problem.T)
        if any(b <= a for a, b in zip(snaps, snaps[1:])) or snaps[-1] > T:
            raise CaseError(f"cases.{name}.snapshots: expected strictly increasing times in (0, T = {T:g}], "
                            f"got {snaps!r}")
        extra["snapshots"] = tuple(float(v) for v in snaps)
    if "description" in table and not isinstance(table["description"], str):
        raise CaseError(f"cases.{name}.description: expected a string, got {table['description']!r}")
    if "initial_mass" in table:
        m = table["initial_mass"]
        if not (_number(m) and m > 0):
            raise CaseError(f"cases.{name}.initial_mass: expected a finite positive number, got {m!r}")
        extra["initial_mass"] = float(m)
    if "energy" in table:
        from .energies import EnergyError, canonical

        if not isinstance(table["energy"], str):
            raise CaseError(f"cases.{name}.energy: expected a string such as \"chi2\" or \"power:p=0.5\", "
                            f"got {table['energy']!r}")
        try:
            extra["energy"] = canonical(table["energy"])
        except EnergyError as exc:
            raise CaseError(f"cases.{name}.energy: {exc}") from None
    if extra.get("energy", "kl") != "kl":
        kind = None  # the closed forms are those of the KL flows
    elif target.is_gaussian and initial.is_gaussian:
        kind = "gaussian"
    elif flow.alpha == 0:
        kind = "fisher-rao"
    else:
        kind = None
    return Problem(name=name, domain=domain, target=target, initial=initial, flow=flow, exact_kind=kind,
                   description=str(table.get("description", f"inline case {name}")), **extra)


def register_case(name: str, problem: Problem) -> None:
    """Make ``problem`` available as ``get_case(name)`` in this process (inline cases of a spec).
    A built-in name cannot be replaced."""
    if name in _BUILTIN and _REGISTRY.get(name) is not None:
        raise CaseError(f"cases.{name}: the name of a built-in case cannot be reused")
    _REGISTRY[name] = lambda p=problem: p
