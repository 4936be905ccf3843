"""PNG figures of a reference solve (matplotlib, Agg backend), written next to the data.

* ``snapshots.png``: 1-D — ρ_h at every snapshot time, with the exact solution dashed where one
  exists and the target π (rescaled to the mass of ρ) dotted; 2-D — one image per snapshot.
* ``diagnostics.png``: energy F_h(ρⁿ), mass drift (the mass itself for unbalanced flows), Newton iterations and the relative residual of
  the discrete energy identity per step.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_density_2d(ax, x, values, domain=None, **kw):
    """Draw nodal values on 2-D vertices x (n, 2): a raster image for the vertices of a structured
    box mesh, else Gouraud shading on their Delaunay triangulation, with the triangles that lie
    outside Ω (the hole of an annulus, the notch of an L-shape) masked.  Returns the artist."""
    import matplotlib.tri as mtri

    xs, ys = np.unique(np.round(x[:, 0], 10)), np.unique(np.round(x[:, 1], 10))
    if xs.size * ys.size == x.shape[0]:
        grid = np.asarray(values).reshape(xs.size, ys.size).T
        return ax.imshow(grid, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), **kw)
    tri = mtri.Triangulation(x[:, 0], x[:, 1])
    if domain is not None and not domain.is_box:
        centroids = x[tri.triangles].mean(axis=1)
        tri.set_mask(~domain.contains(centroids))
    ax.set_aspect("equal")
    artist = ax.tripcolor(tri, values, shading="gouraud", **kw)
    if domain is not None and not domain.is_box:
        for curve in domain.shape.outline():
            ax.plot(curve[:, 0], curve[:, 1], color="0.3", lw=0.8)
    return artist


def plot_snapshots(problem, t, x, rho, exact, path) -> Path:
    if problem.dim > 2:
        return None  # 3-D: use solution.xdmf in ParaView
    plt = _pyplot()
    path = Path(path)
    if problem.dim == 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = x[:, 0]
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(t)))
        for k, (tk, c) in enumerate(zip(t, colors)):
            ax.plot(xs, rho[k], color=c, lw=1.6, label=f"t = {tk:g}")
            if exact is not None:
                ax.plot(xs, exact.density(tk, xs[None, :]), color="k", lw=0.8, ls="--")
        pi = np.exp(problem.target.log_density(xs[None, :]))
        mass = np.trapz(rho[-1], xs)
        ax.plot(xs, pi * mass / np.trapz(pi, xs), color="tab:red", lw=1.0, ls=":", label="π (same mass)")
        ax.set_xlabel("x")
        ax.set_ylabel("ρ")
        title = f"{problem.name}: {problem.flow.name} flow of KL"
        ax.set_title(title + (" (dashed: exact)" if exact is not None else ""))
        ax.legend(fontsize=8)
    else:
        k_count = len(t)
        fig, axes = plt.subplots(1, k_count, figsize=(3.2 * k_count, 3.2), squeeze=False)
        vmax = float(rho.max())
        for k, ax in enumerate(axes[0]):
            im = draw_density_2d(ax, x, rho[k], problem.domain, vmin=0, vmax=vmax)
            ax.set_title(f"t = {t[k]:g}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
        fig.suptitle(f"{problem.name}: {problem.flow.name} flow of KL", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_diagnostics(summary: dict, path) -> Path:
    plt = _pyplot()
    path = Path(path)
    steps = summary["steps"]
    t = np.array([0.0] + [s["t"] for s in steps])
    energy = np.array([summary["initial"]["energy"]] + [s["energy"] for s in steps])
    mass = np.array([summary["initial"]["mass"]] + [s["mass"] for s in steps])
    fig, axes = plt.subplots(2, 2, figsize=(9, 6))
    axes[0, 0].plot(t, energy, "-o", ms=2)
    axes[0, 0].set_title("energy F_h(ρⁿ)")
    if summary["problem"]["flow"]["spherical"] or summary["problem"]["flow"]["beta"] == 0:
        axes[0, 1].semilogy(t, np.maximum(np.abs(mass - mass[0]) / mass[0], 1e-17), "-o", ms=2)
        axes[0, 1].set_title("|mass − mass(0)| / mass(0)")
    else:  # unbalanced: the mass itself, with the exact mass at the snapshots
        axes[0, 1].plot(t, mass, "-", label="Σ m_i ρ_i")
        if summary.get("errors"):
            axes[0, 1].plot([e["t"] for e in summary["errors"]], [e["exact_mass"] for e in summary["errors"]], "kx", label="exact")
        axes[0, 1].legend(fontsize=8)
        axes[0, 1].set_title("mass")
    # a step's count belongs to the interval (t − τ, t]
    axes[1, 0].step(t[1:], [s["newton_iterations"] for s in steps], where="pre")
    axes[1, 0].set_title("Newton iterations per step")
    if steps and "identity_residual_rel" in steps[0]:
        axes[1, 1].semilogy(t[1:], np.maximum([s["identity_residual_rel"] for s in steps], 1e-17), "-o", ms=2)
        axes[1, 1].set_title("energy identity residual (relative)")
    elif steps and "mm_slack" in steps[0]:
        axes[1, 1].semilogy(t[1:], np.maximum([s["mm_slack"] for s in steps], 1e-17), "-o", ms=2)
        axes[1, 1].set_title("minimizing-movement slack")
    for ax in axes.flat:
        ax.set_xlabel("t")
    fig.suptitle(f"{summary['case']}: n = {summary['parameters']['n']}, τ = {summary['parameters']['tau']:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
