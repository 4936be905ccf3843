"""PNG figures of checks and verifications (matplotlib, Agg backend), written next to summary.json.

* ``particles.png``: the particles against the reference at every snapshot — 1-D: the weighted
  histogram of the particles over the reference density; 2-D: the particles (marker area ∝
  weight) over the reference density; 3-D: the (x1, x2) projection.
* ``verify_errors.png``: the evidence of a verification — √E vs N at the method's dt with the
  fitted model and the tolerance, and vs dt at the middle N.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_particles(problem, t, x, w, ref_x, ref_rho, path, title: str = "", ref_label: str = "reference"):
    """One panel per snapshot; returns the path or None without matplotlib."""
    try:
        plt = _pyplot()
    except ImportError:
        return None
    from ..plots import draw_density_2d

    n_snap = len(t)
    d = problem.dim
    fig, axes = plt.subplots(1, n_snap, figsize=(3.2 * n_snap, 3.0 if d == 1 else 3.2), squeeze=False)
    ref_x = np.asarray(ref_x, float).reshape(len(ref_rho[0]), -1)
    for k, ax in enumerate(axes[0]):
        if d == 1:
            order = np.argsort(ref_x[:, 0])
            xs, rho = ref_x[order, 0], np.asarray(ref_rho[k])[order]
            edges = np.linspace(xs[0], xs[-1], 61)
            hist, _ = np.histogram(x[k][:, 0], bins=edges, weights=w[k])
            ax.stairs(hist / np.diff(edges), edges, fill=True, alpha=0.45, label="particles")
            ax.plot(xs, rho, "k-", lw=1.2, label=ref_label)
            # show where the reference or the particles have mass, not the whole far-field box
            on = xs[np.asarray(ref_rho).max(axis=0)[order] > 1e-3 * np.max(ref_rho)]
            lo_x = min(on.min(), np.percentile(x[k][:, 0], 0.5)) if on.size else xs[0]
            hi_x = max(on.max(), np.percentile(x[k][:, 0], 99.5)) if on.size else xs[-1]
            pad = 0.05 * (hi_x - lo_x)
            ax.set_xlim(max(xs[0], lo_x - pad), min(xs[-1], hi_x + pad))
            ax.set_xlabel("x")
        else:
            draw_density_2d(ax, ref_x[:, :2], np.asarray(ref_rho[k]), problem.domain, cmap="Greys")
            wk = np.asarray(w[k], float)
            n = wk.size
            show = np.random.default_rng(0).choice(n, size=min(n, 1500), replace=False)
            size = 4.0 * wk[show] / wk.mean()
            ax.scatter(x[k][show, 0], x[k][show, 1], s=np.clip(size, 0.2, 30), c="tab:red", alpha=0.5, lw=0)
            lo, hi = problem.domain.lower, problem.domain.upper
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
        ax.set_title(f"t = {float(t[k]):g}", fontsize=9)
    axes[0][0].legend(fontsize=7) if d == 1 else None
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_verify_errors(evidence: dict, path):
    """Left: against N at the method's dt — the total error √E per seed and its mean, the fluctuation
    √(E − bias²), the bias estimate √bias² (only where positive), the extrapolated residual with its
    95 % interval drawn at the right edge (N → ∞) and the tolerance.  Right: the same against dt."""
    try:
        plt = _pyplot()
    except ImportError:
        return None
    configs = evidence["configs"]
    fit = evidence["fit"]
    tol = evidence["tolerance"]
    dt0 = configs[0]["dt"]
    by_n = [c for c in configs if c["dt"] == dt0]
    ncols = 2 if evidence.get("dt_ladder") else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.8 * ncols, 3.7), squeeze=False)

    def panel(ax, rows, key, xlabel, edge):
        xs = np.array([c[key] for c in rows], float)
        for c in rows:
            ax.plot([c[key]] * len(c["E"]), np.sqrt(np.maximum(c["E"], 1e-300)), ".", color="0.65", ms=4)
        ax.plot(xs, [c["sqrt_mean_E"] for c in rows], "o-", label="total sqrt(E) (mean over seeds)")
        ax.plot(xs, [c["fluctuation"] for c in rows], "v:", label="fluctuation sqrt(E - bias^2)")
        bias = np.array([math.sqrt(c["bias2"]) if c["bias2"] > 0 else np.nan for c in rows])
        ax.plot(xs, bias, "s--", label="bias estimate sqrt(bias^2)")
        ax.axhline(tol, color="tab:red", lw=1, label="tolerance")
        if edge is not None:
            lo, hi = fit["residual_ci"]
            # a residual of 0 (bias² estimated ≤ 0) has no place on a log axis: the bar starts below the tolerance
            floor = tol / 100.0
            mid = max(fit["residual"], floor)
            ax.errorbar([edge], [mid], yerr=[[mid - max(lo, floor)], [max(hi - mid, 0.0)]], fmt="D",
                        color="tab:orange", capsize=4, label="residual (N -> inf), 95% CI")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=6.5)

    Ns = [c["n_particles"] for c in by_n]
    panel(axes[0][0], by_n, "n_particles", "N (particles); diamond: N -> inf", 2.0 * max(Ns))
    axes[0][0].set_ylabel("MMD (kernel sum, all snapshots)")
    rate = evidence.get("rate_N", {})
    if rate and math.isfinite(rate.get("rate", float("nan"))):
        axes[0][0].set_title(f"fluctuation rate in N: {rate['rate']:.2f} [{rate['ci'][0]:.2f}, {rate['ci'][1]:.2f}]",
                             fontsize=9)
    if ncols == 2:
        n_mid = evidence["plan"]["n_particles"][evidence["plan"]["dt_at"]]
        rows = sorted((c for c in configs if c["n_particles"] == n_mid), key=lambda c: c["dt"])
        panel(axes[0][1], rows, "dt", f"dt (N = {n_mid})", None)
    status = evidence.get("status")
    fig.suptitle(f"{evidence['method']} vs continuum {evidence['continuum']['name']}" + (f": {status}" if status else ""),
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
