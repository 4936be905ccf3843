"""Study runner, serially: every run stored once, resume skips them, fitted orders from the store,
a kill -9 of an MPI study followed by --resume completes it with the same numbers."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpi4py import MPI

pytest.importorskip("pdeflow.study.spec")
pytest.importorskip("pdeflow.study.report")
from pdeflow.study.runner import run_study  # noqa: E402
from pdeflow.study.spec import load_spec  # noqa: E402
from pdeflow.study.store import Store  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from study_specs import SLOW, TINY, assert_same_results  # noqa: E402


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return load_spec(path)


def _metrics(out):
    store = Store(out / "study.sqlite")
    try:
        return {(r["group"], r["run_id"]): (r["status"], r["metrics"]) for r in store.rows()}
    finally:
        store.close()


def test_serial_study_stores_every_run_and_resume_skips_them(tmp_path, spec):
    out = tmp_path / "study"
    summary = run_study(spec, out, comm=MPI.COMM_SELF, progress=False)
    n_runs = 3 + 3 + 2 * 2 + 1  # tau ladder, h ladder, particle runs, their shared reference
    assert summary["done"] == n_runs and summary["failed"] == 0 and summary["skipped"] == 0
    rows = _metrics(out)
    assert all(status == "done" for status, _ in rows.values())
    again = run_study(spec, out, comm=MPI.COMM_SELF, resume=True, progress=False)
    assert again["done"] == 0 and again["skipped"] == n_runs
    assert _metrics(out) == rows
    con = sqlite3.connect(out / "study.sqlite")
    assert con.execute("select count(*), count(distinct run_id) from runs").fetchone() == (n_runs, n_runs)
    # particle runs carry, per snapshot and scale, the Monte-Carlo floor (20 oracle draws, computed
    # once per reference and N: one cache file per particle count) and the reference's error estimate
    approx = [m for (g, _), (_, m) in rows.items() if g == "bd-N"]
    assert len(approx) == 4
    for m in approx:
        for name in ("mmd_small", "mmd", "mmd_large"):
            assert len(m[f"mc_floor_{name}"]) == len(m["t"]) and all(v > 0 for v in m[f"mc_floor_{name}"])
            assert len(m[f"ref_error_{name}"]) == len(m["t"]) and m[f"ref_error_{name}"][-1] > 0
        assert "mmd_exact" not in m  # the mixture has no closed form
    floors = sorted(p.name for p in (out / "runs").glob("floor-*.json"))
    assert len(floors) == 2 and all(f.endswith("-20.json") for f in floors), floors
    refs = [m for (g, _), (_, m) in rows.items() if g == "_reference"]
    assert len(refs) == 1 and refs[0]["error_estimate_L1"][-1] > 0
    from pdeflow.study.report import make_report, orders_table

    store = Store(out / "study.sqlite")
    table = {(r["group"], r["metric"]): r for r in orders_table(store)}
    store.close()
    assert abs(table[("tau", "L1")]["order"] - 1.0) < 0.2
    assert abs(table[("h", "L2")]["order"] - 2.0) < 0.3
    html = make_report(out)
    assert "data:image/png;base64," in html.read_text()
    for png in ("density_tau.png", "density_h.png", "particles_bd-N.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_kill_and_resume_under_mpi(tmp_path):
    """SIGKILL to a running `mpirun -n 2 pdeflow study`, then --resume: no duplicate or missing
    rows, and the numbers equal those of an uninterrupted serial study."""
    spec_path = tmp_path / "slow.toml"
    spec_path.write_text(SLOW)
    spec = load_spec(spec_path)
    out = tmp_path / "killed"
    cmd = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    cmd += ["-n", "2", sys.executable, "-m", "pdeflow.cli", "study", str(spec_path), "--out", str(out), "--quiet"]
    # this process is an MPI singleton (mpi4py is imported): its OMPI_/PMIX_ variables would make
    # the nested mpirun fail, so the child gets a clean environment
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PRTE_"))}
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            # read-only: never creates the file (the study would take it for an existing one)
            stored = sqlite3.connect(f"file:{out / 'study.sqlite'}?mode=ro", uri=True).execute(
                "select count(*) from runs").fetchone()[0]
        except sqlite3.Error:
            stored = 0
        if stored >= 2:
            break
    assert proc.poll() is None, "the study finished before it could be killed: make SLOW longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Open MPI 5 starts the ranks outside mpirun's process group: rank 0 (the study's writer) may
    # outlive the kill and still hold study.lock, so that --resume is — rightly — refused.  Kill it
    # too, as a user would (the lock file names its pid).
    _kill_lock_holder(out / "study.lock")
    assert stored >= 2
    n_total = len(spec.runs())
    assert stored < n_total
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    serial = tmp_path / "serial"
    run_study(spec, serial, comm=MPI.COMM_SELF, progress=False)
    assert_same_results(_metrics(out), _metrics(serial))


def _kill_lock_holder(lock: Path, timeout: float = 30.0) -> None:
    import fcntl

    try:
        pid = int(lock.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.time() + timeout
    with open(lock) as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except OSError:
                if time.time() > deadline:
                    raise AssertionError(f"study.lock still held {timeout:.0f} s after killing pid {pid}")
                time.sleep(0.1)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("[study]\nname = 'x'\ncase = 'nope'\n[[group]]\nlabel='a'\nkind='reference'\nn=10\ntau=0.1\n", "case"),
        ("[study]\nname = 'x'\ncase = 'wfr-kl-gauss-1d'\n[[group]]\nlabel='a'\nkind='reference'\nn=10\ntau=-0.1\n", "tau"),
        ("[study]\nname = 'x'\ncase = 'wfr-kl-gauss-1d'\ncolour = 1\n", "colour"),
        ("[study\nname = 'x'\n", "invalid TOML"),
    ],
)
def test_cli_study_bad_spec_exit_2(tmp_path, capsys, text, needle):
    from pdeflow.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["study", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, err


def test_cli_refuses_to_overwrite_a_study_and_reports(tmp_path, capsys, spec):
    from pdeflow.cli import main

    out = tmp_path / "s"
    run_study(spec, out, comm=MPI.COMM_SELF, progress=False)
    assert main(["study", str(spec.source), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "tau" in printed
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_orders_from_the_store_match_the_scheme(tmp_path):
    """τ- and h-orders fitted from the store (with their 95% intervals) are 1 ± 0.1 and 2 ± 0.15,
    and the report's plots exist with the fitted slope in their legend."""
    from study_specs import ORDERS

    from pdeflow.study.report import make_report, orders_table

    path = tmp_path / "orders.toml"
    path.write_text(ORDERS)
    out = tmp_path / "o"
    run_study(load_spec(path), out, comm=MPI.COMM_SELF, progress=False)
    store = Store(out / "study.sqlite")
    table = {(r["group"], r["metric"]): r for r in orders_table(store)}
    store.close()
    for metric in ("L1", "L2", "hellinger"):
        tau, h = table[("tau", metric)], table[("h", metric)]
        assert tau["param"] == "tau" and abs(tau["order"] - 1.0) <= 0.1, tau
        assert h["param"] == "h" and abs(h["order"] - 2.0) <= 0.15, h
        assert tau["ci_low"] < tau["order"] < tau["ci_high"]
    html = make_report(out).read_text()
    assert html.count("data:image/png;base64,") >= 6 and "order" in html
    assert (out / "conv_h_L2.png").read_bytes()[:4] == b"\x89PNG"


def test_spec_fit_range_restricts_the_fitted_levels(tmp_path):
    from study_specs import ORDERS

    from pdeflow.study.report import orders_table

    path = tmp_path / "orders.toml"
    path.write_text(ORDERS.replace('target = "exact"', 'target = "exact"\nfit_range = [1, -1]'))
    out = tmp_path / "o"
    run_study(load_spec(path), out, comm=MPI.COMM_SELF, progress=False)
    store = Store(out / "study.sqlite")
    table = {(r["group"], r["metric"]): r for r in orders_table(store)}
    store.close()
    assert table[("tau", "L1")]["levels"] == 3 and table[("h", "L1")]["levels"] == 3
    assert len(table[("tau", "L1")]["param_values"]) == 4  # all levels are reported, three are fitted


INLINE = """
[study]
name = "inline"
case = "my-gauss"

[cases.my-gauss]
domain = {lower = [-6.0], upper = [6.0]}
target = {mean = [0.0], variance = 1.0}
initial = {mean = [1.0], variance = 0.49}
flow = {alpha = 1.0, beta = 1.0, spherical = true}

[[group]]
label = "h"
kind = "reference"
n = {start = 50, factor = 2, levels = 3}
tau = {tied = "h^2", coefficient = 1.0}
"""


def test_inline_case_table_runs_like_the_builtin_case(tmp_path):
    """[cases.NAME] with the parameters of wfr-kl-gauss-1d gives the same errors as the built-in."""
    from pdeflow.study.spec import parse_spec
    import tomllib

    spec = parse_spec(tomllib.loads(INLINE), source=INLINE)
    assert spec.groups[0].target == "exact"  # single Gaussians: the Gaussian ODE applies
    out = tmp_path / "inline"
    run_study(spec, out, comm=MPI.COMM_SELF, progress=False)
    builtin = parse_spec(tomllib.loads(INLINE.replace('case = "my-gauss"', 'case = "wfr-kl-gauss-1d"')))
    run_study(builtin, tmp_path / "builtin", comm=MPI.COMM_SELF, progress=False)
    a = sorted((r["params"]["n"], r["metrics"]["L1"][-1]) for r in Store(out / "study.sqlite").rows())
    b = sorted((r["params"]["n"], r["metrics"]["L1"][-1]) for r in Store(tmp_path / "builtin" / "study.sqlite").rows())
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(x == pytest.approx(y, rel=1e-12) for (_, x), (_, y) in zip(a, b))


@pytest.mark.parametrize(
    "edit,needle",
    [
        (("variance = 1.0}", "variance = -1.0}"), "variance"),
        (("flow = {alpha = 1.0", "flow = {gamma = 2.0, alpha = 1.0"), "flow"),
        (("domain = {lower = [-6.0], upper = [6.0]}", "domain = {lower = [6.0], upper = [-6.0]}"), "domain"),
        (("[cases.my-gauss]", "[cases.my-gauss]\ncolour = 1"), "colour"),
        # non-finite numbers and booleans are not numbers (they used to be accepted and every run failed)
        (("variance = 1.0}", "variance = inf}"), "variance"),
        (("target = {mean = [0.0]", "target = {mean = [nan]"), "target.mean"),
        (("target = {mean = [0.0]", "target = {mean = [true]"), "target.mean"),
        (("initial = {mean = [1.0], variance = 0.49}", "initial = {mean = [1.0], variance = 0.49, mass = inf}"),
         "initial.mass"),
        (("initial = {mean = [1.0], variance = 0.49}", "initial = {mean = [1.0], cov = [[nan]]}"), "initial.cov"),
        (("domain = {lower = [-6.0], upper = [6.0]}", "domain = {lower = [-inf], upper = [6.0]}"), "domain"),
        (("domain = {lower = [-6.0], upper = [6.0]}", "domain = {lower = [false], upper = [6.0]}"), "domain"),
        (("flow = {alpha = 1.0", "flow = {alpha = inf"), "flow.alpha"),
        (("flow = {alpha = 1.0", "flow = {alpha = true"), "flow.alpha"),
        (("[cases.my-gauss]", "[cases.my-gauss]\ninitial_mass = nan"), "initial_mass"),
        (("[cases.my-gauss]", "[cases.my-gauss]\nsnapshots = [0.5, inf]"), "snapshots"),
        (("[cases.my-gauss]", "[cases.my-gauss]\nsnapshots = [true]"), "snapshots"),
    ],
)
def test_bad_inline_case_is_a_one_line_spec_error(edit, needle):
    from pdeflow.study.spec import SpecError, parse_spec
    import tomllib

    with pytest.raises(SpecError) as err:
        parse_spec(tomllib.loads(INLINE.replace(*edit)))
    assert "\n" not in str(err.value) and needle in str(err.value) and str(err.value).startswith("cases.")


def test_richardson_group_reports_order_and_gci(tmp_path):
    """No exact solution: the nested-mesh differences give an order near 2 and a GCI estimate of
    the finest level's error (the target defaults to richardson)."""
    from pdeflow.study.report import orders_table
    from pdeflow.study.spec import parse_spec
    import tomllib

    text = INLINE.replace("target = {mean = [0.0], variance = 1.0}",
                          "target = {components = [{mean = [-2.0], variance = 0.25, mass = 0.5}, "
                          "{mean = [2.0], variance = 0.25, mass = 0.5}]}").replace("levels = 3", "levels = 4")
    spec = parse_spec(tomllib.loads(text), source=text)
    assert spec.groups[0].target == "richardson"
    out = tmp_path / "rich"
    run_study(spec, out, comm=MPI.COMM_SELF, progress=False)
    store = Store(out / "study.sqlite")
    row = next(r for r in orders_table(store) if r["metric"] == "richardson_L1")
    store.close()
    assert abs(row["order"] - 2.0) < 0.2, row
    assert "GCI" in row["note"]
    est = float(row["note"].split("estimate ")[1].split(";")[0])
    assert 0 < est < row["errors"][0]  # below the finest difference


def test_richardson_on_a_gmsh_domain_uses_second_moments(tmp_path):
    """2-D, unstructured and non-nested meshes (wfr-kl-mixture-disk): the Richardson metric is the
    second-moment difference between levels (richardson_m2; no richardson_L1 outside 1-D)."""
    from pdeflow.study.report import orders_table
    from pdeflow.study.spec import parse_spec
    import tomllib

    text = ('[study]\nname = "disk"\ncase = "wfr-kl-mixture-disk"\n[[group]]\nlabel = "disk-h"\nkind = "reference"\n'
            'n = {start = 16, factor = 2, levels = 3}\ntau = {tied = "h^2", coefficient = 0.1422222}\n')
    spec = parse_spec(tomllib.loads(text), source=text)
    assert spec.groups[0].target == "richardson"
    out = tmp_path / "disk"
    run_study(spec, out, comm=MPI.COMM_SELF, progress=False)
    store = Store(out / "study.sqlite")
    rows = {r["metric"]: r for r in orders_table(store)}
    store.close()
    assert "richardson_L1" not in rows
    row = rows["richardson_m2"]
    assert abs(row["order"] - 2.1) < 0.3, (row["errors"], row["note"])  # measured 2.095 (benchmarks/mesh_domains.py)
    assert "GCI" in row["note"]


def test_reference_of_an_approx_group_solves_the_overridden_flow():
    """An approx group with alpha = 0 is compared with the FR flow, not with the case's WFR flow."""
    from pdeflow.study.runner import reference_run_for

    base = {"case": "wfr-kl-mixture-1d", "params": {"reference": {"n": 100, "tau": 0.01}}}
    plain = reference_run_for(base, None)
    fr = reference_run_for({**base, "params": {**base["params"], "alpha": 0.0}}, None)
    assert "alpha" not in plain["params"] and fr["params"]["alpha"] == 0.0
    assert fr["run_id"] != plain["run_id"]


GROUP_FAIL_SPEC = """
[study]
name = "g2"
case = "wfr-kl-gauss-2d"
target = "exact"
metrics = ["L1"]

[[group]]
label = "g"
kind = "reference"
n = [8, 12]
tau = 0.1
"""


def test_failure_on_one_rank_of_a_group_does_not_hang(tmp_path):
    """`mpirun -n 3 -x PDEFLOW_STUDY_FAIL=g:1 pdeflow study SPEC --ranks-per-run 2` used to hang: rank 1
    failed before the solve while rank 0 waited in the solver's first collective.  The set-up stage is
    now agreed on before any collective: the study ends (exit 0) with both runs stored as failed."""
    spec_path = tmp_path / "g2.toml"
    spec_path.write_text(GROUP_FAIL_SPEC)
    out = tmp_path / "out"
    cmd = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    cmd += ["-n", "3", "-x", "PDEFLOW_STUDY_FAIL=g:1", sys.executable, "-m", "pdeflow.cli", "study", str(spec_path),
            "--out", str(out), "--ranks-per-run", "2", "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PRTE_"))}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = sqlite3.connect(out / "study.sqlite").execute("select status, message from runs").fetchall()
    assert len(rows) == 2 and all(s == "failed" and "injected failure on rank 1" in m for s, m in rows), rows


def test_non_finite_metrics_fail_the_run():
    from pdeflow.study.runner import _non_finite_metric

    assert _non_finite_metric({"L1": [0.1, float("nan")], "mmd": [0.2]}) == "L1"
    assert _non_finite_metric({"mmd": [0.2], "mc_floor": float("inf")}) == "mc_floor"
    assert _non_finite_metric({"mmd": [0.2], "boundary_layer": [float("nan")]}) is None  # not measurable by design
    assert _non_finite_metric({"t": [0.0, 1.0], "mmd": [0.1, 0.2]}) is None


def test_resume_with_an_edited_spec_is_refused_unless_forced(tmp_path, capsys):
    from pdeflow.cli import main

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY)
    out = tmp_path / "s"
    assert main(["study", str(spec_path), "--out", str(out), "--quiet"]) == 0
    assert main(["study", str(spec_path), "--out", str(out), "--resume", "--quiet"]) == 0  # same spec: fine
    spec_path.write_text(TINY.replace("n_particles = [30, 60]", "n_particles = [30, 90]"))
    capsys.readouterr()
    assert main(["study", str(spec_path), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "differs from the one the study was started with" in err and "added" in err and "\n" not in err
    assert main(["study", str(spec_path), "--out", str(out), "--resume", "--force", "--quiet"]) == 0


def test_retry_failed_runs_the_failures_again(tmp_path, monkeypatch):
    """Runs that failed (here: an injected failure in group 'tau') are kept by --resume and run again by
    --retry-failed, whose results replace them; done runs are not recomputed."""
    from pdeflow.cli import main

    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY)
    out = tmp_path / "s"
    monkeypatch.setenv("PDEFLOW_STUDY_FAIL", "tau:0")
    assert main(["study", str(spec_path), "--out", str(out), "--quiet"]) == 0
    monkeypatch.delenv("PDEFLOW_STUDY_FAIL")
    status = lambda: {r["run_id"]: (r["group"], r["status"]) for r in Store(out / "study.sqlite").rows()}
    before = status()
    failed = {k for k, (g, st) in before.items() if st == "failed"}
    assert failed and all(before[k][0] == "tau" for k in failed)
    assert main(["study", str(spec_path), "--out", str(out), "--resume", "--quiet"]) == 0
    assert {k for k, (_, st) in status().items() if st == "failed"} == failed  # resume keeps failures
    assert main(["study", str(spec_path), "--out", str(out), "--retry-failed", "--quiet"]) == 0
    after = status()
    assert all(after[k][1] == "done" for k in failed) and set(after) == set(before)


def test_figure_names_are_safe_and_unique():
    from pdeflow.study.figures import file_slug

    assert file_slug("tau") == "tau" and file_slug("bd-N") == "bd-N"
    a, b = file_slug("a b"), file_slug("a_b")
    assert a != b and b == "a_b"
    assert "/" not in file_slug("x/y") and file_slug("x/y") != file_slug("x_y")
    long = file_slug("L" * 300)
    assert len(long) <= 70 and long != file_slug("L" * 299)
    assert not file_slug("..").startswith(".")


def test_report_with_a_slash_and_a_long_label(tmp_path):
    from pdeflow.study.report import make_report

    text = TINY.replace('label = "h"', 'label = "h/' + "x" * 260 + '"')
    spec_path = tmp_path / "odd.toml"
    spec_path.write_text(text)
    out = tmp_path / "odd"
    run_study(load_spec(spec_path), out, comm=MPI.COMM_SELF, progress=False)
    html = make_report(out)
    assert html.exists() and all(len(p.name) < 255 for p in out.iterdir())
    assert any(p.name.startswith("conv_h_") and p.suffix == ".png" for p in out.iterdir())


def test_swept_string_parameter_runs_and_reports(tmp_path):
    """kernel = ["gaussian", "imq"] used to crash the report (float('imq')): the runs are tabulated and no
    order is fitted over a string."""
    from pdeflow.study.report import make_report

    spec_path = tmp_path / "k.toml"
    spec_path.write_text('[study]\nname = "k"\ncase = "w-kl-gauss-1d"\n\n[[group]]\nlabel = "kern"\nkind = "approx"\n'
                         'method = "svgd"\nkernel = ["gaussian", "imq"]\nsigma = 0.5\nn_particles = 30\ndt = 0.05\n'
                         'reference = {n = 50, tau = 0.05}\n')
    out = tmp_path / "k"
    run_study(load_spec(spec_path), out, comm=MPI.COMM_SELF, progress=False)
    rows = [r for r in Store(out / "study.sqlite").rows() if r["group"] == "kern"]
    assert {r["sweep"]["kernel"] for r in rows} == {"gaussian", "imq"} and all(r["status"] == "done" for r in rows)
    # a case with a closed form: the MMDs against it too, beside those against the FE reference
    assert all(len(r["metrics"]["mmd_exact"]) == len(r["metrics"]["mmd"]) for r in rows)
    assert make_report(out).exists()
    assert "imq" in (out / "runs.md").read_text()
