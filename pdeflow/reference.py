"""`pdeflow.Reference`: an exported reference solution as data (numpy/scipy only — no dolfinx).

``pdeflow export CASE --out FILE`` (:func:`pdeflow.fem.export.write_reference`) writes the mesh, the
nodal densities at the snapshot times and after every accepted time step, the lumped masses, the
scheme and its order in time, the case definition, the parameters, the versions, the error
estimates (per snapshot, when the solve was certified with ``--tol``) and the provenance, into one
npz file (or HDF5: ``.h5``/``.hdf5``, read with h5py).  This module loads and evaluates it:

* in space the density is the P1 function on the stored simplices (1-D intervals, 2-D triangles,
  3-D tetrahedra; :mod:`pdeflow.p1`); it is 0 outside the mesh;
* in time it is the piecewise polynomial through the stored accepted steps of the scheme's order:
  linear between two steps for the first-order schemes (frozen-mobility, hellinger-jko), the
  3-point Lagrange quadratic through the nearest three steps for BDF2 — exact at every stored step.
  A quadratic may undershoot 0 where ρ is tiny; every method here uses the same nodal values
  ρ_i(t) = max(0, Σ_j ℓ_j(t) ρ_i(t_j)) (the clipping never acts at a stored step, where ρ ≥ 0).

Points are arrays of shape (n, d) (1-D: also (n,)); times are scalars in [0, T].

File layout (format version 1; npz arrays, or HDF5 datasets and root attributes):

==================  ==========================================================================
``format``          the string ``pdeflow-reference``
``format_version``  1
``x``               (N, d) vertex coordinates (lexicographic order, as snapshots.npz)
``cells``           (M, d+1) vertex indices of the simplices
``m``               (N,) lumped masses m_i = ∫ψ_i (Σ_i m_i ρ_i = ∫ρ_h exactly)
``times``           (K,) snapshot times, 0 first
``rho``             (K, N) nodal densities at the snapshot times
``step_times``      (S,) the time after every accepted step, 0 first (the snapshots among them)
``step_rho``        (S, N) nodal densities after every accepted step
``scheme``          the time scheme (frozen-mobility, hellinger-jko, bdf2)
``time_order``      its order in time (1, or 2 for bdf2): the order of the interpolation in time
``case``            JSON: the case definition (``Problem.describe()``)
``params``          JSON: the solver parameters (n, h, tau, scheme, ...)
``versions``        JSON: dolfinx, PETSc, numpy, scipy, MPI, pdeflow
``estimates``       JSON: ``null``, or one object per snapshot {t, L1, L1_time, L1_space, mmd: {scale: value}}
``provenance``      JSON: how the file was made (command, date, MPI size, certified-solve record)
``solve``           JSON: solve statistics and the errors against an exact solution (null without one)
==================  ==========================================================================
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from .jsonable import jsonable_or_repr as _json_default
from .p1 import P1Mesh

FORMAT_NAME = "pdeflow-reference"
FORMAT_VERSION = 1
ARRAYS = ("x", "cells", "m", "times", "rho", "step_times", "step_rho")
TEXTS = ("format", "scheme", "case", "params", "versions", "estimates", "provenance", "solve")
INTS = ("format_version", "time_order")
HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = (".npz",) + HDF5_SUFFIXES
TIME_ORDER = {"frozen-mobility": 1, "hellinger-jko": 1, "bdf2": 2}


class ReferenceFileError(ValueError):
    """A reference file that cannot be used (one line)."""


def file_format(path) -> str:
    """"npz" or "hdf5" from the file name; ReferenceFileError for another suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    raise ReferenceFileError(f"{path}: unknown reference format {suffix or '(no suffix)'!r}; "
                             f"use {', '.join(SUFFIXES)}")


def import_h5py():
    """h5py, or a one-line ReferenceFileError (HDF5 reference files need it; npz files do not)."""
    try:
        import h5py
    except Exception as exc:  # noqa: BLE001 — ImportError, or a broken build (a clash of HDF5 libraries)
        raise ReferenceFileError(f"HDF5 reference files need h5py, which cannot be imported ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); pip install h5py "
                                 "(with Debian's dolfinx: apt install python3-h5py), or use .npz") from None
    return h5py


def _read_raw(path: Path) -> dict:
    kind = file_format(path)
    if not path.exists():
        raise ReferenceFileError(f"{path}: no such file")
    if path.is_dir():
        raise ReferenceFileError(f"{path}: is a directory, not a reference file")
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: np.asarray(npz[k]) for k in npz.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            detail = str(exc).splitlines()[0][:80] if str(exc) else ""
            raise ReferenceFileError(f"{path}: not a readable npz file ({type(exc).__name__}: {detail})") from None
    h5py = import_h5py()
    try:
        with h5py.File(path, "r") as f:
            out = {k: np.asarray(f[k][()]) for k in f.keys()}
            for k, v in f.attrs.items():
                out[k] = np.asarray(v.decode() if isinstance(v, bytes) else v)
            return out
    except (OSError, ValueError, KeyError) as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc) else ""
        raise ReferenceFileError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: {detail})") from None


def _text(raw: dict, key: str, prefix: str) -> str:
    v = raw[key]
    if v.dtype.kind == "S":
        v = v.astype(str)
    if v.dtype.kind != "U" or v.ndim != 0:
        raise ReferenceFileError(f"{prefix} entry {key!r} is not a text entry")
    return str(v[()])


def _json(raw: dict, key: str, prefix: str):
    try:
        return json.loads(_text(raw, key, prefix))
    except json.JSONDecodeError as exc:
        raise ReferenceFileError(f"{prefix} entry {key!r} is not valid JSON ({exc.msg})") from None


def _int(raw: dict, key: str, prefix: str) -> int:
    v = raw[key]
    if v.ndim != 0 or v.dtype.kind not in "iu":
        raise ReferenceFileError(f"{prefix} entry {key!r} is not an integer")
    return int(v)


class Reference:
    """An exported reference solution (see the module docstring).  ``Reference(path)`` or
    ``Reference.load(path)``; every defect of the file is a one-line :class:`ReferenceFileError`.

    Attributes: ``path``, ``format_version``, ``x`` (N, d), ``cells`` (M, d+1), ``m`` (N,),
    ``times`` (K,) and ``rho`` (K, N) at the snapshots, ``step_times`` (S,) and ``step_rho`` (S, N)
    after every accepted step, ``scheme``, ``time_order``, ``case`` (dict), ``params``,
    ``versions``, ``estimates`` (list of dicts or None), ``provenance``, ``solve``, ``T``, ``dim``,
    ``mesh`` (:class:`pdeflow.p1.P1Mesh`)."""

    def __init__(self, path):
        self.path = Path(path)
        prefix = f"{self.path}:"
        raw = _read_raw(self.path)
        if "format" not in raw:
            raise ReferenceFileError(f"{prefix} not a pdeflow reference file (no 'format' entry; write it with "
                                     "pdeflow export)")
        if _text(raw, "format", prefix) != FORMAT_NAME:
            raise ReferenceFileError(f"{prefix} not a pdeflow reference file (format {_text(raw, 'format', prefix)!r})")
        if "format_version" not in raw:
            raise ReferenceFileError(f"{prefix} no 'format_version' entry")
        version = _int(raw, "format_version", prefix)
        if version != FORMAT_VERSION:
            raise ReferenceFileError(f"{prefix} format version {version} is not supported (this pdeflow reads "
                                     f"version {FORMAT_VERSION})")
        missing = [k for k in ARRAYS + TEXTS + INTS if k not in raw]
        if missing:
            raise ReferenceFileError(f"{prefix} missing entr{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
        self.format_version = version
        for k in ARRAYS:
            if raw[k].dtype.kind not in ("iu" if k == "cells" else "iuf"):
                raise ReferenceFileError(f"{prefix} array {k!r} has dtype {raw[k].dtype}; expected "
                                         f"{'integers' if k == 'cells' else 'real numbers'}")
        x = raw["x"].astype(float)
        x = x[:, None] if x.ndim == 1 else x
        cells = raw["cells"].astype(np.int64)
        m, times, rho = raw["m"].astype(float), raw["times"].astype(float), raw["rho"].astype(float)
        step_times, step_rho = raw["step_times"].astype(float), raw["step_rho"].astype(float)
        if x.ndim != 2 or not 1 <= x.shape[1] <= 3 or x.shape[0] < 2:
            raise ReferenceFileError(f"{prefix} x of shape {x.shape}; expected (N, d), d = 1, 2 or 3")
        N, d = x.shape
        shapes = {"cells": (cells, 2, d + 1), "m": (m, 1, None), "times": (times, 1, None), "rho": (rho, 2, N),
                  "step_times": (step_times, 1, None), "step_rho": (step_rho, 2, N)}
        for k, (a, ndim, last) in shapes.items():
            if a.ndim != ndim or (last is not None and a.shape[-1] != last):
                raise ReferenceFileError(f"{prefix} {k} of shape {a.shape} does not fit x of shape {x.shape}")
        if m.shape != (N,) or rho.shape[0] != times.size or step_rho.shape[0] != step_times.size:
            raise ReferenceFileError(f"{prefix} inconsistent shapes (x {x.shape}, m {m.shape}, times {times.shape}, "
                                     f"rho {rho.shape}, step_times {step_times.shape}, step_rho {step_rho.shape})")
        if times.size < 1 or step_times.size < 2 or len(cells) < 1:
            raise ReferenceFileError(f"{prefix} no snapshots, fewer than 2 stored steps, or no cells")
        for k, a in (("x", x), ("m", m), ("times", times), ("rho", rho), ("step_times", step_times),
                     ("step_rho", step_rho)):
            if not np.all(np.isfinite(a)):
                raise ReferenceFileError(f"{prefix} non-finite values in {k}")
        if np.any(rho < 0) or np.any(step_rho < 0):
            raise ReferenceFileError(f"{prefix} negative densities in {'rho' if np.any(rho < 0) else 'step_rho'}")
        if np.any(m <= 0):
            raise ReferenceFileError(f"{prefix} non-positive lumped masses in m")
        if cells.min() < 0 or cells.max() >= N:
            raise ReferenceFileError(f"{prefix} cells refer to vertices that do not exist")
        if times[0] != 0.0 or step_times[0] != 0.0 or np.any(np.diff(times) <= 0) or np.any(np.diff(step_times) <= 0):
            raise ReferenceFileError(f"{prefix} times and step_times must start at 0 and increase")
        self.scheme = _text(raw, "scheme", prefix)
        self.time_order = _int(raw, "time_order", prefix)
        if self.time_order not in (1, 2):
            raise ReferenceFileError(f"{prefix} time_order {self.time_order}; expected 1 or 2")
        self.case = _json(raw, "case", prefix)
        self.params = _json(raw, "params", prefix)
        self.versions = _json(raw, "versions", prefix)
        self.estimates = _json(raw, "estimates", prefix)
        self.provenance = _json(raw, "provenance", prefix)
        self.solve = _json(raw, "solve", prefix)
        if not isinstance(self.case, dict) or not isinstance(self.case.get("T"), (int, float)):
            raise ReferenceFileError(f"{prefix} the case definition is not an object with T")
        self.T = float(self.case["T"])
        scale = max(self.T, 1e-300)
        if abs(times[-1] - self.T) > 1e-12 * scale or abs(step_times[-1] - self.T) > 1e-12 * scale:
            raise ReferenceFileError(f"{prefix} the stored times end at {times[-1]:g} / {step_times[-1]:g}, not at "
                                     f"T = {self.T:g}")
        where = np.searchsorted(step_times, times - 1e-12 * scale)
        if np.any(where >= step_times.size) or np.any(np.abs(step_times[np.minimum(where, step_times.size - 1)] - times)
                                                       > 1e-12 * scale):
            raise ReferenceFileError(f"{prefix} a snapshot time is not among the stored steps")
        if not np.allclose(step_rho[where], rho, rtol=1e-12, atol=0.0):
            raise ReferenceFileError(f"{prefix} the snapshot densities differ from the stored steps at their times")
        if self.estimates is not None:
            if not (isinstance(self.estimates, list) and len(self.estimates) == times.size
                    and all(isinstance(e, dict) for e in self.estimates)):
                raise ReferenceFileError(f"{prefix} estimates must be null or one object per snapshot "
                                         f"({times.size})")
        try:
            self.mesh = P1Mesh(x, cells)
        except ValueError as exc:
            raise ReferenceFileError(f"{prefix} {exc}") from None
        lumped = np.zeros(N)
        np.add.at(lumped, cells.ravel(), np.repeat(self.mesh.volumes / (d + 1), d + 1))
        if not np.allclose(lumped, m, rtol=1e-8, atol=1e-14 * float(m.max())):
            raise ReferenceFileError(f"{prefix} the lumped masses m do not match the cells (a corrupt mesh)")
        self.x, self.cells, self.m, self.times, self.rho = x, cells, m, times, rho
        self.step_times, self.step_rho = step_times, step_rho
        self.dim = d

    @classmethod
    def load(cls, path) -> "Reference":
        return cls(path)

    def __repr__(self) -> str:
        return (f"Reference({str(self.path)!r}: case {self.case.get('name')!r}, {self.dim}-D, {len(self.x)} vertices, "
                f"{len(self.cells)} cells, {self.step_times.size - 1} steps of {self.scheme}, T = {self.T:g})")

    # --- time ---------------------------------------------------------------------------------
    def _check_t(self, t) -> float:
        try:
            tf = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"t must be a number, got {t!r}") from None
        tol = 1e-12 * max(self.T, 1e-300)
        if not (-tol <= tf <= self.T + tol):  # also rejects NaN
            raise ValueError(f"t = {t!r} is outside [0, T = {self.T:g}]")
        return min(max(tf, 0.0), self.T)

    def time_weights(self, t) -> tuple:
        """(indices into step_times, weights): ρ(t) = Σ w_j step_rho[idx_j] before clipping."""
        t = self._check_t(t)
        ts = self.step_times
        tol = 1e-14 * max(self.T, 1e-300)
        i = int(np.searchsorted(ts, t))
        for j in (i - 1, i):
            if 0 <= j < ts.size and abs(ts[j] - t) <= tol:
                return np.array([j]), np.array([1.0])
        i = min(max(i, 1), ts.size - 1)  # t in (ts[i-1], ts[i])
        if self.time_order == 1 or ts.size < 3:
            idx = np.array([i - 1, i])
        else:
            left = t - ts[i - 2] if i >= 2 else math.inf  # the nearest third step
            right = ts[i + 1] - t if i + 1 < ts.size else math.inf
            idx = np.array([i - 2, i - 1, i] if left <= right else [i - 1, i, i + 1])
        nodes = ts[idx]
        w = np.array([np.prod([(t - nodes[b]) / (nodes[a] - nodes[b]) for b in range(len(idx)) if b != a])
                      for a in range(len(idx))])
        return idx, w

    def nodal(self, t) -> np.ndarray:
        """The nodal values ρ_i(t) (N,) that every method below uses (module docstring)."""
        idx, w = self.time_weights(t)
        if idx.size == 1:
            return self.step_rho[idx[0]].copy()
        return np.maximum(w @ self.step_rho[idx], 0.0)

    # --- evaluation -----------------------------------------------------------------------------
    def _points(self, x) -> np.ndarray:
        p = np.asarray(x, dtype=float)
        if p.ndim == 0 or (p.ndim == 1 and self.dim == 1):
            p = p.reshape(-1, 1)
        elif p.ndim == 1 and p.size == self.dim:
            p = p[None, :]
        if p.ndim != 2 or p.shape[1] != self.dim:
            raise ValueError(f"points of shape {np.shape(x)}; expected (n, {self.dim})")
        return p

    def density(self, t, x) -> np.ndarray:
        """ρ_h(t, x) at points ``x`` (n, d) — P1 in space (0 outside the mesh), the scheme's order in
        time (module docstring); returns (n,)."""
        p = self._points(x)
        return self.mesh.evaluate(self.nodal(t), p, outside="zero")

    def mass(self, t) -> float:
        """∫ρ_h(t) = Σ_i m_i ρ_i(t) (exact for the P1 function)."""
        return float(self.m @ self.nodal(t))

    def sample(self, t, n: int, seed) -> np.ndarray:
        """``n`` independent draws (n, d) from ρ_h(t)/∫ρ_h(t), exactly (a cell with probability ∝ its
        mass, then the linear density inside it; :meth:`pdeflow.p1.P1Mesh.sample`), from the nodal
        values ρ_i(t) clipped at 0 (a quadratic interpolation in time may undershoot where ρ is tiny).
        For a flow that does not conserve mass, give each draw the weight ``mass(t) / n``.
        ``seed``: an integer (or a numpy Generator)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.mesh.sample(self.nodal(t), int(n), rng)

    # quadrature rules on the reference simplex: barycentric points, weights summing to 1
    _RULES = {
        1: (np.array([[0.5 + 0.5 / math.sqrt(3), 0.5 - 0.5 / math.sqrt(3)],
                      [0.5 - 0.5 / math.sqrt(3), 0.5 + 0.5 / math.sqrt(3)]]), np.array([0.5, 0.5])),  # Gauss, degree 3
        2: (np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]), np.full(3, 1 / 3)),  # edge midpoints, degree 2
        3: ((lambda a, b: np.array([[a, b, b, b], [b, a, b, b], [b, b, a, b], [b, b, b, a]]))(
            0.5854101966249685, 0.1381966011250105), np.full(4, 0.25)),  # degree 2
    }

    def quadrature(self) -> tuple:
        """(points (Q, d), weights (Q,), barycentric (Q, d+1), cell of each point) of the rule of :meth:`expect`."""
        bary, wq = self._RULES[self.dim]
        v = self.x[self.cells]  # M × (d+1) × d
        pts = np.einsum("qk,mkd->mqd", bary, v).reshape(-1, self.dim)
        weights = (self.mesh.volumes[:, None] * wq[None, :]).ravel()
        return pts, weights, bary

    def expect(self, t, f):
        """∫ f ρ_h(t) dx by a per-cell rule exact for polynomials of degree 2 (3 in 1-D: two Gauss
        points; 2-D: the edge midpoints; 3-D: the 4-point rule): exact when f is affine on each cell
        (in 1-D quadratic) — e.g. f P1 on the same mesh — and O(h³) for a smooth f (ρ_h is linear
        on every cell).  ``f`` takes points (Q, d) and returns (Q,) or (Q, ...); the result has
        f's trailing shape (a float for a scalar f).  ``expect(t, lambda x: 1)`` is ``mass(t)``."""
        pts, weights, bary = self.quadrature()
        rho_q = np.einsum("qk,mk->mq", bary, self.nodal(t)[self.cells]).ravel()
        vals = np.asarray(f(pts), dtype=float)
        if vals.ndim == 0:
            vals = np.full(len(pts), float(vals))
        if vals.shape[0] != len(pts):
            raise ValueError(f"f returned shape {vals.shape} for {len(pts)} points")
        out = np.tensordot(weights * rho_q, vals, axes=(0, 0))
        return float(out) if np.ndim(out) == 0 else out

    # --- error estimates --------------------------------------------------------------------------
    def error_estimate(self, t):
        """The stored error estimate at time t: at a snapshot time, that snapshot's entry
        {t, L1, L1_time, L1_space, mmd: {scale: value}} (as written by the certified solve); between
        two snapshots, the larger of the two neighbours' values, key by key (the error is not known
        in between; the max bounds it if the error is monotone between snapshots — an assumption).
        None when the file holds no estimates (an export without ``--tol``)."""
        t = self._check_t(t)
        if self.estimates is None:
            return None
        tol = 1e-12 * max(self.T, 1e-300)
        k = int(np.searchsorted(self.times, t - tol))
        if abs(self.times[k] - t) <= tol:
            return dict(self.estimates[k])
        a, b = self.estimates[k - 1], self.estimates[k]
        return {"t": t, **_max_merge(a, b, skip=("t",))}

    def mmd_estimates(self, scales) -> np.ndarray:
        """(K, len(scales)) the stored MMD error estimates at the given kernel scales; a one-line
        ReferenceFileError if the file has none or lacks a scale."""
        if self.estimates is None:
            raise ReferenceFileError(f"{self.path}: no error estimates (export it with --tol)")
        out = np.empty((self.times.size, len(scales)))
        for k, e in enumerate(self.estimates):
            mmd = e.get("mmd")
            if not isinstance(mmd, dict):
                raise ReferenceFileError(f"{self.path}: estimate at t = {self.times[k]:g} has no mmd values")
            stored = {}
            for key, v in mmd.items():
                try:
                    stored[float(key)] = float(v)
                except (TypeError, ValueError):
                    continue
            for j, s in enumerate(scales):
                hit = [v for key, v in stored.items() if abs(key - float(s)) <= 1e-6 * abs(float(s))]
                if not hit or not math.isfinite(hit[0]) or hit[0] < 0:
                    raise ReferenceFileError(f"{self.path}: no valid MMD estimate at scale {s:g} (t = {self.times[k]:g}; "
                                             f"stored scales {sorted(stored)})")
                out[k, j] = hit[0]
        return out

    def case_matches(self, described: dict):
        """None if ``described`` (a ``Problem.describe()``) is the stored case, else the first
        difference as text (compared after a JSON round trip, as stored)."""
        mine = json.loads(json.dumps(described, default=_json_default))
        if mine == self.case:
            return None
        for key in sorted(set(mine) | set(self.case)):
            if mine.get(key) != self.case.get(key):
                return f"{key}: file {self.case.get(key)!r}, case {mine.get(key)!r}"
        return "the case definitions differ"  # pragma: no cover


def _max_merge(a: dict, b: dict, skip=()) -> dict:
    out = {}
    for key in [k for k in a if k in b]:
        if key in skip:
            continue
        va, vb = a[key], b[key]
        if isinstance(va, dict) and isinstance(vb, dict):
            out[key] = _max_merge(va, vb)
        elif isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
            out[key] = float("nan") if (va != va or vb != vb) else max(va, vb)
    return out


def load(path) -> Reference:
    return Reference(path)
