"""Study specification: a TOML file → validated groups of runs (the run dicts of the contract in
:mod:`pdeflow.study`).  Numpy-level only: this module never imports dolfinx or :mod:`pdeflow.fem`.

Format
======

.. code-block:: toml

    [study]
    name = "quickstart"          # required, [A-Za-z0-9_-]+
    case = "wfr-kl-gauss-1d"     # default case of the groups (a built-in name, pdeflow.cases)
    target = "exact"             # exact | reference | richardson; see "Targets" below
    metrics = ["L1", "L2", "hellinger"]
    fit_range = [0, -1]          # levels used in fits: [first, last], both inclusive, -1 = last
    T = 1.0                      # override of the cases' final time
    reference = {n = 400, tau = 0.005}   # default FE reference resolution of the groups

    [[group]]
    label = "tau"                # required, unique
    kind = "reference"           # reference | approx, required
    case = "..."                 # optional, else study.case
    n = 1600
    tau = {start = 0.05, factor = 0.5, levels = 4}   # ladder: start*factor**k, k < levels

    [[group]]
    label = "h"
    kind = "reference"
    n = {start = 50, factor = 2, levels = 4}         # integer ladder
    tau = {tied = "h^2", coefficient = 1.0}          # tau = coefficient * h**2

    [[group]]
    label = "svgd-N"
    kind = "approx"
    method = "birth-death"       # a built-in name, module:function or path/to/file.py:function
    case = "wfr-kl-mixture-1d"
    n_particles = [100, 300, 1000]
    seeds = 5
    dt = 0.01
    reference = {n = 400, tau = 0.005}
    [group.extra]                # the method's own keys (`pdeflow methods`; any key for an external method)
    variant = "weighted"

Tables and keys
---------------
``[study]``: ``name`` (required), ``case``, ``target``, ``metrics``, ``fit_range``, ``T``,
``reference``, ``allow_large`` (true: runs beyond the resource budget of ``pdeflow.cases.RESOURCE_LIMITS``
— mesh vertices, time steps, particles, runs per group — are allowed; otherwise such a spec is refused at load).  Any other top-level key than ``study``, ``group`` and ``cases`` is an error.

``[cases.NAME]`` (optional): a case given as data instead of a built-in name — a KL flow of
Gaussian mixtures on a box (keys ``domain``, ``target``, ``initial``, ``initial_mass``, ``flow``,
``T``, ``snapshots``, ``description``; see :func:`pdeflow.cases.case_from_table`).  Groups and
``study.case`` then name it like a built-in case.

``[[group]]`` (at least one), common keys: ``label`` (required, unique), ``kind`` (required),
``case``, ``target``, ``metrics``, ``fit_range``, ``T``, ``alpha``, ``beta`` (overrides of the
case, as ``--set``; they go into the run's ``params`` when they differ from the case) and
``reference``.

* kind ``reference`` (FE reference solver): ``n`` (cells per direction) and ``tau`` (time step),
  both required.
* kind ``approx`` (particle method): ``method`` (required: a built-in method, ``module:function``
  or ``path/to/file.py:function``; a method that refuses the case — a geometry it does not
  approximate — is an error at load time),
  ``n_particles``, ``lam``, ``sigma``, ``kernel``, ``dt``, ``xi`` (the :class:`MethodParams`
  fields; missing ones take the MethodParams default), ``extra`` (a table of method extras),
  ``seeds`` (default 1) and ``reference`` (the FE reference resolution ``{n, tau}``, required
  here or in ``[study]``).

Parameter values
----------------
Every parameter is a single value, an explicit list (swept; non-empty, no duplicates) or, for
``n``, ``n_particles``, ``tau``, ``dt`` and ``lam``, a **ladder** ``{start, factor, levels}`` with
values ``start * factor**k`` for ``k < levels`` (swept).  ``2 <= levels <= 64`` (a fit needs two
points; 3 or more are recommended, and Richardson needs 3).  A ladder must refine: ``factor > 1``
for ``n`` and ``n_particles`` (whose values must all be integers), ``factor`` in (0, 1) for
``tau``, ``dt`` and ``lam``.  Derived floats are rounded to 12 significant digits, so that a
ladder value and the same number written by hand give the same run.

``tau`` may instead be **tied** to the mesh: ``{tied = "h" | "h^p", coefficient = c}`` gives
``tau = c * h**p`` (c defaults to 1) with ``h = (largest side of the domain) / n`` — refining n
refines tau with it.

``seeds`` (approx only): an integer k ≥ 1 (seeds 0 … k−1) or a non-empty list of distinct
integers ≥ 0.

Runs
----
A group's runs are the Cartesian product of its swept parameters (in the order n, tau for
reference groups; n_particles, lam, sigma, kernel, dt, xi, extra.* for approx groups; a tied tau
follows n) times its seeds (innermost).  Each run is the dict of the contract; ``sweep`` holds
the swept values under their fit variable: a swept ``n`` is recorded as ``h`` (n itself is in
``params``), every reference run records ``h``, a tied or swept tau records ``tau``, approx
groups record their swept fields (extras as ``"extra.<key>"``).  ``Group.swept`` names the
swept keys.  ``run_id`` is the first 16 hex digits of the sha1 of the JSON (sorted keys) of
{kind, case, method, params, seed}; the group is not part of it, so a run listed by two groups
is one run.  ``cost``: (n+1)**d · T/tau for reference runs, n_particles**2 · T/dt for approx
runs.  :meth:`StudySpec.runs` lists the distinct runs, most expensive first (ties by run_id);
the FE references of approx runs are not in it (the runner derives them from
``params["reference"]``).

Targets
-------
``target`` (study or group): ``exact`` (the case's closed form/ODE oracle), ``reference`` (the
FE solution at the resolution ``reference = {n, tau}``, which must be at least as fine as the
group's runs) or ``richardson`` (self-convergence: ``n`` must be a ladder with an integer factor
≥ 2 and ≥ 3 levels — nested meshes for box cases — and ``tau`` a single value or tied; metrics
richardson_m2 (second moments, any dimension) and in 1-D richardson_L1).  A reference group
takes its own ``target``, else the study's, else ``exact`` when its case has an exact solution
and ``richardson`` otherwise.  Approx groups are always compared with their FE reference: their
target is ``reference`` (the study's target does not apply to them; another explicit group
target is an error).

Metrics
-------
Reference runs: L1, L2, hellinger, mass_rel; approx runs: mmd, mmd_small, mmd_large,
energy_distance, w2, mass_error, boundary_layer, and for cases with a closed form mmd_exact,
mmd_small_exact, mmd_large_exact (the MMDs against it) (|relative error| of the mass in the layer of
width L/12 along ∂Ω, :func:`pdeflow.compare.boundary_layer_mass`).  ``study.metrics`` may name any metric of a group kind present;
a group records its own ``metrics`` (validated against its kind) or else the study's metrics of
its kind, or else (none of them applies) all metrics of its kind.

``fit_range = [first, last]`` (study or group): indices into each swept parameter's levels,
python-style (negative from the end), both inclusive, at least two levels; checked against every
group with swept parameters.  :func:`fit_slice` turns it into a slice.

Errors
------
Every problem raises :class:`SpecError` with one line that starts with the key path, e.g.
``group[2].tau.factor: expected a number in (0, 1) for a refining time step, got 3``
(groups are numbered from 0 in file order).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from itertools import product
from pathlib import Path
from typing import Optional

from ..approx.methods import METHODS, MethodParams, get_method
from ..cases import (METHOD_KEYS, PROBLEM_KEYS, RESOURCE_LIMITS, SOLVER_KEYS, CaseError, Key, apply_overrides,
                     check_budget, get_case)


class SpecError(ValueError):
    """Invalid study spec; the message is one line that starts with the key path."""


KINDS = ("reference", "approx")
TARGETS = ("exact", "reference", "richardson")
METRICS = {
    "reference": ("L1", "L2", "hellinger", "mass_rel"),
    "approx": ("mmd", "mmd_small", "mmd_large", "energy_distance", "w2", "mass_error", "boundary_layer",
               "mmd_exact", "mmd_small_exact", "mmd_large_exact"),
}
TOP_KEYS = ("study", "group", "cases")
STUDY_KEYS = ("name", "case", "target", "metrics", "fit_range", "T", "reference", "allow_large")
_COMMON = ("label", "kind", "case", "target", "metrics", "fit_range", "T", "alpha", "beta", "reference")
GROUP_KEYS = {
    "reference": _COMMON + ("n", "tau"),
    "approx": _COMMON + ("method", "n_particles", "lam", "sigma", "kernel", "dt", "xi", "extra", "seeds"),
}
METHOD_FIELDS = ("n_particles", "lam", "sigma", "kernel", "dt", "xi")
LADDER_KEYS = ("start", "factor", "levels")
TIED_KEYS = ("tied", "coefficient")
RESOLUTION_KEYS = ("n", "tau")
# ladders: direction of refinement and what is refined (for messages)
_LADDERS = {
    "n": ("up", "mesh (n grows)"),
    "n_particles": ("up", "particle number"),
    "tau": ("down", "time step"),
    "dt": ("down", "time step"),
    "lam": ("down", "regularization"),
}
MAX_LEVELS = 64  # a ladder of factor 2 then spans 2^63: beyond every resource budget
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TIED = re.compile(r"h(?:\^([0-9]+(?:\.[0-9]*)?))?")


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    label: str
    kind: str
    case: str
    method: Optional[str]
    swept: tuple
    runs: tuple
    target: str = "exact"
    metrics: tuple = ()
    fit_range: Optional[tuple] = None
    reference: Optional[dict] = None  # {"n", "tau"}: approx groups and target "reference"
    levels: dict = field(default_factory=dict)  # swept key → number of distinct values


@dataclass(frozen=True)
class StudySpec:
    name: str
    target: Optional[str]  # the study's target (explicit, or the default of study.case; None: per group)
    metrics: tuple
    fit_range: Optional[tuple]
    T: Optional[float]
    groups: tuple
    source: str  # the spec file's path, or "<dict>"

    def runs(self) -> list:
        """All distinct runs (by run_id; the first group listing one names it), largest cost first,
        ties by run_id."""
        seen = {}
        for group in self.groups:
            for run in group.runs:
                seen.setdefault(run["run_id"], run)
        return sorted(seen.values(), key=lambda r: (-r["cost"], r["run_id"]))

    def group(self, label: str) -> Group:
        for g in self.groups:
            if g.label == label:
                return g
        raise KeyError(label)


def run_id(run: dict) -> str:
    """16 hex digits of the sha1 of the canonical JSON of the identifying keys (the same hash as
    the runner's, so that ids computed on either side agree)."""
    key = {k: run.get(k) for k in ("kind", "case", "method", "params", "seed")}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_slice(fit_range, levels: int) -> slice:
    """The slice of ``levels`` ordered levels selected by ``fit_range`` ([first, last], inclusive;
    None: all)."""
    if fit_range is None:
        return slice(0, levels)
    first, last = (i % levels for i in fit_range)
    return slice(first, last + 1)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _fail(path: str, message: str):
    text = f"{path}: {message}" if path else message
    raise SpecError(" ".join(text.split()))


def _show(value) -> str:
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _round(x: float) -> float:
    return float(f"{x:.12g}")


def _table(path: str, raw, allowed, what: str = "a table") -> dict:
    if not isinstance(raw, dict):
        _fail(path, f"expected {what}, got {_show(raw)}")
    for key in raw:
        if key not in allowed:
            _fail(_join(path, key), f"unknown key; allowed: {', '.join(allowed)}")
    return raw


def _required(path: str, table: dict, key: str, hint: str = ""):
    if key not in table:
        _fail(_join(path, key), "missing" + (f"; {hint}" if hint else ""))
    return table[key]


def _scalar(path: str, raw, key: Key):
    """One value of a Key of pdeflow.cases, type-checked (bool is not a number)."""
    if key.kind is int:
        if not _is_number(raw) or not float(raw).is_integer():
            _fail(path, f"expected {key.rule}, got {_show(raw)}")
        value = int(raw)
    elif key.kind is float:
        if not _is_number(raw) or not math.isfinite(raw):
            _fail(path, f"expected {key.rule}, got {_show(raw)}")
        value = float(raw)
    elif key.kind is bool:
        if not isinstance(raw, bool):
            _fail(path, f"expected {key.rule}, got {_show(raw)}")
        value = raw
    else:
        if not isinstance(raw, str):
            _fail(path, f"expected {key.rule}, got {_show(raw)}")
        value = raw
    if not key.check(value):
        _fail(path, f"expected {key.rule}, got {_show(raw)}")
    return value


def _string(path: str, raw, choices=None, rule: str = "a string") -> str:
    if not isinstance(raw, str) or not raw or (choices is not None and raw not in choices):
        _fail(path, f"expected {rule}, got {_show(raw)}")
    return raw


def _ladder(path: str, raw: dict, name: str, key: Key) -> tuple:
    _table(path, raw, LADDER_KEYS)
    for k in LADDER_KEYS:
        _required(path, raw, k, "a ladder needs start, factor and levels")
    levels, start, factor = raw["levels"], raw["start"], raw["factor"]
    if not (_is_number(levels) and math.isfinite(levels) and float(levels).is_integer() and levels >= 2):
        _fail(_join(path, "levels"), f"expected an integer >= 2 (a fit needs 2 levels, 3 or more recommended), "
                                     f"got {_show(levels)}")
    if levels > MAX_LEVELS:  # levels = 1e9 used to loop for minutes (a lam ladder may reach 0) or overflow
        _fail(_join(path, "levels"), f"{int(levels)} levels; at most {MAX_LEVELS} (the values span factor**levels)")
    levels = int(levels)
    if not (_is_number(start) and math.isfinite(start) and start > 0):
        _fail(_join(path, "start"), f"expected a positive number, got {_show(start)}")
    direction, what = _LADDERS[name]
    if not (_is_number(factor) and math.isfinite(factor)):
        _fail(_join(path, "factor"), f"expected a number, got {_show(factor)}")
    if direction == "up" and not factor > 1:
        _fail(_join(path, "factor"), f"expected a number > 1 for a refining {what}, got {_show(factor)}")
    if direction == "down" and not 0 < factor < 1:
        _fail(_join(path, "factor"), f"expected a number in (0, 1) for a refining {what}, got {_show(factor)}")
    _scalar(_join(path, "start"), start, key)
    values = []
    for k in range(levels):
        try:
            v = start * factor**k
        except OverflowError:  # a float power raises where a product gives inf
            v = math.inf
        if not math.isfinite(v):
            _fail(path, f"level {k}: {start:g}*{factor:g}^{k} overflows")
        if key.kind is int:
            iv = round(v)
            if abs(v - iv) > 1e-9 * max(1.0, abs(v)):
                _fail(path, f"level {k}: {start:g}*{factor:g}^{k} = {v:g} is not an integer")
            v = int(iv)
        else:
            v = _round(v)
        values.append(_scalar(path, v, key))
    if len(set(values)) != len(values):
        _fail(path, f"the ladder repeats values {values}")
    return tuple(values)


def _grid(path: str, raw, name: str, key: Key) -> tuple:
    """(values, swept, ladder-or-None) of one parameter: a value, a list or a ladder."""
    if isinstance(raw, dict):
        if name not in _LADDERS:
            _fail(path, f"expected {key.rule} or a list of them (no ladder for {name}), got {_show(raw)}")
        return _ladder(path, raw, name, key), True, raw
    if isinstance(raw, list):
        if not raw:
            _fail(path, "empty list; give at least one value")
        values, seen = [], set()
        for i, item in enumerate(raw):
            v = _scalar(f"{path}[{i}]", item, key)
            if v in seen:
                _fail(f"{path}[{i}]", f"duplicate value {_show(item)}")
            values.append(v)
            seen.add(v)
        return tuple(values), True, None
    return (_scalar(path, raw, key),), False, None


def _tied(path: str, raw: dict) -> tuple:
    _table(path, raw, TIED_KEYS)
    rule = _required(path, raw, "tied", 'expected "h" or "h^p" (tau = coefficient * h**p)')
    m = _TIED.fullmatch(rule) if isinstance(rule, str) else None
    power = float(m.group(1)) if m and m.group(1) else 1.0
    if m is None or not power > 0:
        _fail(_join(path, "tied"), f'expected "h" or "h^p" with p > 0 (tau = coefficient * h**p), got {_show(rule)}')
    coef = raw.get("coefficient", 1.0)
    if not (_is_number(coef) and math.isfinite(coef) and coef > 0):
        _fail(_join(path, "coefficient"), f"expected a positive number, got {_show(coef)}")
    return power, float(coef)


def _resolution(path: str, raw) -> dict:
    _table(path, raw, RESOLUTION_KEYS, "a table {n, tau}")
    for k in RESOLUTION_KEYS:
        _required(path, raw, k, "the FE reference resolution needs n and tau")
    return {"n": _scalar(_join(path, "n"), raw["n"], SOLVER_KEYS["n"]),
            "tau": _scalar(_join(path, "tau"), raw["tau"], SOLVER_KEYS["tau"])}


def _metric_list(path: str, raw, allowed: tuple, what: str) -> tuple:
    if not isinstance(raw, list):
        _fail(path, f"expected a list of metric names, got {_show(raw)}")
    if not raw:
        _fail(path, "empty list; give at least one metric")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, str) or m not in allowed:
            _fail(f"{path}[{i}]", f"{_show(m)} is not a metric of {what}; allowed: {', '.join(allowed)}")
        if m in out:
            _fail(f"{path}[{i}]", f"duplicate metric {m!r}")
        out.append(m)
    return tuple(out)


def _fit_range(path: str, raw) -> tuple:
    if not (isinstance(raw, list) and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)):
        _fail(path, f"expected [first, last]: two integer level indices (last inclusive, -1 = last level), "
                    f"got {_show(raw)}")
    return tuple(raw)


def _check_fit_range(path: str, fit_range: tuple, levels: dict, where: str) -> None:
    for name, count in levels.items():
        first, last = fit_range
        if not (-count <= first < count and -count <= last < count):
            _fail(path, f"{list(fit_range)} is out of range for {where}, whose {name} has {count} levels")
        if last % count - first % count < 1:
            _fail(path, f"{list(fit_range)} selects fewer than 2 of the {count} levels of {name} in {where}")


_EXACT_CACHE: dict = {}


def _has_exact(case: str, overrides: dict, problem) -> bool:
    key = (case, tuple(sorted(overrides.items())))
    if key not in _EXACT_CACHE:
        from ..exact import exact_solution

        _EXACT_CACHE[key] = exact_solution(problem) is not None
    return _EXACT_CACHE[key]


def _inline_cases(cases) -> None:
    """[cases.NAME] tables: cases given as data (pdeflow.cases.case_from_table), registered under
    NAME in this process so that groups (and the runner, which parses the same spec on every
    rank) refer to them by name like built-in cases."""
    from ..cases import case_from_table, register_case

    if cases is None:
        return
    if not isinstance(cases, dict) or not cases:
        _fail("cases", f"expected tables [cases.NAME], got {_show(cases)}")
    for name, table in cases.items():
        if not _NAME.fullmatch(name):
            _fail(f"cases.{name}", "a case name is letters, digits, '_' and '-'")
        try:
            register_case(name, case_from_table(name, table))
            for key in [k for k in _EXACT_CACHE if k[0] == name]:  # a redefined inline case
                del _EXACT_CACHE[key]
        except CaseError as exc:
            msg = str(exc)
            _fail(msg.split(":", 1)[0], msg.split(":", 1)[1].strip() if ":" in msg else msg)


def _case(path: str, name) -> object:
    if not isinstance(name, str):
        _fail(path, f"expected a case name (string), got {_show(name)}")
    try:
        return get_case(name)
    except CaseError as exc:
        _fail(path, str(exc))


# ------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------
def load_spec(path) -> StudySpec:
    """Read and validate a TOML study spec; SpecError (one line) on any problem."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(str(path), f"cannot read the spec: {getattr(exc, 'strerror', None) or exc}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        _fail(str(path), f"invalid TOML: {exc}")
    return parse_spec(data, source=str(path))


def parse_spec(data: dict, source: str = "<dict>") -> StudySpec:
    """Validate a parsed spec (the dict of a TOML document) and expand its groups into runs."""
    _table("", data, TOP_KEYS, "a table with [study] and [[group]]")
    _inline_cases(data.get("cases"))
    study = _table("study", _required("", data, "study", "a spec needs a [study] table with a name"), STUDY_KEYS)
    name = _required("study", study, "name", "[A-Za-z0-9_-]+")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        _fail("study.name", f"expected a name of letters, digits, '_' and '-', got {_show(name)}")

    study_case = None
    if "case" in study:
        _case("study.case", study["case"])
        study_case = study["case"]
    target = None
    if "target" in study:
        target = _string("study.target", study["target"], TARGETS, "one of " + ", ".join(TARGETS))
    T = _scalar("study.T", study["T"], PROBLEM_KEYS["T"]) if "T" in study else None
    fit_range = _fit_range("study.fit_range", study["fit_range"]) if "fit_range" in study else None
    reference = _resolution("study.reference", study["reference"]) if "reference" in study else None
    allow_large = study.get("allow_large", False)
    if not isinstance(allow_large, bool):
        _fail("study.allow_large", f"expected true or false, got {_show(allow_large)}")

    groups_raw = _required("", data, "group", "a study needs at least one [[group]]")
    if not isinstance(groups_raw, list):
        _fail("group", f"expected an array of tables ([[group]]), got {_show(groups_raw)}")
    if not groups_raw:
        _fail("group", "empty; a study needs at least one [[group]]")
    kinds = []
    for i, g in enumerate(groups_raw):
        path = f"group[{i}]"
        if not isinstance(g, dict):
            _fail(path, f"expected a table ([[group]]), got {_show(g)}")
        kinds.append(_string(_join(path, "kind"), _required(path, g, "kind", "reference or approx"), KINDS,
                             "'reference' or 'approx'"))
    present = [k for k in KINDS if k in kinds]
    allowed_metrics = tuple(m for k in present for m in METRICS[k])
    if "metrics" in study:
        metrics = _metric_list("study.metrics", study["metrics"], allowed_metrics,
                               f"the group kinds of this study ({', '.join(present)})")
    else:
        metrics = allowed_metrics

    study_defaults = {"case": study_case, "target": target, "T": T, "fit_range": fit_range, "reference": reference,
                      "allow_large": allow_large,
                      "metrics": metrics if "metrics" in study else None}
    groups, labels = [], {}
    for i, g in enumerate(groups_raw):
        group = _parse_group(f"group[{i}]", g, study_defaults)
        if group.label in labels:
            _fail(f"group[{i}].label", f"duplicate label {group.label!r} (also group[{labels[group.label]}])")
        labels[group.label] = i
        groups.append(group)

    if target is None and study_case is not None:
        target = "exact" if _has_exact(study_case, {}, get_case(study_case)) else "richardson"
    return StudySpec(name=name, target=target, metrics=metrics, fit_range=fit_range, T=T, groups=tuple(groups),
                     source=source)


def _parse_group(path: str, g: dict, defaults: dict) -> Group:
    kind = g["kind"]
    _table(path, g, GROUP_KEYS[kind], "a table")
    label = _required(path, g, "label", "every group needs a unique label")
    if not isinstance(label, str) or not label.strip() or not label.isprintable():
        _fail(_join(path, "label"), f"expected a non-empty string, got {_show(label)}")

    if "case" in g:
        case_path, case = _join(path, "case"), g["case"]
    elif defaults["case"] is not None:
        case_path, case = "study.case", defaults["case"]
    else:
        _fail(_join(path, "case"), "missing (and no study.case default)")
    base = _case(case_path, case)

    values = {}
    if "T" in g:
        values["T"] = _scalar(_join(path, "T"), g["T"], PROBLEM_KEYS["T"])
    elif defaults["T"] is not None:
        values["T"] = defaults["T"]
    for k in ("alpha", "beta"):
        if k in g:
            values[k] = _scalar(_join(path, k), g[k], PROBLEM_KEYS[k])
    try:
        problem, _ = apply_overrides(base, values)
    except CaseError as exc:
        _fail(_join(path, "alpha" if "alpha" in g else "beta"), str(exc).split(": ", 1)[-1])
    overrides = {}
    if problem.T != base.T:
        overrides["T"] = problem.T
    for k in ("alpha", "beta"):
        if k in values and values[k] != getattr(base.flow, k):
            overrides[k] = values[k]
    T = problem.T

    if kind == "reference":
        swept, runs, levels, target, reference = _reference_runs(path, g, label, case, problem, overrides, T, defaults)
        method = None
    else:
        method, swept, runs, levels, reference = _approx_runs(path, g, label, case, overrides, T, defaults, problem)
        target = "reference"
        if "target" in g:
            t = _string(_join(path, "target"), g["target"], TARGETS, "one of " + ", ".join(TARGETS))
            if t != "reference":
                _fail(_join(path, "target"), f"approx runs are compared with their FE reference: only 'reference' "
                                             f"is allowed, got {t!r}")

    if "metrics" in g:
        metrics = _metric_list(_join(path, "metrics"), g["metrics"], METRICS[kind], f"{kind} runs")
    else:
        metrics = tuple(m for m in (defaults["metrics"] or ()) if m in METRICS[kind]) or METRICS[kind]

    fit_range = None
    if "fit_range" in g:
        fit_range = _fit_range(_join(path, "fit_range"), g["fit_range"])
        if not levels:
            _fail(_join(path, "fit_range"), "this group sweeps no parameter, there is nothing to fit")
        _check_fit_range(_join(path, "fit_range"), fit_range, levels, f"{path} ({label!r})")
    elif defaults["fit_range"] is not None and levels:
        fit_range = defaults["fit_range"]
        _check_fit_range("study.fit_range", fit_range, levels, f"{path} ({label!r})")

    return Group(label=label, kind=kind, case=case, method=method, swept=swept, runs=tuple(runs), target=target,
                 metrics=metrics, fit_range=fit_range, reference=reference, levels=levels)


def _finish(run: dict) -> dict:
    run["run_id"] = run_id(run)
    return run


def _check_run_count(path: str, count: int, defaults: dict) -> None:
    """The study's share of the resource budget: the number of runs of one group."""
    limit = RESOURCE_LIMITS["runs"]
    if count > limit and not defaults.get("allow_large", False):
        _fail(path, f"{count:.3g} runs exceed the budget of {limit:.0e} runs of a study group "
                    f"(allow_large = true in [study] to run it anyway)")


def _reference_runs(path, g, label, case, problem, overrides, T, defaults):
    n_raw = _required(path, g, "n", "cells per direction: a value, a list or a ladder {start, factor, levels}")
    tau_raw = _required(path, g, "tau", "a value, a list, a ladder {start, factor, levels} or {tied = \"h^2\"}")
    n_vals, n_swept, n_ladder = _grid(_join(path, "n"), n_raw, "n", SOLVER_KEYS["n"])
    tied = None
    if isinstance(tau_raw, dict) and any(k in tau_raw for k in TIED_KEYS):
        tied = _tied(_join(path, "tau"), tau_raw)
        tau_vals, tau_swept = (), False
    else:
        if isinstance(tau_raw, dict):
            _table(_join(path, "tau"), tau_raw, LADDER_KEYS + TIED_KEYS)
        tau_vals, tau_swept, _ = _grid(_join(path, "tau"), tau_raw, "tau", SOLVER_KEYS["tau"])

    # target
    if "target" in g:
        tpath = _join(path, "target")
        target = _string(tpath, g["target"], TARGETS, "one of " + ", ".join(TARGETS))
        how = ""
    elif defaults["target"] is not None:
        tpath, target, how = "study.target", defaults["target"], f" (for {path}, {label!r})"
    else:
        exact = _has_exact(case, overrides, problem)
        tpath, target = _join(path, "target"), "exact" if exact else "richardson"
        how = f" (the default: case {case!r} has {'an' if exact else 'no'} exact solution)"
    if target == "exact" and not _has_exact(case, overrides, problem):
        _fail(tpath, f"case {case!r}{' with these overrides' if overrides else ''} has no exact solution{how}; "
                     f"use target 'richardson' or 'reference'")
    if target == "richardson":
        factor = n_ladder.get("factor") if n_ladder else None
        if not (n_ladder and float(factor).is_integer() and factor >= 2 and len(n_vals) >= 3 and not tau_swept):
            _fail(tpath, f"'richardson'{how} needs n to be a ladder {{start, factor, levels}} with an integer factor "
                         f">= 2 and levels >= 3 (nested meshes) and tau a single value or tied; got n = {_show(n_raw)}, "
                         f"tau = {_show(tau_raw)}")
    reference = None
    if "reference" in g and target != "reference":
        _fail(_join(path, "reference"), f"only used with target 'reference' (this group's target is {target!r})")
    if target == "reference":
        if "reference" in g:
            rpath, reference = _join(path, "reference"), _resolution(_join(path, "reference"), g["reference"])
        elif defaults["reference"] is not None:
            rpath, reference = "study.reference", defaults["reference"]
        else:
            _fail(_join(path, "reference"), "missing; target 'reference' needs the fine resolution {n, tau} "
                                            "(here or in [study])")

    _check_run_count(path, len(n_vals) * (1 if tied else len(tau_vals)), defaults)
    L = problem.domain.diameter_box
    d = problem.dim
    runs, all_taus = [], []
    for n in n_vals:
        h = _round(L / n)
        taus = (_round(tied[1] * (L / n) ** tied[0]),) if tied else tau_vals
        for tau in taus:
            _scalar(_join(path, "tau"), tau, SOLVER_KEYS["tau"])
            try:  # the resource budget of pdeflow.cases, before any run (allow_large = true in [study] lifts it)
                check_budget(problem, n=n, tau=tau, allow_large=defaults.get("allow_large", False))
            except CaseError as exc:
                _fail(path, str(exc).replace("--allow-large", "allow_large = true in [study]"))
            all_taus.append(tau)
            sweep = {"h": h}
            if tied or tau_swept:
                sweep["tau"] = tau
            run = {"group": label, "kind": "reference", "case": case, "method": None,
                   "params": {"n": n, "tau": tau, **overrides}, "seed": None, "sweep": sweep,
                   "cost": float((n + 1) ** d * T / tau)}
            runs.append(_finish(run))
    if reference is not None and (reference["n"] < max(n_vals) or reference["tau"] > min(all_taus)):
        _fail(rpath, f"the reference (n = {reference['n']}, tau = {reference['tau']:g}) must be at least as fine as "
                     f"the runs of {path} (n up to {max(n_vals)}, tau down to {min(all_taus):g})")

    swept, levels = [], {}
    if n_swept:
        swept.append("h")
        levels["h"] = len(n_vals)
    if tau_swept or (tied and n_swept):
        swept.append("tau")
        levels["tau"] = len(tau_vals) if tau_swept else len(n_vals)
    return tuple(swept), runs, levels, target, reference


def _approx_runs(path, g, label, case, overrides, T, defaults, problem=None):
    method = _string(_join(path, "method"), _required(path, g, "method", "one of " + ", ".join(METHODS)),
                     None, "a particle method: one of " + ", ".join(METHODS) + ", module:function or file.py:function")
    try:
        decl = get_method(method)
    except ValueError as exc:
        _fail(_join(path, "method"), str(exc))
    base = {f.name: f.default for f in fields(MethodParams) if f.name in METHOD_FIELDS}
    for name in METHOD_FIELDS:  # a swept lam of svgd would give runs that differ in nothing but their id
        if name in g and name not in decl.uses:
            _fail(_join(path, name), f"method {method} does not use {name} (it uses {', '.join(decl.uses)})")
    axes = []  # (sweep key, params key or ("extra", key), values, swept)
    levels = {}
    for name in METHOD_FIELDS:
        if name not in g:
            axes.append((name, name, (base[name],), False))
            continue
        vals, swept, _ = _grid(_join(path, name), g[name], name, METHOD_KEYS[name])
        axes.append((name, name, vals, swept))
    if "extra" in g:
        own = decl.keys
        if own is None:  # an external method: any key; a list is swept
            extra = _table(_join(path, "extra"), g["extra"], tuple(g["extra"]) if isinstance(g["extra"], dict) else ())
            for k in sorted(extra):
                raw = extra[k]
                vals = tuple(raw) if isinstance(raw, list) and raw else (raw,)
                axes.append((f"extra.{k}", ("extra", k), vals, isinstance(raw, list) and len(raw) > 1))
        else:
            extra = _table(_join(path, "extra"), g["extra"], tuple(own) or ("(none: this method has no own keys)",))
            for k in sorted(extra):
                vals, swept, _ = _grid(_join(path, f"extra.{k}"), extra[k], k, own[k])
                axes.append((f"extra.{k}", ("extra", k), vals, swept))

    seeds_raw = g.get("seeds", 1)
    spath = _join(path, "seeds")
    rule = "a positive integer k (seeds 0..k-1) or a non-empty list of distinct integers >= 0"
    if isinstance(seeds_raw, list):
        if not seeds_raw:
            _fail(spath, f"empty list; expected {rule}")
        seeds, seen = [], set()  # a set: a list of 10^5 seeds must not take 10^10 comparisons
        for i, s in enumerate(seeds_raw):
            if not (isinstance(s, int) and not isinstance(s, bool) and s >= 0):
                _fail(f"{spath}[{i}]", f"expected an integer >= 0, got {_show(s)}")
            if s in seen:
                _fail(f"{spath}[{i}]", f"duplicate seed {s}")
            seeds.append(s)
            seen.add(s)
    elif isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool) and seeds_raw >= 1:
        seeds = range(seeds_raw)  # a range: seeds = 10**9 must reach the budget below, not fill the memory
    else:
        _fail(spath, f"expected {rule}, got {_show(seeds_raw)}")
    count = len(seeds)
    for axis in axes:
        count *= len(axis[2])
    _check_run_count(path, count, defaults)

    if "reference" in g:
        reference = _resolution(_join(path, "reference"), g["reference"])
    elif defaults["reference"] is not None:
        reference = defaults["reference"]
    else:
        _fail(_join(path, "reference"), "missing; approx runs need the FE reference resolution {n, tau} "
                                        "(here or in [study])")

    runs = []
    for combo in product(*(axis[2] for axis in axes)):
        params = {"extra": {}}
        sweep = {}
        for (skey, pkey, _, swept), v in zip(axes, combo):
            if isinstance(pkey, tuple):
                params["extra"][pkey[1]] = v
            else:
                params[pkey] = v
            if swept:
                sweep[skey] = v
        try:
            method_params = MethodParams(**{k: params[k] for k in METHOD_FIELDS}, extra=params["extra"])
        except (TypeError, ValueError) as exc:
            _fail(path, f"invalid method parameters {sweep or ''}: {exc}")
        try:
            check_budget(problem, n_particles=method_params.n_particles,
                         dt=method_params.dt if "dt" in decl.uses else None,
                         n=reference["n"], tau=reference["tau"], allow_large=defaults.get("allow_large", False))
        except CaseError as exc:
            _fail(path, str(exc).replace("--allow-large", "allow_large = true in [study]"))
        # a method that refuses this case (geometry it does not approximate) fails here, before any solve
        reason = decl.refuse(problem, method_params) if (decl.refuse is not None and problem is not None) else None
        if reason:
            _fail(_join(path, "method"), reason)
        params["reference"] = dict(reference)
        params.update(overrides)
        for seed in seeds:
            run = {"group": label, "kind": "approx", "case": case, "method": method,
                   "params": {**params, "extra": dict(params["extra"]), "reference": dict(reference)},
                   "seed": seed, "sweep": dict(sweep),
                   "cost": float(params["n_particles"] ** 2 * T / params["dt"])}
            runs.append(_finish(run))
    swept = tuple(axis[0] for axis in axes if axis[3])
    levels = {axis[0]: len(axis[2]) for axis in axes if axis[3]}
    return method, swept, runs, levels, reference
