"""Observed convergence orders: pairwise, least-squares with a 95% confidence interval, and
Richardson extrapolation for cases without an exact solution.

For errors e_k at parameters p_k (h or τ) the model is log e = log C + q log p; the least-squares
slope q̂ has standard error s/√Σ(x−x̄)² (s² the residual variance with k−2 degrees of freedom)
and the interval q̂ ± t_{0.975,k−2}·se.  Richardson (three solutions on a geometric ladder with
ratio r): q = log(‖u₁−u₂‖/‖u₂−u₃‖)/log r, and the error of the finest u₃ is estimated by
‖u₂−u₃‖/(r^q − 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class OrderFit:
    order: float
    ci_low: float
    ci_high: float
    constant: float
    pairwise: tuple

    def __str__(self) -> str:
        return f"{self.order:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def pairwise_orders(params: Sequence[float], errors: Sequence[float]) -> tuple:
    x, y = np.log(np.asarray(params, float)), np.log(np.asarray(errors, float))
    return tuple(float(v) for v in np.diff(y) / np.diff(x))


def fit_order(params: Sequence[float], errors: Sequence[float], confidence: float = 0.95) -> OrderFit:
    """Least-squares slope of log(error) against log(param) with a confidence interval."""
    p, e = np.asarray(params, float), np.asarray(errors, float)
    if p.size != e.size or p.size < 2:
        raise ValueError("need at least two (parameter, error) pairs of equal length")
    if np.any(p <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("parameters and errors must be positive and finite")
    x, y = np.log(p), np.log(e)
    slope, intercept = np.polyfit(x, y, 1)
    if p.size > 2:
        resid = y - (slope * x + intercept)
        s2 = float(resid @ resid) / (p.size - 2)
        se = math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))
        half = stats.t.ppf(0.5 + confidence / 2, p.size - 2) * se
    else:
        half = float("inf")
    return OrderFit(float(slope), float(slope - half), float(slope + half), float(math.exp(intercept)), pairwise_orders(p, e))


def assert_order(params, errors, expected: float, tol: float, label: str = "") -> OrderFit:
    """Fail (AssertionError with the whole table) unless |fitted order − expected| ≤ tol."""
    fit = fit_order(params, errors)
    table = ", ".join(f"{p:.4g}: {e:.3e}" for p, e in zip(params, errors))
    assert abs(fit.order - expected) <= tol, (
        f"{label} observed order {fit} (pairwise {np.round(fit.pairwise, 3)}) is not {expected} ± {tol}; errors {table}"
    )
    return fit


@dataclass(frozen=True)
class Richardson:
    order: float
    finest_error: float
    differences: tuple


def richardson(d_coarse: float, d_fine: float, ratio: float) -> Richardson:
    """From ‖u₁−u₂‖ (d_coarse) and ‖u₂−u₃‖ (d_fine) on a ladder with refinement ``ratio``."""
    q = math.log(d_coarse / d_fine) / math.log(ratio)
    return Richardson(q, d_fine / (ratio**q - 1.0), (d_coarse, d_fine))


# --------------------------------------------------------------------------------------------
# Study helpers: seed averages, Roache's grid convergence index, joint fits in several
# parameters, and the fit of one (group, metric) of a study store.
# --------------------------------------------------------------------------------------------


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple:
    """Mean of ``values`` (e.g. one error over seeds) and the half width of its confidence
    interval from the t distribution: t_{(1+c)/2, n−1}·s/√n with s the sample standard deviation
    (ddof = 1).  One value: half width ``inf`` (as :func:`fit_order` with two points); none: ValueError."""
    v = np.asarray(values, float).ravel()
    if v.size == 0:
        raise ValueError("mean_ci of no values")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("inf")
    se = float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * se)


@dataclass(frozen=True)
class GCI:
    gci: float  # GCI of the finest solution f1 (relative, or absolute with relative=False)
    order: float  # p used (observed unless given)
    eps: float  # ε21: (f2 − f1)/f1, or f2 − f1 with relative=False
    extrapolated: float  # Richardson extrapolation f1 + (f1 − f2)/(r^p − 1)
    gci_coarse: float  # GCI of f2 from ε32
    asymptotic: float  # gci_coarse / (r^p · gci): ≈ 1 in the asymptotic range
    monotone: bool  # (f3 − f2)/(f2 − f1) > 0; False: oscillatory convergence, treat with care


def gci(f1: float, f2: float, f3: float, r: float, p: float | None = None, safety: float = 1.25,
        relative: bool = True) -> GCI:
    """Grid convergence index (Roache) of the finest of three solutions on a ladder with constant
    refinement ratio r > 1: f1 finest (parameter h), f2 at r·h, f3 at r²·h.

    Formula used: e21 = f2 − f1, e32 = f3 − f2; observed order (unless ``p`` is given)
    p = ln|e32/e21| / ln r; relative difference ε = e21/f1 (``relative=False``: ε = e21, for
    quantities near zero or norm differences); GCI_fine = Fs·|ε|/(r^p − 1) with safety factor
    Fs = ``safety`` (1.25 for three grids, Roache's recommendation; 3 with two grids and an assumed p).
    For f = f_exact + C·h^p exactly: GCI_fine = Fs·|f1 − f_exact|/|f1| and ``extrapolated`` = f_exact.
    Also returned: GCI of f2 from ε32 = e32/f2 and the asymptotic-range indicator
    GCI_coarse/(r^p·GCI_fine) (≈ 1 when the three solutions are in the asymptotic range)."""
    if r <= 1:
        raise ValueError("refinement ratio r must be > 1")
    e21, e32 = f2 - f1, f3 - f2
    if p is None:
        if e21 == 0 or e32 == 0:
            raise ValueError("cannot observe an order from equal solutions; pass p")
        p = math.log(abs(e32 / e21)) / math.log(r)
    rp = r**p
    if rp == 1.0:
        raise ValueError("order p = 0: no convergence")
    eps21 = e21 / f1 if relative else e21
    eps32 = e32 / f2 if relative else e32
    fine = safety * abs(eps21) / (rp - 1.0)
    coarse = safety * abs(eps32) / (rp - 1.0)
    asym = coarse / (rp * fine) if fine > 0 else float("nan")
    monotone = bool(e21 != 0 and e32 / e21 > 0)
    return GCI(float(fine), float(p), float(eps21), float(f1 + (f1 - f2) / (rp - 1.0)), float(coarse), float(asym), monotone)


def joint_fit(params: dict, errors: Sequence[float], confidence: float = 0.95) -> dict:
    """Least-squares fit of err ≈ Σ_p C_p·p^{q_p} over several parameters at once (e.g. τ and h of
    a 2-D grid of runs, err ≈ C_τ τ^{q_τ} + C_h h^{q_h}).

    Nonlinear least squares (``scipy.optimize.least_squares``) of the residuals
    log(Σ_p exp(a_p)·p^{q_p}) − log err in the unknowns a_p = log C_p and q_p, started from several
    initial guesses (the best is kept).  Standard errors from the Jacobian at the solution:
    cov = s²·(JᵀJ)⁻¹ with s² = Σres²/(m − 2k) (m data, k parameters); se(C_p) = C_p·se(a_p)
    (delta method).  Returns {"C", "q", "C_se", "q_se", "q_ci" (t interval), "rms" (residual in
    log space), "dof", "success"}, each per-parameter entry a dict keyed by parameter name."""
    from scipy.optimize import least_squares

    names = list(params)
    e = np.asarray(errors, float).ravel()
    P = np.array([np.asarray(params[n], float).ravel() for n in names])
    if P.shape[1] != e.size:
        raise ValueError("every parameter array needs one value per error")
    if np.any(P <= 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("parameters and errors must be positive and finite")
    k, m = len(names), e.size
    logP, loge = np.log(P), np.log(e)

    def residual(theta):
        a, q = theta[:k], theta[k:]
        terms = a[:, None] + q[:, None] * logP  # log of each term
        top = terms.max(axis=0)
        return top + np.log(np.exp(terms - top).sum(axis=0)) - loge  # log-sum-exp

    # initial guesses: slopes of a multilinear regression of log e on log p (clipped), and 1, 2
    A = np.column_stack([np.ones(m), logP.T])
    coef = np.linalg.lstsq(A, loge, rcond=None)[0][1:]
    starts = [np.clip(coef, 0.25, 4.0)] + [np.full(k, q0) for q0 in (1.0, 2.0, 0.5)]
    best = None
    for q0 in starts:
        # each term carries an equal share of the median error at the median parameters
        a0 = np.log(np.median(e) / k) - q0 * np.median(logP, axis=1)
        try:
            sol = least_squares(residual, np.concatenate([a0, q0]), method="lm" if m >= 2 * k else "trf",
                                xtol=1e-14, ftol=1e-14, gtol=1e-14, max_nfev=20000)
        except Exception:  # a bad start (overflow): try the next one
            continue
        if best is None or sol.cost < best.cost:
            best = sol
    if best is None:
        raise RuntimeError("joint_fit: no start converged")
    theta, J = best.x, best.jac
    dof = m - 2 * k
    if dof > 0:
        s2 = 2.0 * best.cost / dof
        try:
            cov = s2 * np.linalg.inv(J.T @ J)
            se = np.sqrt(np.abs(np.diag(cov)))
        except np.linalg.LinAlgError:
            se = np.full(2 * k, np.inf)
        tq = float(stats.t.ppf(0.5 + confidence / 2, dof))
    else:
        se, tq = np.full(2 * k, np.inf), float("inf")
    a, q, se_a, se_q = theta[:k], theta[k:], se[:k], se[k:]
    C = np.exp(a)
    return {
        "C": {n: float(c) for n, c in zip(names, C)},
        "q": {n: float(v) for n, v in zip(names, q)},
        "C_se": {n: float(c * s) for n, c, s in zip(names, C, se_a)},
        "q_se": {n: float(s) for n, s in zip(names, se_q)},
        "q_ci": {n: (float(v - tq * s), float(v + tq * s)) for n, v, s in zip(names, q, se_q)},
        "rms": float(math.sqrt(2.0 * best.cost / m)),
        "dof": int(dof),
        "success": bool(best.success),
    }


def _row_param(row: dict, param: str):
    sweep = row.get("sweep") or {}
    if param in sweep:
        return sweep[param]
    return (row.get("params") or {}).get(param)


def _row_value(row: dict, metric: str, snapshot: int):
    """The metric of a run at a snapshot index (None when missing)."""
    values = (row.get("metrics") or {}).get(metric)
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        try:
            v = values[snapshot]
        except IndexError:
            return None
    else:
        v = values
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def fit_group(rows: Sequence[dict], param: str, metric: str, snapshot: int = -1, fit_range=None,
              confidence: float = 0.95) -> dict:
    """Observed order of ``metric`` in ``param`` over the ``done`` runs of one group (rows as
    returned by :meth:`pdeflow.study.store.Store.rows`).

    The parameter of a run is ``sweep[param]`` (else ``params[param]``), its error
    ``metrics[metric][snapshot]`` (a scalar metric is used as is).  Runs at one parameter value
    (several seeds) are averaged: the level's error is the mean, with the t-interval half width of
    :func:`mean_ci` (``inf`` for one seed among several-seed levels, ``0`` when no level has
    several seeds).  Levels are sorted by increasing parameter; the LSQ fit (:func:`fit_order`) and
    the pairwise orders use the levels with finite positive mean error and, with
    ``fit_range=(lo, hi)`` (either bound may be None), lo ≤ param ≤ hi.  The order is the signed
    slope of log(error) against log(param) (negative for errors decreasing in n_particles).
    Order and interval are NaN with fewer than two usable levels.

    Returns {"param", "metric", "snapshot", "t" (snapshot time or None), "levels" (parameter
    values), "errors" (means), "ci" (half widths), "n_seeds", "samples", "fit_levels" (the
    values fitted), "order", "ci_low", "ci_high", "constant", "pairwise", "skipped" (runs not done
    or without the metric), "pooled" (True if runs at one level differ in another swept key)}."""
    by_level: dict = {}
    other_keys: dict = {}
    skipped, t_val = 0, None
    for row in rows:
        if row.get("status") != "done":
            skipped += 1
            continue
        p, v = _row_param(row, param), _row_value(row, metric, snapshot)
        if p is None or v is None:
            skipped += 1
            continue
        key = float(p)
        by_level.setdefault(key, []).append(v)
        others = tuple(sorted((k, str(x)) for k, x in (row.get("sweep") or {}).items() if k != param))
        other_keys.setdefault(key, set()).add(others)
        if t_val is None:
            t_list = (row.get("metrics") or {}).get("t")
            if isinstance(t_list, (list, tuple)) and t_list:
                try:
                    t_val = float(t_list[snapshot])
                except (IndexError, TypeError, ValueError):
                    pass
    levels = sorted(by_level)
    samples = [by_level[p] for p in levels]
    multi = any(len(s) > 1 for s in samples)
    errors, half = [], []
    for s in samples:
        mean, h = mean_ci(s, confidence)
        errors.append(mean)
        half.append(h if multi else 0.0)
    lo, hi = (None, None) if fit_range is None else fit_range
    use = [
        i for i, (p, e) in enumerate(zip(levels, errors))
        if math.isfinite(e) and e > 0 and (lo is None or p >= lo) and (hi is None or p <= hi)
    ]
    fp, fe = [levels[i] for i in use], [errors[i] for i in use]
    if len(fp) >= 2:
        fit = fit_order(fp, fe, confidence)
        order, ci_low, ci_high, constant, pairwise = fit.order, fit.ci_low, fit.ci_high, fit.constant, fit.pairwise
    else:
        nan = float("nan")
        order, ci_low, ci_high, constant, pairwise = nan, nan, nan, nan, ()
    return {
        "param": param,
        "metric": metric,
        "snapshot": snapshot,
        "t": t_val,
        "levels": levels,
        "errors": errors,
        "ci": half,
        "n_seeds": [len(s) for s in samples],
        "samples": samples,
        "fit_levels": fp,
        "order": order,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "constant": constant,
        "pairwise": list(pairwise),
        "skipped": skipped,
        "pooled": any(len(o) > 1 for o in other_keys.values()),
    }
