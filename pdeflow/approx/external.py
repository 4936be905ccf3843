"""Methods from outside pdeflow, and validation of what any method returns (the edge).

* :func:`load_external` resolves ``package.module:function``, ``path/to/file.py:function`` and
  entry points of the group ``pdeflow.methods`` to a :class:`~.methods.MethodDecl`.
* :func:`as_trajectory` turns a method's result — a :class:`ParticleTrajectory` or a plain dict
  with ``times``, ``x`` (n_snap × N × d), ``w`` (n_snap × N) and optional ``info`` — into a
  validated ParticleTrajectory, or raises :class:`MethodOutputError` with one line naming what is
  wrong (shape, NaN/inf, a point outside Ω, a negative weight, times that are not the case's
  snapshot times).
* :func:`parse_literal` types a ``--set`` value for an external method (int, float, bool, list,
  string) by Python literal parsing.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .particles import ParticleTrajectory

ENTRY_POINT_GROUP = "pdeflow.methods"
TIME_TOL = 1e-9  # relative to T: snapshot times must match the case's to this


class MethodOutputError(ValueError):
    """A method returned something that is not a valid particle trajectory for this case."""


class ExternalMethodError(ValueError):
    """An external method spec cannot be resolved to a callable."""


def parse_literal(raw: str):
    """'3' → 3, '1e-3' → 0.001, 'True' → True, '[1, 2]' → [1, 2], 'abc' → 'abc'."""
    text = raw.strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        # 'nan' and 'inf' are not literals, but they are meant as numbers, not as the strings
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ExternalMethodError(f"value {raw!r} is not finite") from None
        return text
    if not _all_finite(value):
        raise ExternalMethodError(f"value {raw!r} is not finite")
    return value


def _all_finite(value) -> bool:
    """No inf/NaN float anywhere in a literal ('[1, 1e400]' holds inf)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, complex):
        return math.isfinite(value.real) and math.isfinite(value.imag)
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(k) and _all_finite(v) for k, v in value.items())
    return True


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    return {ep.name: ep for ep in eps}


def plugin_names() -> list:
    return sorted(_entry_points())


def _load_file(path: Path):
    name = "pdeflow_external_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExternalMethodError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # the file's folder on the path, so that it can import its own helpers, as `python file.py` would
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a script's sys.exit() at import is a failed import, not pdeflow's exit
        sys.modules.pop(name, None)
        raise ExternalMethodError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def _resolve_callable(spec: str, builtin_names) -> tuple:
    eps = _entry_points()
    if spec in eps:
        try:
            fn = eps[spec].load()
        except Exception as exc:
            raise ExternalMethodError(f"plug-in method {spec!r} ({eps[spec].value}) failed to load: "
                                      f"{type(exc).__name__}: {exc}") from None
        return fn, f"entry point {eps[spec].value}"
    if ":" not in spec:
        known = list(builtin_names) + sorted(eps)
        raise ExternalMethodError(
            f"unknown method {spec!r}; choose from {', '.join(known)}, or give package.module:function "
            f"or path/to/file.py:function")
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise ExternalMethodError(f"method {spec!r}: expected package.module:function or path/to/file.py:function")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ExternalMethodError(f"method {spec!r}: no file {target}")
        module = _load_file(path)
        source = f"file {path}"
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ExternalMethodError(f"method {spec!r}: module {exc.name!r} not found") from None
        except (Exception, SystemExit) as exc:
            raise ExternalMethodError(f"method {spec!r}: importing {target} failed: {type(exc).__name__}: {exc}") from None
        source = f"module {target}"
    fn = getattr(module, attr, None)
    if fn is None:
        raise ExternalMethodError(f"method {spec!r}: {source} has no attribute {attr!r}")
    if not callable(fn):
        raise ExternalMethodError(f"method {spec!r}: {attr!r} is not callable")
    return fn, source


def _declared_continuum(fn):
    declared = getattr(fn, "continuum", None)
    if declared is None:
        return None
    from ..continua import fill_from_params, parse_continuum

    if isinstance(declared, str):
        name, fixed = parse_continuum(declared)
        # "stein" alone: kernel and sigma come from the run's params (explicit "stein:sigma=..." wins)
        return lambda problem, p, _n=name, _d=fixed: (_n, fill_from_params(_n, _d, p))
    if callable(declared):
        def continuum(problem, params, _f=declared):
            try:
                value = _f(problem, params)
            except Exception as exc:  # the user's code: its failure is a one-line error, not a traceback
                raise ExternalMethodError(f"{getattr(fn, '__name__', fn)}.continuum raised {type(exc).__name__}: "
                                          f"{exc}") from None
            name, d = parse_continuum(value) if isinstance(value, str) else (str(value[0]), dict(value[1]))
            return name, fill_from_params(name, d, params)

        return continuum
    raise ExternalMethodError(f"{getattr(fn, '__name__', fn)}.continuum must be a string or a callable")


def _guarded_refuse(spec: str, refuse):
    """``refuse`` whose exceptions become its reason: the user's refuse() runs before any solve, at
    every place that asks it (CLI, spec, verify), and a bug in it must be one line there."""
    def guarded(problem, params):
        try:
            reason = refuse(problem, params)
        except Exception as exc:
            return f"{spec}: its refuse() raised {type(exc).__name__}: {exc}"
        if not reason:
            return None
        if not isinstance(reason, str):
            return f"{spec}: its refuse() returned {type(reason).__name__}; expected a string or None"
        return " ".join(reason.split())

    return guarded


def load_external(spec: str, builtin_names=()):
    """A MethodDecl for an external callable ``fn(problem, params)`` (see the module docstring)."""
    from .methods import MethodDecl

    fn, source = _resolve_callable(spec, builtin_names)
    refuse = getattr(fn, "refuse", None)
    if refuse is not None and not callable(refuse):
        raise ExternalMethodError(f"method {spec!r}: its 'refuse' attribute must be callable")
    if refuse is not None:
        refuse = _guarded_refuse(spec, refuse)
    doc = (getattr(fn, "__doc__", None) or "").strip().splitlines()
    fields = ("n_particles", "lam", "sigma", "kernel", "dt", "seed", "xi")
    uses = getattr(fn, "uses", fields)  # e.g. ("n_particles", "seed"): no dt ladder in a verification
    if isinstance(uses, str) or not all(u in fields for u in uses):
        raise ExternalMethodError(f"method {spec!r}: its 'uses' attribute must list MethodParams fields "
                                  f"({', '.join(fields)}), got {uses!r}")
    return MethodDecl(name=spec, summary=doc[0] if doc else f"external method from {source}", keys=None,
                      uses=tuple(uses),
                      continuum=_declared_continuum(fn), refuse=refuse, run=fn, source=source,
                      dt_in_continuum=bool(getattr(fn, "dt_in_continuum", False)))


def _as_float_array(value, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise MethodOutputError(f"{what} is not a numeric array") from None
    return arr


def as_trajectory(result, problem, name: str, params=None, expected_n=None) -> ParticleTrajectory:
    """Validate a method's result against ``problem`` (see the module docstring)."""
    prefix = f"method {name}: returned"
    if isinstance(result, ParticleTrajectory):
        times, x, w, info = result.times, result.x, result.w, result.info
        traj = result
    elif isinstance(result, dict):
        missing = [k for k in ("times", "x", "w") if k not in result]
        if missing:
            raise MethodOutputError(f"{prefix} a dict without {', '.join(repr(k) for k in missing)} "
                                    f"(expected times, x (n_snap, N, d), w (n_snap, N), optional info)")
        unknown = sorted(set(result) - {"times", "x", "w", "info", "energy", "steps"})
        if unknown:
            raise MethodOutputError(f"{prefix} unknown keys {unknown}; expected times, x, w, info")
        times, x, w, info = result["times"], result["x"], result["w"], result.get("info") or {}
        traj = None
        if not isinstance(info, dict):
            raise MethodOutputError(f"{prefix} info of type {type(info).__name__}; expected a dict")
    else:
        raise MethodOutputError(f"{prefix} {type(result).__name__}; expected a ParticleTrajectory or a dict "
                                f"with times, x, w")
    times = _as_float_array(times, f"{prefix} times")
    x = _as_float_array(x, f"{prefix} x")
    w = _as_float_array(w, f"{prefix} w")
    if x.ndim == 2 and problem.dim == 1:  # 1-D positions may come without the last axis
        x = x[..., None]
    check_particles(times, x, w, problem, prefix, error=MethodOutputError, expected_n=expected_n)
    if traj is not None:
        if traj.x.ndim == 2:
            traj.x = x
        return traj
    return ParticleTrajectory(method=name, params=params.describe() if params is not None else {}, times=times,
                              x=x, w=w, steps=list(result.get("steps") or []), info=dict(info),
                              energy=None if result.get("energy") is None else np.asarray(result["energy"], float))


def check_particles(times, x, w, problem, prefix: str, error=ValueError, expected_n=None) -> None:
    """Shapes, finiteness, points in Ω, w ≥ 0, times = the case's snapshot times; ``error(one line)``."""
    snaps = np.asarray(problem.snapshot_times(), dtype=float)
    d = problem.dim
    if times.ndim != 1:
        raise error(f"{prefix} times of shape {times.shape}; expected ({len(snaps)},)")
    if x.ndim == 2 and d == 1:
        x = x[..., None]
    if x.ndim != 3 or x.shape[2] != d:
        raise error(f"{prefix} x of shape {x.shape}; expected (n_snap, N, {d}) for this {d}-D case")
    n_snap, n = x.shape[0], x.shape[1]
    if w.shape != (n_snap, n):
        raise error(f"{prefix} w of shape {w.shape}; expected {(n_snap, n)} (x has shape {x.shape})")
    if times.shape != (n_snap,):
        raise error(f"{prefix} {times.shape[0]} times but {n_snap} snapshots in x")
    if n < 2:
        raise error(f"{prefix} {n} particle(s); need at least 2")
    if expected_n is not None and n != expected_n:
        raise error(f"{prefix} {n} particles; expected n_particles = {expected_n}")
    # `not <=`: a NaN time must not pass (NaN > tol is False)
    if times.shape != snaps.shape or not np.max(np.abs(times - snaps)) <= TIME_TOL * max(problem.T, 1.0):
        raise error(f"{prefix} times {[float(f'{t:.6g}') for t in times]}; expected the case's snapshot times "
                    f"{[float(f'{t:.6g}') for t in snaps]}")
    for arr, what in ((x, "x"), (w, "w")):
        bad = ~np.isfinite(arr)
        if bad.any():
            k = int(np.argwhere(bad)[0][0])
            raise error(f"{prefix} {int(bad.sum())} non-finite value(s) in {what} (first at snapshot t = {snaps[k]:g})")
    if (w < 0).any():
        k, i = (int(v) for v in np.argwhere(w < 0)[0])
        raise error(f"{prefix} {int((w < 0).sum())} negative weight(s) (first: w = {w[k, i]:.3g} at t = {snaps[k]:g})")
    with np.errstate(over="ignore"):
        total = w.sum(axis=1)
    if not np.isfinite(total).all():  # finite weights of 1e307 each: the mass itself overflows
        k = int(np.argwhere(~np.isfinite(total))[0][0])
        raise error(f"{prefix} weights whose sum overflows at t = {snaps[k]:g}")
    if not (total > 0).all():
        k = int(np.argwhere(~(total > 0))[0][0])
        raise error(f"{prefix} weights that sum to 0 at t = {snaps[k]:g}")
    inside = problem.domain.contains(x.reshape(-1, d)).reshape(n_snap, n)
    if not inside.all():
        k, i = (int(v) for v in np.argwhere(~inside)[0])
        raise error(f"{prefix} {int((~inside).sum())} point(s) outside the domain (first: x = "
                    f"{np.array2string(x[k, i], precision=4)} at t = {snaps[k]:g}); reflect them into the domain")


def describe_source(decl) -> str:
    return decl.source


__all__ = ["load_external", "as_trajectory", "check_particles", "parse_literal", "MethodOutputError",
           "ExternalMethodError", "plugin_names", "replace"]
