"""Study store (SQLite), order helpers (mean_ci, gci, joint_fit, fit_group) and the report.
numpy/scipy/matplotlib only: no dolfinx."""
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pdeflow.study.orders import fit_group, gci, joint_fit, mean_ci
from pdeflow.study.report import group_param, make_report, orders_table
from pdeflow.study.store import FILENAME, META_NAME, META_SPEC, Store

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(run_id, group="g", kind="reference", sweep=None, seed=None, **kw):
    run = {"run_id": run_id, "group": group, "kind": kind, "case": "gauss1d", "method": None,
           "params": {"n": 64, "tau": 0.01}, "seed": seed, "sweep": sweep or {"tau": 0.01}, "cost": 1.0}
    run.update(kw)
    return run


def _result(status="done", metrics=None, message="", **kw):
    res = {"status": status, "message": message, "metrics": metrics if metrics is not None else {"t": [0.5, 1.0], "L1": [0.1, 0.2]},
           "stats": {"n_steps": 10, "newton_max": 3}, "wall": 1.5, "versions": {"pdeflow": "0.1.0"}, "mpi_size": 1}
    res.update(kw)
    return res


# -- store ----------------------------------------------------------------------------------------
def test_store_round_trip(tmp_path):
    with Store(tmp_path) as st:
        assert st.path == tmp_path / FILENAME
        st.set_meta(META_NAME, "demo")
        st.set_meta(META_SPEC, "name = 'demo'\n")
        run = _run("a" * 16, sweep={"h": 0.1, "tau": 0.005}, params={"n": 10, "tau": 0.005, "T": 1.0})
        res = _result(metrics={"t": [0.5, 1.0], "L1": [1e-3, 2e-3], "L2": [np.float64(3e-3), float("nan")]},
                      stats={"n_steps": np.int64(200)})
        st.put(run, res)
        assert st.count() == 1 and st.count("done") == 1 and st.count("failed") == 0
        (row,) = st.rows()
    assert row["run_id"] == "a" * 16 and row["group"] == "g" and row["study"] == "demo"
    assert row["case"] == "gauss1d" and row["kind"] == "reference" and row["method"] is None
    assert row["params"] == {"n": 10, "tau": 0.005, "T": 1.0}
    assert row["sweep"] == {"h": 0.1, "tau": 0.005}
    assert row["metrics"]["L1"] == [1e-3, 2e-3] and math.isnan(row["metrics"]["L2"][1])
    assert row["stats"] == {"n_steps": 200} and row["versions"] == {"pdeflow": "0.1.0"}
    assert row["wall"] == 1.5 and row["mpi_size"] == 1 and row["status"] == "done" and row["finished_at"]
    with Store(tmp_path / FILENAME) as st:  # reopen by file name: same data, metadata kept
        assert st.get_meta(META_SPEC) == "name = 'demo'\n" and st.get_meta("missing", 7) == 7
        assert st.rows()[0]["metrics"]["L1"] == [1e-3, 2e-3]
        mode = st._con.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() == "wal"


def test_put_replaces_and_commits_immediately(tmp_path):
    st = Store(tmp_path)
    st.put(_run("r1"), _result(status="failed", message="diverged"))
    other = sqlite3.connect(str(tmp_path / FILENAME))  # a second connection sees the committed row
    assert other.execute("SELECT status, message FROM runs WHERE run_id='r1'").fetchone() == ("failed", "diverged")
    st.put(_run("r1"), _result())  # INSERT OR REPLACE
    assert other.execute("SELECT status FROM runs WHERE run_id='r1'").fetchone() == ("done",)
    assert other.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
    assert other.execute("SELECT COUNT(*) FROM membership").fetchone() == (1,)
    other.close()
    st.close()


@pytest.mark.parametrize("death", ["os._exit(3)", "os.kill(os.getpid(), signal.SIGKILL)"])
def test_put_survives_abrupt_exit(tmp_path, death):
    code = textwrap.dedent(f"""
        import os, signal
        from pdeflow.study.store import Store
        st = Store({str(tmp_path)!r})
        st.put({{"run_id": "k1", "group": "g", "kind": "reference", "case": "c", "method": None,
                "params": {{}}, "seed": None, "sweep": {{"tau": 0.1}}}},
               {{"status": "done", "message": "", "metrics": {{"L1": [0.5]}}, "wall": 1.0}})
        {death}
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, timeout=60)
    assert proc.returncode != 0, proc.stderr.decode()
    with Store(tmp_path) as st:
        (row,) = st.rows()
        assert row["run_id"] == "k1" and row["metrics"] == {"L1": [0.5]}


def test_finished_ids(tmp_path):
    with Store(tmp_path) as st:
        st.put(_run("ok"), _result())
        st.put(_run("bad"), _result(status="failed", message="Newton failed"))
        assert st.done_ids() == {"ok"}
        assert st.finished_ids() == {"ok", "bad"}  # failed runs are kept, not retried
        assert st.finished_ids(retry_failed=True) == {"ok"}
        assert [r["run_id"] for r in st.rows(status="failed")] == ["bad"]


def test_shared_run_in_two_groups(tmp_path):
    with Store(tmp_path) as st:
        st.put(_run("shared", group="A"), _result())
        st.put(_run("onlyB", group="B"), _result())
        st.add_membership("shared", "B")
        st.add_membership("shared", "B")  # idempotent
        st.put(_run("shared", group="B"), _result())  # a re-put from the other group: still one run
        assert st.count() == 1 + 1
        assert [r["run_id"] for r in st.rows(group="A")] == ["shared"]
        b = st.rows(group="B")
        assert sorted(r["run_id"] for r in b) == ["onlyB", "shared"] and {r["group"] for r in b} == {"B"}
        assert st.groups() == ["A", "B"]
        assert len(st.rows()) == 2


# -- orders -----------------------------------------------------------------------------------------
def test_mean_ci_known_values():
    mean, half = mean_ci([1.0, 2.0, 3.0, 4.0])
    # s = sqrt(5/3), t_{0.975,3} = 3.182446305284263
    assert mean == 2.5
    assert half == pytest.approx(3.182446305284263 * math.sqrt(5 / 3) / 2, rel=1e-12)
    assert mean_ci([5.0, 5.0, 5.0]) == (5.0, 0.0)
    assert mean_ci([2.0])[1] == math.inf
    assert mean_ci([1.0, 3.0], confidence=0.9)[1] == pytest.approx(6.313751514675 * 1.0, rel=1e-9)


def test_gci_model_sequence():
    f_exact, C, h, r = 1.0, 0.3, 0.01, 2.0
    f = [f_exact + C * (h * r**k) ** 2 for k in range(3)]  # finest first
    res = gci(*f, r)
    assert res.order == pytest.approx(2.0, abs=1e-9) and res.monotone
    rel_err = abs(f[0] - f_exact) / abs(f[0])
    assert res.gci / rel_err == pytest.approx(1.25, rel=1e-9)  # exactly Fs × the true relative error
    assert res.extrapolated == pytest.approx(f_exact, abs=1e-12)
    assert res.asymptotic == pytest.approx(1.0, abs=0.02)
    absolute = gci(*f, r, p=2.0, safety=3.0, relative=False)
    assert absolute.gci == pytest.approx(3.0 * abs(f[0] - f_exact), rel=1e-9)
    assert not gci(1.0 + 1e-4, 1.0 - 4e-4, 1.0 + 16e-4, 2.0).monotone  # oscillatory


def test_joint_fit_recovers_two_orders():
    tau, h = np.meshgrid([0.1, 0.05, 0.025, 0.0125], [0.2, 0.1, 0.05, 0.025])
    err = 2 * tau + 3 * h**2
    fit = joint_fit({"tau": tau, "h": h}, err)
    assert fit["success"] and fit["dof"] == 12
    assert fit["q"]["tau"] == pytest.approx(1.0, abs=1e-6) and fit["q"]["h"] == pytest.approx(2.0, abs=1e-6)
    assert fit["C"]["tau"] == pytest.approx(2.0, rel=1e-6) and fit["C"]["h"] == pytest.approx(3.0, rel=1e-6)
    assert fit["q_se"]["h"] < 1e-6
    noisy = err * np.exp(0.02 * np.random.default_rng(1).standard_normal(err.shape))
    fit = joint_fit({"tau": tau, "h": h}, noisy)
    for name, q in (("tau", 1.0), ("h", 2.0)):
        lo, hi = fit["q_ci"][name]
        assert lo < q < hi and 0 < fit["q_se"][name] < 0.1


def _h2_rows(seeds=(0, 1, 2), noise=1e-3):
    rng = np.random.default_rng(0)
    rows = []
    for h in (0.2, 0.1, 0.05, 0.025):
        for s in seeds:
            e = 0.7 * h**2 * (1 + noise * rng.standard_normal())
            rows.append({"status": "done", "seed": s, "sweep": {"h": h, "tau": 0.1 * h**2},
                         "metrics": {"t": [0.5, 1.0], "L1": [e / 2, e]}})
    rows.append({"status": "failed", "seed": 0, "sweep": {"h": 0.0125, "tau": 0.1 * 0.0125**2}, "metrics": {}})
    return rows


def test_fit_group_order_two():
    rows = _h2_rows()
    fit = fit_group(rows, "h", "L1")
    assert fit["levels"] == [0.025, 0.05, 0.1, 0.2] and fit["n_seeds"] == [3, 3, 3, 3] and fit["skipped"] == 1
    assert fit["order"] == pytest.approx(2.0, abs=0.01)
    assert fit["ci_low"] < 2.0 < fit["ci_high"] and fit["ci_high"] - fit["ci_low"] < 0.02
    assert len(fit["pairwise"]) == 3 and all(abs(q - 2) < 0.02 for q in fit["pairwise"])
    assert fit["t"] == 1.0 and not fit["pooled"]
    for e, half, s in zip(fit["errors"], fit["ci"], fit["samples"]):
        assert (e, half) == pytest.approx(mean_ci(s))
    assert fit["constant"] == pytest.approx(0.7, rel=0.02)
    first = fit_group(rows, "h", "L1", snapshot=0, fit_range=(0.05, None))
    assert first["fit_levels"] == [0.05, 0.1, 0.2] and first["t"] == 0.5
    one_seed = fit_group(_h2_rows(seeds=(None,), noise=0.0), "h", "L1")
    assert one_seed["ci"] == [0.0] * 4 and one_seed["order"] == pytest.approx(2.0, abs=1e-10)


def test_group_param_choice():
    tied = [{"sweep": {"h": h, "tau": h * h}} for h in (0.1, 0.05)]
    assert group_param(tied) == "h"
    seeds = [{"sweep": {"n_particles": n, "sigma": 0.3}} for n in (100, 100, 200)]
    assert group_param(seeds) == "n_particles"
    assert group_param([{"sweep": {"tau": 0.1}}]) == "tau"
    assert group_param([{"sweep": {}}]) is None


# -- report -------------------------------------------------------------------------------------------
def _synthetic_study(path: Path) -> None:
    rng = np.random.default_rng(2)
    with Store(path) as st:
        st.set_meta(META_NAME, "synthetic")
        st.set_meta(META_SPEC, 'name = "synthetic"\n[[group]]\nlabel = "tau_ladder"\n')
        for k, tau in enumerate((0.1, 0.05, 0.025, 0.0125)):
            run = _run(f"tau{k:013d}", group="tau_ladder", sweep={"tau": tau}, params={"n": 256, "tau": tau})
            st.put(run, _result(metrics={"t": [0.5, 1.0], "L1": [0.4 * tau, 0.8 * tau], "L2": [0.2 * tau, 0.3 * tau],
                                         "mass_rel": [1e-15, 2e-15]}))
        for n in (100, 200, 400, 800):
            for seed in range(3):
                run = _run(f"n{n:05d}s{seed}_______", group="n_conv", kind="approx", method="svgd_kl",
                           sweep={"n_particles": n}, seed=seed, params={"n_particles": n, "reference": {"n": 256, "tau": 0.01}})
                mmd = 0.5 / math.sqrt(n) * (1 + 0.05 * rng.standard_normal())
                st.put(run, _result(metrics={"t": [1.0], "mmd": [mmd], "w2": [1.0 / n**0.5], "mc_floor": 0.1 / math.sqrt(n)}))
        st.put(_run("n01600s0_fail___", group="n_conv", kind="approx", method="svgd_kl", sweep={"n_particles": 1600}, seed=0),
               _result(status="failed", message="kernel matrix <not> positive & definite", metrics={}))


def test_make_report(tmp_path):
    _synthetic_study(tmp_path)
    report = make_report(tmp_path)
    assert report == tmp_path / "report.html"
    text = report.read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in text
    assert "tau_ladder" in text and "n_conv" in text and "Observed orders" in text
    assert "kernel matrix &lt;not&gt; positive &amp; definite" in text  # failed run with its message
    pngs = sorted(tmp_path.glob("conv_*.png"))
    names = {p.name for p in pngs}
    assert {"conv_tau_ladder_L1.png", "conv_tau_ladder_L2.png", "conv_n_conv_mmd.png", "conv_n_conv_w2.png"} <= names
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert text.count('<img src="data:image/png;base64,') == len(pngs)
    for name in ("runs.txt", "runs.md", "runs.tex", "orders.md", "orders.tex"):
        assert (tmp_path / name).stat().st_size > 0
    runs_md = (tmp_path / "runs.md").read_text()
    assert runs_md.count("\n") == 2 + 4 + 13 and "n_particles=800" in runs_md and "L1=8.000e-02" in runs_md
    assert r"\begin{longtable}" in (tmp_path / "runs.tex").read_text()
    assert "tau\\_ladder" in (tmp_path / "orders.tex").read_text()

    table = {(r["group"], r["metric"]): r for r in orders_table(tmp_path)}
    l1 = table[("tau_ladder", "L1")]
    assert l1["param"] == "tau" and l1["levels"] == 4 and l1["order"] == pytest.approx(1.0, abs=1e-9)
    assert l1["kind"] == "reference" and l1["case"] == "gauss1d" and len(l1["pairwise"]) == 3
    assert table[("tau_ladder", "mass_rel")]["note"].startswith("round-off")  # no order from 1e-15 noise
    assert math.isnan(table[("tau_ladder", "mass_rel")]["order"])
    mmd = table[("n_conv", "mmd")]
    assert mmd["param"] == "n_particles" and mmd["n_seeds"] == [3, 3, 3, 3]
    assert mmd["ci_low"] < -0.5 < mmd["ci_high"]
    assert "1 failed" in text and "| tau_ladder |" in (tmp_path / "orders.md").read_text()

    out = make_report(tmp_path / FILENAME, out_dir=tmp_path / "elsewhere")  # the file, another out_dir
    assert out == tmp_path / "elsewhere" / "report.html" and out.exists()
    with pytest.raises(FileNotFoundError):
        make_report(tmp_path / "nothing")


def test_report_boundary_layer_section(tmp_path):
    with Store(tmp_path) as st:
        st.set_meta(META_NAME, "layer")
        for n in (100, 400):
            for seed in range(2):
                run = _run(f"bl{n:05d}s{seed}______", group="disk_bd", kind="approx", method="birth-death",
                           sweep={"n_particles": n}, seed=seed, params={"n_particles": n})
                signed = [0.0, -0.5 - 0.1 * seed, -1.0 + 50 / n]
                st.put(run, _result(metrics={"t": [0.0, 0.5, 1.0], "mmd": [0.1, 0.1, 0.1],
                                             "boundary_layer": [abs(v) for v in signed], "boundary_layer_signed": signed}))
    text = make_report(tmp_path).read_text(encoding="utf-8")
    assert "<h2>Boundary layer</h2>" in text
    md = (tmp_path / "boundary_layer.md").read_text()
    assert "| disk_bd | birth-death | n_particles = 100 | 2 | +0.000 ± 0.000 | -0.550 ± 0.050 | -0.500 ± 0.000 |" in md
    assert "| disk_bd | birth-death | n_particles = 400 | 2 | +0.000 ± 0.000 | -0.550 ± 0.050 | -0.875 ± 0.000 |" in md
    png = (tmp_path / "boundary_disk_bd.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 5000
    table = {(r["group"], r["metric"]) for r in orders_table(tmp_path)}
    assert ("disk_bd", "boundary_layer") in table and ("disk_bd", "boundary_layer_signed") not in table


def test_report_joint_fit_for_a_grid_of_h_and_tau(tmp_path):
    """A group sweeping h and τ independently: the one-parameter fit pools runs, and the report adds
    the joint fit err ≈ C_τ τ^q_τ + C_h h^q_h (here exactly 2τ + 3h²)."""
    with Store(tmp_path) as st:
        st.set_meta(META_NAME, "grid")
        for i, h in enumerate((0.2, 0.1, 0.05, 0.025)):
            for j, tau in enumerate((0.08, 0.04, 0.02, 0.01)):
                run = _run(f"g{i}{j}_____________", group="grid", sweep={"h": h, "tau": tau}, params={"h": h, "tau": tau})
                st.put(run, _result(metrics={"t": [1.0], "L1": [2 * tau + 3 * h * h]}))
        for k, h in enumerate((0.2, 0.1, 0.05)):  # a tied ladder (τ = h²): no joint fit
            run = _run(f"t{k}______________", group="tied", sweep={"h": h, "tau": h * h}, params={"h": h, "tau": h * h})
            st.put(run, _result(metrics={"t": [1.0], "L1": [5 * h * h]}))
    table = {r["group"]: r for r in orders_table(tmp_path) if r["metric"] == "L1"}
    note = table["grid"]["note"]
    assert note.startswith("joint fit: ")
    import re

    q = {k: float(v) for k, v in re.findall(r"q_(\w+) = ([-\d.]+)", note)}
    assert q["h"] == pytest.approx(2.0, abs=1e-6) and q["tau"] == pytest.approx(1.0, abs=1e-6)
    assert "joint" not in table["tied"]["note"]
    assert "joint fit" in make_report(tmp_path).read_text(encoding="utf-8")
