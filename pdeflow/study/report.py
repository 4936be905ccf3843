"""Report of a study from its directory alone (the SQLite store, :mod:`pdeflow.study.store`).

:func:`make_report` writes, next to ``study.sqlite`` (or into ``out_dir``):

* ``conv_<group>_<metric>.png`` — one log-log convergence plot per (group, metric): the level
  errors at the final snapshot (mean ± 95% t-interval over seeds as error bars, the single seeds
  as grey dots, when a level has several seeds), the least-squares line C·p^q̂ over the fitted
  levels with "order q̂ [lo, hi]" in the legend, and for ``mmd*`` metrics the runs' Monte Carlo
  floor ``mc_floor`` (mean per level) dotted;
* ``runs.txt``, ``runs.md``, ``runs.tex`` — one row per (group, run): group, kind, case, method,
  swept parameters, seed, status, final-time metrics, wall time (a run shared by groups appears in
  each);
* ``orders.md``, ``orders.tex`` — the fitted orders (:func:`orders_table`);
* ``report.html`` — self-contained (PNGs as base64 data URIs): the orders, the figures, the failed
  runs with their messages, the run table and the spec source.

* ``density_<group>.png``, ``particles_<group>.png`` — from the run files in DIR/runs/ (not the
  store): densities of each reference group's finest run with the exact solution, its energy and
  energy-identity residual per step, and the particles of each particle group's largest N against
  the FE reference (:mod:`pdeflow.study.figures`).

The parameter of a group is the single key of ``sweep`` that varies over the group's runs; if
several vary (tied τ = c·h² ladders vary h and τ together), the first of h, tau, n_particles, lam,
sigma, dt (then alphabetical).  Every list-valued metric of the runs except ``t`` is fitted — for
reference groups that is L1, L2, hellinger, mass_rel; for approx groups mmd, ..., w2, mass_error;
for Richardson reference groups (no exact solution) ``richardson_m2`` (the difference of the
second moments to the next finer level, any dimension) and in 1-D ``richardson_L1`` (the L1
difference), added by the runner.  Orders are signed
slopes of log(error) against log(parameter) (≈ −1/2 for a Monte Carlo rate in n_particles);
a metric at round-off on every level (below :data:`ROUNDOFF`, e.g. mass_rel) gets no order, only a note.
LaTeX tables need ``\\usepackage{booktabs, longtable}``.
"""
from __future__ import annotations

import base64
import html
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .orders import fit_group
from .figures import _level, file_slug
from .store import META_NAME, META_SPEC, Store, resolve_path

PARAM_PRIORITY = ("h", "tau", "n_particles", "lam", "sigma", "dt")
METRIC_ORDER = (
    "L1", "L2", "hellinger", "mass_rel", "richardson_L1", "richardson_m2",
    "mmd", "mmd_small", "mmd_large", "energy_distance", "w2", "mass_error", "boundary_layer",
)
NOT_METRICS = {"t", "mc_floor", "boundary_layer_signed", "error_estimate_L1",
               "mc_floor_mmd_small", "mc_floor_mmd", "mc_floor_mmd_large",
               "ref_error_mmd_small", "ref_error_mmd", "ref_error_mmd_large"}
ROUNDOFF = 1e-12  # a metric whose level values all stay below this is at round-off: no order


# -- helpers -------------------------------------------------------------------------------------
def _open(store) -> tuple:
    """(Store, opened_here)."""
    if isinstance(store, Store):
        return store, False
    path = resolve_path(store)
    if not path.exists():
        raise FileNotFoundError(f"no study store at {path}")
    return Store(path), True


def group_param(rows) -> str | None:
    """The swept parameter of a group (see the module docstring); None if nothing is swept."""
    values: dict = {}
    for row in rows:
        for k, v in (row.get("sweep") or {}).items():
            values.setdefault(k, set()).add(repr(v))
    if not values:
        return None
    varying = [k for k, vs in values.items() if len(vs) > 1]
    candidates = varying or list(values)
    for k in PARAM_PRIORITY:
        if k in candidates:
            return k
    return sorted(candidates)[0]


def group_metrics(rows) -> list:
    """List-valued metric names of the group's done runs, in :data:`METRIC_ORDER` then A–Z."""
    names = set()
    for row in rows:
        if row.get("status") != "done":
            continue
        for k, v in (row.get("metrics") or {}).items():
            if k not in NOT_METRICS and isinstance(v, (list, tuple)):
                names.add(k)
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(names - set(known))


def _unique_join(values) -> str:
    seen = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return ", ".join(str(v) for v in seen)


def _slug(text) -> str:
    """A file-name part for a label: the label itself when it is short and file-name safe, else its safe
    prefix plus a hash of the whole label, so that "/" or 255+ characters cannot break a file name and two
    labels cannot share one ("a b" and "a_b" used to)."""
    return file_slug(text)


def _num(x, fmt="{:.3g}") -> str:
    if x is None:
        return ""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return fmt.format(x)


def _order_str(row) -> str:
    if row["order"] is None or math.isnan(row["order"]):
        if row.get("note"):
            return row["note"]
        return "n/a"
    return f"{row['order']:.3f} [{_num(row['ci_low'], '{:.3f}')}, {_num(row['ci_high'], '{:.3f}')}]"


def _pairwise_str(row) -> str:
    return ", ".join(f"{q:.2f}" for q in row["pairwise"])


def _sweep_str(sweep) -> str:
    return " ".join(f"{k}={_num(v, '{:.4g}') if isinstance(v, (int, float)) else v}" for k, v in (sweep or {}).items())


def _final_metrics(metrics) -> str:
    parts = []
    names = [m for m in METRIC_ORDER if m in (metrics or {})] + sorted(set(metrics or {}) - set(METRIC_ORDER))
    for k in names:
        v = metrics[k]
        if k in NOT_METRICS or not isinstance(v, (list, tuple)) or not v:
            continue
        parts.append(f"{k}={_num(v[-1], '{:.3e}')}")
    return " ".join(parts)


# -- fits -----------------------------------------------------------------------------------------
def _spec_fit_ranges(store: Store) -> dict:
    """{group label: (lo, hi)} parameter bounds from the spec's ``fit_range`` ([first, last] level
    indices in the ladder's order), for the groups that set one (or inherit the study's)."""
    text = store.get_meta(META_SPEC)
    if not text:
        return {}
    try:
        import tomllib

        from .spec import parse_spec

        spec = parse_spec(tomllib.loads(text))
    except Exception:  # noqa: BLE001 — a report is still made without the spec's ranges
        return {}
    out = {}
    for group in spec.groups:
        rng = getattr(group, "fit_range", None) or spec.fit_range
        if not rng or not group.runs:
            continue
        param = group_param([{"sweep": r["sweep"], "status": "done"} for r in group.runs])
        if param is None:
            continue
        values = list(dict.fromkeys(r["sweep"].get(param) for r in group.runs if param in r["sweep"]))
        first, last = rng[0], rng[1]
        chosen = values[first: (last + 1) if last != -1 else None]
        if chosen:
            out[group.label] = (min(chosen), max(chosen))
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fits(store: Store) -> list:
    """[(table row, fit_group dict, group rows)] per (group, metric); the spec's fit_range, when
    set, restricts the levels fitted (the asymptotic range)."""
    out = []
    ranges = _spec_fit_ranges(store)
    for group in store.groups():
        rows = store.rows(group=group)
        param = group_param(rows)
        if param is None:
            continue
        if not all(_is_number((r.get("sweep") or {}).get(param, 0.0)) for r in rows):
            continue  # a swept string (kernel = ["gaussian", "imq"]) has no order; its runs are in the tables
        for metric in group_metrics(rows):
            fit = fit_group(rows, param, metric, fit_range=ranges.get(group))
            if not fit["levels"]:
                continue
            finite = [e for e in fit["errors"] if math.isfinite(e)]
            note = ""
            if finite and max(abs(e) for e in finite) < ROUNDOFF:  # e.g. mass_rel of a conservative scheme
                nan = float("nan")
                fit.update(order=nan, ci_low=nan, ci_high=nan, constant=nan, pairwise=[])
                note = f"round-off (max {max(abs(e) for e in finite):.1e})"
            if metric.startswith("richardson_") and math.isfinite(fit["order"]) and len(fit["errors"]) >= 2:
                # Richardson: d_k = ‖u_k − u_{k+1}‖ on a ladder of ratio r; the finest solution's error
                # is d_fine/(r^p − 1), and Roache's GCI multiplies it by the safety factor 1.25
                lv = sorted(zip(fit["levels"], fit["errors"]))
                ratio = lv[1][0] / lv[0][0]
                p_obs = fit["order"]
                est = lv[0][1] / (ratio**p_obs - 1.0)
                note = f"finest-level error estimate {est:.2e}; GCI {1.25 * est:.2e} (Fs = 1.25)"
            joint = _joint_note(rows, metric) if fit["pooled"] else ""
            if joint:
                note = (note + "; " if note else "") + joint
            done = [r for r in rows if r["status"] == "done"]
            row = {
                "group": group,
                "kind": _unique_join(r["kind"] for r in done),
                "case": _unique_join(r["case"] for r in done),
                "method": _unique_join(r["method"] for r in done),
                "param": param,
                "metric": metric,
                "levels": len(fit["fit_levels"]),
                "order": fit["order"],
                "ci_low": fit["ci_low"],
                "ci_high": fit["ci_high"],
                "pairwise": [float(q) for q in fit["pairwise"]],
                "constant": fit["constant"],
                "param_values": list(fit["levels"]),
                "errors": list(fit["errors"]),
                "n_seeds": list(fit["n_seeds"]),
                "t": fit["t"],
                "pooled": fit["pooled"],
                "note": note,
            }
            out.append((row, fit, rows))
    return out


def _joint_note(rows, metric: str) -> str:
    """For a group that sweeps several parameters independently (e.g. a grid of h and τ), where a
    one-parameter fit pools runs: the joint fit err ≈ Σ_p C_p p^{q_p} (:func:`joint_fit`) of the
    final-snapshot values, averaged over seeds, as "joint fit: q_h = 2.01 [1.9, 2.1], ..."; "" when
    fewer than two parameters vary or too few distinct points are available."""
    from .orders import _row_param, _row_value, joint_fit

    done = [r for r in rows if r.get("status") == "done"]
    keys = sorted({k for r in done for k in (r.get("sweep") or {})})
    varying = [k for k in keys if len({repr(_row_param(r, k)) for r in done}) > 1]
    if len(varying) < 2:
        return ""
    points: dict = {}
    for r in done:
        p = tuple(_row_param(r, k) for k in varying)
        v = _row_value(r, metric, -1)
        if v is not None and math.isfinite(v) and v > 0 and all(isinstance(x, (int, float)) and x > 0 for x in p):
            points.setdefault(p, []).append(float(v))
    distinct = max(len({c[i] for c in points}) for i in range(len(varying)))
    if len(points) <= distinct or len(points) < 2 * len(varying) + 1:  # tied ladders; no dof left
        return ""
    combos = sorted(points)
    params = {k: [c[i] for c in combos] for i, k in enumerate(varying)}
    try:
        res = joint_fit(params, [float(np.mean(points[c])) for c in combos])
    except (ValueError, RuntimeError):
        return ""
    parts = []
    for k in varying:
        lo, hi = res["q_ci"][k]
        parts.append(f"q_{k} = {res['q'][k]:.3f} [{_num(lo, '{:.3f}')}, {_num(hi, '{:.3f}')}]")
    return "joint fit: " + ", ".join(parts)


def orders_table(store) -> list:
    """One dict per (group, metric) with a fit: group, kind, case, param, metric, levels (number of
    levels fitted), order, ci_low, ci_high, pairwise (list), plus method, constant, param_values,
    errors (level means), n_seeds, t (snapshot time), pooled (runs at one level differ in another
    swept key: the fit pools them), note ("" or a round-off remark).  ``store``: a :class:`Store`, the
    study directory or the database file."""
    st, opened = _open(store)
    try:
        return [row for row, _, _ in _fits(st)]
    finally:
        if opened:
            st.close()


# -- figures --------------------------------------------------------------------------------------
def _plot(row, fit, rows, path: Path) -> Path | None:
    from ..plots import _pyplot

    p = np.asarray(fit["levels"], float)
    e = np.asarray(fit["errors"], float)
    ok = np.isfinite(e) & (e > 0)
    if not ok.any():
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ci = np.asarray(fit["ci"], float)
    if any(n > 1 for n in fit["n_seeds"]):
        for pk, s in zip(p, fit["samples"]):
            s = np.asarray(s, float)
            s = s[np.isfinite(s) & (s > 0)]
            ax.plot(np.full(s.size, pk), s, ".", color="0.6", ms=4, zorder=1)
        half = np.where(np.isfinite(ci), ci, 0.0)
        lower = np.minimum(half, e * (1 - 1e-3))  # keep the bar inside the log axis
        ax.errorbar(p[ok], e[ok], yerr=[lower[ok], half[ok]], fmt="o", color="tab:blue", capsize=3,
                    label=f"{fit['metric']} (mean ± 95% CI)", zorder=3)
    else:
        ax.plot(p[ok], e[ok], "o", color="tab:blue", label=fit["metric"], zorder=3)
    if math.isfinite(fit["order"]) and len(fit["fit_levels"]) >= 2:
        xs = np.geomspace(min(fit["fit_levels"]), max(fit["fit_levels"]), 50)
        ax.plot(xs, fit["constant"] * xs ** fit["order"], "-", color="tab:red", lw=1.2,
                label=f"order {fit['order']:.3f} [{_num(fit['ci_low'], '{:.3f}')}, {_num(fit['ci_high'], '{:.3f}')}]",
                zorder=2)
    if fit["metric"].startswith("mmd"):
        floor: dict = {}
        ref_err = []
        for r in rows:
            m = r.get("metrics") or {}
            # the floor at this metric's scale and the final snapshot; older stores: "mc_floor" (middle scale)
            v = _last(m.get(f"mc_floor_{fit['metric'].removesuffix('_exact')}"))
            if v is None and fit["metric"] == "mmd":
                v = m.get("mc_floor")
            pv = (r.get("sweep") or {}).get(fit["param"], (r.get("params") or {}).get(fit["param"]))
            if r.get("status") == "done" and isinstance(v, (int, float)) and pv is not None and v > 0:
                floor.setdefault(float(pv), []).append(float(v))
            e_ref = _last(m.get(f"ref_error_{fit['metric']}"))
            if r.get("status") == "done" and e_ref is not None and math.isfinite(e_ref) and e_ref > 0:
                ref_err.append(e_ref)
        if floor:
            ks = sorted(floor)
            ax.plot(ks, [np.mean(floor[k]) for k in ks], ":", color="k", lw=1.0,
                    label="Monte-Carlo floor (i.i.d. draws from the reference)")
        if ref_err:
            top = max(ref_err)
            ax.axhspan(min(float(e[ok].min()), top) / 3.0, top, color="tab:green", alpha=0.15, lw=0, zorder=0,
                       label=f"reference error estimate ({top:.1e})")
            ax.axhline(top, color="tab:green", lw=0.8, ls="--", zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(fit["param"])
    at = f" at t = {fit['t']:g}" if fit["t"] is not None else ""
    ax.set_ylabel(f"{fit['metric']}{at}")
    title = f"{row['group']}: {row['case']}" + (f" ({row['method']})" if row["method"] else f" ({row['kind']})")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _last(v):
    """The final-snapshot entry of a per-snapshot metric list (None when absent or not a number)."""
    if isinstance(v, (list, tuple)) and v and isinstance(v[-1], (int, float)):
        return float(v[-1])
    return None


# -- tables ---------------------------------------------------------------------------------------
RUN_COLUMNS = ("group", "kind", "case", "method", "sweep", "seed", "status", "final metrics", "wall [s]")
ORDER_COLUMNS = ("group", "kind", "case", "param", "metric", "levels", "order [95% CI]", "pairwise", "note")


def _run_cells(store: Store) -> list:
    cells = []
    for group in store.groups():
        for r in store.rows(group=group):
            cells.append([
                group, r["kind"] or "", r["case"] or "", r["method"] or "", _sweep_str(r["sweep"]),
                "" if r["seed"] is None else str(r["seed"]), r["status"] or "",
                _final_metrics(r["metrics"]) if r["status"] == "done" else "", _num(r["wall"], "{:.1f}"),
            ])
    return cells


def _order_cells(table) -> list:
    return [[r["group"], r["kind"], r["case"], r["param"], r["metric"], str(r["levels"]), _order_str(r),
             _pairwise_str(r), r.get("note", "")] for r in table]


def _text_table(header, cells) -> str:
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    line = lambda row: "  ".join(s.ljust(w) for s, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(c) for c in cells]) + "\n"


def _md_table(header, cells) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
    return "\n".join(out) + "\n"


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    s = "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)
    return re.sub(r"(?<![A-Za-z])(-?)inf(?![A-Za-z])", r"$\1\\infty$", s)


def _tex_table(header, cells, long: bool) -> str:
    env = "longtable" if long else "tabular"
    lines = [f"% generated by pdeflow.study.report; needs \\usepackage{{booktabs{', longtable' if long else ''}}}",
             f"\\begin{{{env}}}{{{'l' * len(header)}}}", r"\toprule",
             " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    if long:
        lines += [r"\endhead"]
    lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", f"\\end{{{env}}}"]
    return "\n".join(lines) + "\n"


def _html_table(header, cells, classes=None) -> str:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(cells):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
tr.failed td { background: #fde8e8; }
figure { display: inline-block; margin: 0.5em; }
figcaption { font-size: 0.8em; color: #555; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.note { color: #555; font-size: 0.9em; }
"""


# -- the report -----------------------------------------------------------------------------------
def make_report(store_dir, out_dir=None) -> Path:
    """Write figures, tables and ``report.html`` for the study in ``store_dir`` (the directory
    holding ``study.sqlite``, or the file) into ``out_dir`` (default: the study directory);
    returns the path of ``report.html``.  See the module docstring for what is (not) drawn."""
    store, opened = _open(store_dir)
    try:
        out = Path(out_dir) if out_dir is not None else store.directory
        out.mkdir(parents=True, exist_ok=True)
        name = store.get_meta(META_NAME) or store.directory.name
        spec = store.get_meta(META_SPEC)
        fits = _fits(store)
        table = [row for row, _, _ in fits]

        figures = []
        for row, fit, rows in fits:
            path = _plot(row, fit, rows, out / f"conv_{_slug(row['group'])}_{_slug(row['metric'])}.png")
            if path is not None:
                figures.append((row, path))

        run_cells = _run_cells(store)
        (out / "runs.txt").write_text(_text_table(RUN_COLUMNS, run_cells))
        (out / "runs.md").write_text(_md_table(RUN_COLUMNS, run_cells))
        (out / "runs.tex").write_text(_tex_table(RUN_COLUMNS, run_cells, long=True))
        order_cells = _order_cells(table)
        (out / "orders.md").write_text(_md_table(ORDER_COLUMNS, order_cells))
        (out / "orders.tex").write_text(_tex_table(ORDER_COLUMNS, order_cells, long=False))

        failed = store.rows(status="failed")
        member_of: dict = {}
        for g in store.groups():
            for r in store.rows(group=g):
                member_of.setdefault(r["run_id"], []).append(g)
        n_total, n_done = store.count(), store.count("done")
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        parts = [
            "<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
            f"<title>{html.escape(name)}: study report</title>", f"<style>{_CSS}</style></head><body>",
            f"<h1>Study {html.escape(name)}</h1>",
            f"<p>{n_total} runs: {n_done} done, {len(failed)} failed, {n_total - n_done - len(failed)} other; "
            f"store <code>{html.escape(str(store.path))}</code>; generated {stamp}.</p>",
            "<h2>Observed orders</h2>",
            '<p class="note">Least-squares slope of log(error) against log(parameter) at the final snapshot, '
            "95% t-interval; levels with several seeds are fitted through their means. "
            "Pairwise orders between consecutive levels (increasing parameter).</p>",
            _html_table(ORDER_COLUMNS, order_cells) if order_cells else "<p>No fits (no swept group with error metrics).</p>",
            "<h2>Convergence plots</h2>",
        ]
        for row, path in figures:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            cap = html.escape(f"{row['group']} — {row['metric']} vs {row['param']}: "
                              + ("" if row.get("note") else "order ") + _order_str(row))
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')
        if not figures:
            parts.append("<p>None.</p>")
        from .figures import snapshot_figures

        parts.append("<h2>Densities, particles and energy</h2>")
        snaps = snapshot_figures(store, out)
        for cap, path in snaps:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(cap)}">'
                         f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        if not snaps:
            parts.append("<p>None (no run files in runs/).</p>")
        from .figures import boundary_layer_figures, boundary_layer_summary

        layer = boundary_layer_summary(store)
        if layer:
            parts.append("<h2>Boundary layer</h2>")
            parts.append('<p class="note">Signed relative error of the particle mass within distance L/12 of ∂Ω '
                         "(tent-weighted; <code>pdeflow.compare.boundary_layer_mass</code>) against the FE "
                         "reference, mean ± sd over seeds; also in boundary_layer.md. Monte Carlo error shrinks "
                         "with N and changes sign between seeds; a boundary bias of the method does not.</p>")
            cells = [[s["group"], s["method"] or "", f"{s['param']} = {_level(s['level'])}" if s["param"] else "",
                      str(s["seeds"])] + [f"{m:+.3f} ± {d:.3f}" for m, d in zip(s["mean"], s["std"])] for s in layer]
            ts = layer[0]["t"]
            header = ["group", "method", "level", "seeds"] + [f"t = {t:g}" for t in ts]
            same_t = all(s["t"] == ts for s in layer)
            if same_t:
                (out / "boundary_layer.md").write_text(_md_table(header, cells))
                parts.append(_html_table(header, cells))
            for cap, path in boundary_layer_figures(layer, out):
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(cap)}">'
                             f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        parts.append(f"<h2>Failed runs ({len(failed)})</h2>")
        if failed:
            parts.append("<ul>")
            for r in failed:
                groups = ", ".join(member_of.get(r["run_id"], []))
                parts.append(
                    f"<li><code>{html.escape(r['run_id'])}</code> group {html.escape(groups or str(r['group']))}, "
                    f"{html.escape(str(r['case']))}, {html.escape(_sweep_str(r['sweep']))}"
                    + (f", seed {r['seed']}" if r["seed"] is not None else "")
                    + f"<pre>{html.escape(r['message'] or '(no message)')}</pre></li>"
                )
            parts.append("</ul>")
        else:
            parts.append("<p>None.</p>")
        parts.append("<h2>Runs</h2>")
        parts.append(_html_table(RUN_COLUMNS, run_cells, ["failed" if c[6] == "failed" else "" for c in run_cells]))
        if spec:
            parts.append(f"<h2>Spec</h2><pre>{html.escape(spec)}</pre>")
        parts.append("</body></html>")
        report = out / "report.html"
        report.write_text("\n".join(parts), encoding="utf-8")
        return report
    finally:
        if opened:
            store.close()
