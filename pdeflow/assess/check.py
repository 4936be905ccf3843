"""`pdeflow check`: is one particle set — written by any code — consistent with a reference?

Input: a particle file (npz) with ``t`` (n_snap), ``x`` (n_snap × N × d, or n_snap × N in 1-D) and
optionally ``w`` (n_snap × N; default: equal weights summing to the initial mass ∫_Ω ρ0), at the
case's snapshot times.  Reference: the mesh solution of a continuum (default ``flow``, the case's
own flow).

Test, per snapshot t_k (MATH §6 (a)): the statistic is S_k = MMD²_k(μ̂_k, ρ_h(t_k)) with the
multi-scale Gaussian kernel k = Σ_ℓ k_ℓ (:mod:`pdeflow.assess.measures`), exact in the particles
(vertex quadrature of ρ_h).  Null hypothesis H0: μ̂_k is the empirical measure of n i.i.d. draws
from ρ_h(t_k)/M with equal weights M/n (M the reference mass, so a wrong mass counts against H0);
for a weighted set, n is Kish's effective sample size n_eff = (Σw)²/Σw² (an approximation:
importance weights are not i.i.d. draws).  Under H0, S = (M²/n²) Σ_{i,j} h̃(X_i, X_j) exactly, with
the centred kernel h̃(x,y) = k(x,y) − k̄(x) − k̄(y) + k̄̄, k̄(x) = E k(x,X), so that

    n S / M²  →  Σ_j λ_j Z_j²   (Z_j i.i.d. N(0,1); Gretton et al. 2009, spectral null),

λ_j the eigenvalues of the operator f ↦ E h̃(·,X) f(X), computed from the vertex quadrature as
the eigenvalues of diag(√p) H̃ diag(√p), p = m∘ρ/M.  The p-value is the tail of 50 000 draws of
the weighted χ² sum (top 200 eigenvalues, the rest added as their mean); no oracle sample is
needed because the reference density itself is known.  Measured: the false-alarm rate at
n = 30…1000 matches the nominal level at 0.05, 0.01 and 0.002 (tests/unit/test_check.py).
The p-values are corrected over the K snapshots by Bonferroni: reject (``inconsistent``) when
min_k p_k < α/K, α = ``--alpha`` (default 0.01), so the false-alarm rate over a file is ≤ α.
``inconclusive`` when the reference's own error ε_ref (the MMD between the mesh solutions at n
and n/2, ÷ 3 for second order in h) is not small against the statistical resolution:
ε_ref² > 0.1·sd(S) at some snapshot — a rejection could then be the reference's fault; refine it
(``--set n=...``).
"""
from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..approx.external import check_particles
from .measures import MeshMeasure

STATUS_EXIT = {"consistent": 0, "inconsistent": 4, "inconclusive": 5}
REFERENCE_NOISE_FRACTION = 0.1


class ParticleFileError(ValueError):
    """A particle file that cannot be checked (one line, exit 2)."""


def load_particle_file(path, problem) -> tuple:
    """(t, x, w) from an npz file, validated against the case; ParticleFileError otherwise."""
    path = Path(path)
    prefix = f"{path}:"
    if not path.exists():
        raise ParticleFileError(f"{path}: no such file")
    if path.is_dir():
        raise ParticleFileError(f"{path}: is a directory, not an npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # a truncated zip is a BadZipFile
        raise ParticleFileError(f"{path}: not a readable npz file ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not hasattr(data, "files"):
        raise ParticleFileError(f"{path}: a single .npy array, not an npz file with arrays t, x[, w]")
    try:
        missing = [k for k in ("t", "x") if k not in data.files]
        if missing:
            raise ParticleFileError(f"{prefix} missing array(s) {', '.join(missing)} (has: {', '.join(data.files) or 'none'}); "
                                    "expected t, x and optionally w")
        unknown = sorted(set(data.files) - {"t", "x", "w"})
        if unknown:
            raise ParticleFileError(f"{prefix} unknown array(s) {', '.join(unknown)}; expected t, x and optionally w")
        try:
            raw = {k: data[k] for k in ("t", "x", "w") if k in data.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # a corrupt member
            raise ParticleFileError(f"{prefix} unreadable array in the npz file ({type(exc).__name__}: "
                                    f"{str(exc)[:80]})") from None
        for k, arr in raw.items():
            if not isinstance(arr, np.ndarray):  # numpy hands a member without the .npy header back as bytes
                raise ParticleFileError(f"{prefix} member {k}.npy is not an npy array")
            # complex would lose its imaginary part in float(), bool is no position; objects are never unpickled
            if arr.dtype.kind not in "iuf":
                raise ParticleFileError(f"{prefix} array {k} has dtype {arr.dtype}; the arrays must be numeric (real)")
        t, x = (np.asarray(raw[k], dtype=float) for k in ("t", "x"))
        w = np.asarray(raw["w"], dtype=float) if "w" in raw else None
    finally:
        data.close()
    if x.ndim == 2 and problem.dim == 1:
        x = x[..., None]
    if w is None:
        if x.ndim != 3:
            raise ParticleFileError(f"{prefix} x of shape {x.shape}; expected (n_snap, N, {problem.dim})")
        from ..problem import initial_density, integrate

        mass = integrate(initial_density(problem), problem.domain)
        w = np.full(x.shape[:2], mass / x.shape[1])
    check_particles(t, x, w, problem, prefix, error=ParticleFileError)
    return t, x, w


NULL_DRAWS = 50_000
NULL_TOP = 200


class SpectralNull:
    """The null distribution of n S/M² for one reference snapshot (module docstring)."""

    def __init__(self, measure: MeshMeasure, rng: np.random.Generator = None, draws: int = NULL_DRAWS):
        y, v = measure.y, measure.v
        self.M = float(v.sum())
        p = v / self.M
        K = sum(k.gram(y, y) for k in measure.kernels)
        kbar = K @ p
        kbb = float(p @ kbar)
        H = K - kbar[:, None] - kbar[None, :] + kbb
        sp = np.sqrt(p)
        lam = np.clip(np.linalg.eigvalsh(sp[:, None] * H * sp[None, :])[::-1], 0.0, None)
        self.eigenvalues = lam
        self.mean1 = float(lam.sum())  # E n S / M² = E h̃(X, X)
        self.var1 = float(2.0 * np.dot(lam, lam))
        top, rest = lam[:NULL_TOP], float(lam[NULL_TOP:].sum())
        rng = np.random.default_rng(20241201) if rng is None else rng
        draws_ = np.empty(draws)
        for a in range(0, draws, 10_000):  # in blocks: memory O(10⁴ × 200)
            b = min(draws, a + 10_000)
            draws_[a:b] = (rng.standard_normal((b - a, top.size)) ** 2) @ top + rest
        self.draws = np.sort(draws_)

    def moments(self, n: float) -> tuple:
        """(E S, sd S) at sample size n."""
        return self.M**2 * self.mean1 / n, self.M**2 * math.sqrt(self.var1) / n

    def pvalue(self, s: float, n: float) -> float:
        z = n * s / self.M**2
        exceed = self.draws.size - np.searchsorted(self.draws, z, side="left")
        return float((1 + exceed) / (self.draws.size + 1))


def prepare_reference(reference: dict, scales) -> list:
    """[(MeshMeasure, SpectralNull)] per snapshot: the part of a check that depends on the reference
    only (reused when many particle sets are checked against one reference)."""
    out = []
    for k in range(len(reference["rho"])):
        measure = MeshMeasure(reference["x"], reference["rho"][k], reference["m"], scales)
        out.append((measure, SpectralNull(measure)))
    return out


def check_particles_against(problem, t, x, w, reference: dict, scales, alpha: float = 0.01,
                            reference_error: list = None, prepared: list = None) -> dict:
    """The test of the module docstring; ``reference`` has t, x, rho (n_snap × N_v), m.
    ``reference_error``: ε_ref per snapshot (RKHS norm of the sum kernel), or None.
    ``prepared``: :func:`prepare_reference` of the same reference and scales, or None."""
    if not (0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    K = len(t)
    prepared = prepare_reference(reference, scales) if prepared is None else prepared
    rows, reasons = [], []
    for k in range(K):
        measure, null = prepared[k]
        wk = w[k]
        n_eff = float(wk.sum() ** 2 / np.dot(wk, wk))
        s = measure.mmd2(x[k], wk)
        mean, sd = null.moments(n_eff)
        var = sd * sd
        p = null.pvalue(s, n_eff)
        row = {"t": float(t[k]), "n": int(wk.size), "n_eff": n_eff, "mmd2": s, "mmd": math.sqrt(s),
               "null_mean": mean, "null_sd": math.sqrt(var), "p_value": p,
               "mass": float(wk.sum()), "reference_mass": measure.mass}
        if reference_error is not None:
            eps = float(reference_error[k])
            row["reference_error"] = eps
            if eps * eps > REFERENCE_NOISE_FRACTION * math.sqrt(var):
                reasons.append(f"t = {t[k]:g}: the reference's error ({eps:.2e}) is not small against the "
                               f"statistical resolution at n_eff = {n_eff:.0f} (refine the reference: --set n=...)")
        rows.append(row)
    pvals = np.array([r["p_value"] for r in rows])
    level = alpha / K
    rejected = [r["t"] for r in rows if r["p_value"] < level]
    if reasons:  # a rejection could then be the reference's fault, and an acceptance says little
        status = "inconclusive"
    elif rejected:
        status = "inconsistent"
    else:
        status = "consistent"
    if status == "inconsistent":
        summary = (f"rejected at t = {', '.join(f'{v:g}' for v in rejected)}: min p = {np.nanmin(pvals):.2e} < "
                   f"alpha/K = {level:.2e}")
    elif status == "consistent":
        summary = f"no snapshot rejected: min p = {np.nanmin(pvals):.3g} >= alpha/K = {level:.2e}"
    else:
        summary = "; ".join(reasons)
    return {
        "status": status,
        "summary": summary,
        "evidence": {
            "test": "MMD^2 goodness of fit against the reference; spectral null of the V-statistic (i.i.d. draws, n_eff)",
            "kernel_scales": [float(s) for s in scales],
            "alpha": alpha,
            "bonferroni_level": level,
            "snapshots": rows,
            "reasons": reasons,
        },
    }
