"""Report figures drawn from the run files in DIR/runs/ (not from the store's metrics):

* per reference group, its finest run: the density at every snapshot (1-D curves; the exact
  solution dashed where the case has one; 2-D: an image of the final density), and the energy
  F_h(ρⁿ) with the relative residual of the discrete energy identity against time;
* per particle group, its largest N (lowest seed): a weighted histogram of the particles at the
  final time against the FE reference density (1-D), or a scatter over the reference image (2-D).
"""
from __future__ import annotations

import hashlib
import re

from pathlib import Path

import numpy as np

from ..plots import draw_density_2d



_SAFE = re.compile(r"[A-Za-z0-9._-]{1,80}")


def _level(value) -> str:
    """A sweep level for a label: numbers in %g, strings (a swept kernel name) as they are."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def file_slug(text) -> str:
    """The label itself where it is a short file-name-safe word; otherwise its safe prefix and 8 hex
    digits of its SHA-1, unique per label and never longer than 70 characters."""
    text = str(text)
    if _SAFE.fullmatch(text) and not text.startswith("."):
        return text
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "x"
    return f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finest(rows):
    def key(r):
        p = r["params"]
        if r["kind"] == "reference":
            return (p.get("n", 0), -p.get("tau", 0.0))
        return (p.get("n_particles", 0), -(r.get("seed") or 0))

    return max(rows, key=key)


def _reference_figures(group, run, data, out: Path) -> list:
    from ..cases import get_case
    from ..exact import exact_solution

    plt = _plt()
    figs = []
    problem = get_case(run["case"])
    exact = exact_solution(problem)
    t, x, rho = data["t"], data["x"], data["rho"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if x.shape[1] == 1:
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(t)))
        for k, c in enumerate(colors):
            axes[0].plot(x[:, 0], rho[k], color=c, label=f"t = {t[k]:g}")
            if exact is not None:
                axes[0].plot(x[:, 0], exact.density(float(t[k]), x.T), "k--", lw=0.8)
        axes[0].set_xlabel("x")
        axes[0].legend(fontsize=8)
    elif x.shape[1] == 2:
        im = draw_density_2d(axes[0], x, rho[-1], problem.domain)
        fig.colorbar(im, ax=axes[0])
    else:  # 3-D: the slice nearest to x3 = 0
        z = np.round(x[:, 2], 10)
        mid = z[np.argmin(np.abs(z))]
        sel = np.abs(z - mid) < 1e-9
        if sel.sum() >= 3:
            im = draw_density_2d(axes[0], x[sel, :2], rho[-1][sel])
            fig.colorbar(im, ax=axes[0])
            axes[0].set_xlabel(f"slice x3 = {mid:g}")
    axes[0].set_title(f"{group}: finest run n = {run['params']['n']}, tau = {run['params']['tau']:g}"
                      + (" (dashed: exact)" if exact is not None and x.shape[1] == 1 else ""), fontsize=9)
    if "step_t" in data.files:
        ax = axes[1]
        ax.plot(data["step_t"], data["step_energy"], "-", color="tab:blue")
        ax.set_xlabel("t")
        ax.set_ylabel("energy F_h", color="tab:blue")
        ax2 = ax.twinx()
        ident = data["step_identity"]
        ok = np.isfinite(ident)
        if ok.any():
            ax2.semilogy(data["step_t"][ok], np.maximum(ident[ok], 1e-17), ".", ms=3, color="tab:red")
            ax2.set_ylabel("energy-identity residual (rel.)", color="tab:red")
        ax.set_title("energy and discrete energy identity", fontsize=9)
    else:
        axes[1].axis("off")
    path = out / f"density_{file_slug(group)}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    figs.append((f"{group}: densities of the finest run, energy and energy-identity residual", path))
    return figs


def _particle_figure(group, run, data, ref, out: Path) -> list:
    plt = _plt()
    x, w = data["x"][-1], data["w"][-1]
    rx, rrho = ref["x"], ref["rho"][-1]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if x.shape[1] == 1:
        lo, hi = float(rx[:, 0].min()), float(rx[:, 0].max())
        bins = np.linspace(lo, hi, max(20, min(120, int(np.sqrt(x.shape[0]) * 3))))
        ax.hist(x[:, 0], bins=bins, weights=w / np.diff(bins)[0], color="tab:orange", alpha=0.6, label="particles (histogram)")
        ax.plot(rx[:, 0], rrho, "k-", lw=1.2, label="FE reference")
        ax.set_xlabel("x")
    else:
        from ..cases import get_case

        if x.shape[1] == 2:
            draw_density_2d(ax, rx, rrho, get_case(run["case"]).domain, cmap="Greys")
        ax.scatter(x[:, 0], x[:, 1], s=4 + 400 * w / w.max() / np.sqrt(len(w)), c="tab:orange", alpha=0.6)
    ax.set_title(f"{group}: {run['method']}, N = {run['params']['n_particles']}, seed {run.get('seed')}, "
                 f"t = {data['t'][-1]:g}", fontsize=9)
    ax.legend(fontsize=8) if x.shape[1] == 1 else None
    path = out / f"particles_{file_slug(group)}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [(f"{group}: particles at the final time against the FE reference", path)]


def snapshot_figures(store, out: Path) -> list:
    """[(caption, png path)] for every group whose finest run has its run file."""
    runs_dir = store.directory / "runs"
    figs = []
    for group in store.groups():
        rows = store.rows(group=group, status="done")
        if not rows:
            continue
        run = _finest(rows)
        path = runs_dir / f"{run['run_id']}.npz"
        if not path.exists():
            continue
        data = np.load(path)
        try:
            if run["kind"] == "reference":
                figs += _reference_figures(group, run, data, out)
            else:
                ref_path = runs_dir / f"{str(data['reference_run'])}.npz"
                if ref_path.exists():
                    figs += _particle_figure(group, run, data, np.load(ref_path), out)
        except (KeyError, ValueError):
            continue  # a run file of an older format: no figure rather than no report
    return figs


def boundary_layer_summary(store) -> list:
    """Per approx group and level of its swept parameter: the signed relative error of the mass in
    the boundary layer (:func:`pdeflow.compare.boundary_layer_mass`) at every snapshot, mean and
    standard deviation over seeds.  [{"group", "case", "method", "param", "level", "t", "mean",
    "std", "seeds"}], rows ordered by group and level."""
    out = []
    for group in store.groups():
        rows = [r for r in store.rows(group=group, status="done")
                if r["kind"] == "approx" and "boundary_layer_signed" in (r.get("metrics") or {})]
        if not rows:
            continue
        swept = sorted({k for r in rows for k in (r.get("sweep") or {})})
        param = swept[0] if swept else None
        levels: dict = {}
        for r in rows:
            level = (r.get("sweep") or {}).get(param) if param else None
            levels.setdefault(level, []).append(r)
        for level in sorted(levels, key=lambda v: (v is None, v)):
            runs = levels[level]
            vals = np.array([r["metrics"]["boundary_layer_signed"] for r in runs], dtype=float)
            out.append({"group": group, "case": runs[0]["case"], "method": runs[0]["method"], "param": param,
                        "level": level, "t": list(runs[0]["metrics"]["t"]), "mean": list(vals.mean(axis=0)),
                        "std": list(vals.std(axis=0)), "seeds": len(runs)})
    return out


def boundary_layer_figures(summary: list, out: Path) -> list:
    """One figure per group: signed boundary-layer mass error against t, a line per level."""
    plt = _plt()
    figs = []
    for group in dict.fromkeys(s["group"] for s in summary):
        entries = [s for s in summary if s["group"] == group]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(entries)))
        for s, c in zip(entries, colors):
            label = f"{s['param']} = {_level(s['level'])}" if s["param"] else "runs"
            ax.errorbar(s["t"], s["mean"], yerr=s["std"], color=c, marker="o", ms=3, capsize=2, label=label)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("t")
        ax.set_ylabel("(particles − reference) / reference")
        ax.set_title(f"{group}: mass within the boundary layer ({entries[0]['method']}, mean ± sd over seeds)",
                     fontsize=9)
        ax.legend(fontsize=8)
        path = out / f"boundary_{file_slug(group)}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figs.append((f"{group}: relative error of the mass within the boundary layer "
                     "(< 0: the particles under-populate it)", path))
    return figs
