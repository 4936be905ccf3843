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
