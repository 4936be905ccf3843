"""The `pdeflow` command: catalogue, outputs, and one-line errors with exit code 2."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pdeflow.cases import case_names
from pdeflow.cli import main

PDEFLOW = [sys.executable, "-m", "pdeflow.cli"]


def test_cases_lists_every_case_with_flow_and_exactness(capsys):
    assert main(["cases"]) == 0
    out = capsys.readouterr().out
    for name in case_names():
        assert name in out
    assert main(["cases", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hk-kl-gauss-1d"]["flow"] == "HK" and rows["hk-kl-gauss-1d"]["spherical"] is False
    assert rows["fr-kl-bimodal-2d"]["flow"] == "SFR" and rows["fr-kl-bimodal-2d"]["dim"] == 2
    assert rows["wfr-kl-mixture-1d"]["exact"].startswith("none")
    assert rows["wfr-kl-gauss-2d"]["exact"] == "gaussian"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["solve", "no-such-case"], "unknown case"),
        (["solve", "wfr-kl-gauss-1d", "--set", "tau=0"], "tau"),
        (["solve", "wfr-kl-gauss-1d", "--set", "tau=-0.1"], "tau"),
        (["solve", "wfr-kl-gauss-1d", "--set", "n=1"], "n:"),
        (["solve", "wfr-kl-gauss-1d", "--set", "n=2.5"], "n:"),
        (["solve", "wfr-kl-gauss-1d", "--set", "n=ten"], "n:"),
        (["solve", "wfr-kl-gauss-1d", "--set", "tau=fast"], "tau"),
        (["solve", "wfr-kl-gauss-1d", "--set", "colour=red"], "unknown key 'colour'"),
        (["solve", "wfr-kl-gauss-1d", "--set", "tau"], "key=value"),
        (["solve", "wfr-kl-gauss-1d", "--set", "alpha=-1"], "alpha"),
        (["solve", "wfr-kl-gauss-1d", "--set", "alpha=0", "--set", "beta=0"], "alpha/beta"),
        (["solve", "wfr-kl-gauss-1d", "--set", "T=nan"], "T:"),
        (["solve", "wfr-kl-gauss-1d", "--set", "scheme=euler"], "scheme"),
        (["solve", "wfr-kl-gauss-1d", "--set", "scheme=hellinger-jko"], "alpha = 0"),
        (["solve", "hk-kl-mms-1d", "--set", "beta=2"], "manufactured"),
        (["solve", "wfr-kl-gauss-1d", "--set", "tau=0.1", "--set", "tau_min=1"], "tau_min"),
        (["solve"], "case"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, err
    assert "Traceback" not in captured.err


def test_solve_writes_summary_snapshots_and_xdmf(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        PDEFLOW + ["solve", "fr-kl-gauss-1d", "--set", "n=60", "--set", "tau=0.05", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["case"] == "fr-kl-gauss-1d" and summary["mpi_size"] == 1
    assert {"dolfinx", "petsc", "numpy"} <= set(summary["versions"])
    assert summary["parameters"]["n"] == 60 and summary["parameters"]["tau"] == 0.05
    assert len(summary["steps"]) == 20
    step = summary["steps"][0]
    for key in ("energy", "mass", "newton_iterations", "dissipation", "identity_residual", "wall"):
        assert key in step
    errs = summary["errors"]
    assert [e["t"] for e in errs] == [0.0, 0.25, 0.5, 1.0]
    assert 0 < errs[-1]["L1"] < 0.05 and errs[-1]["mass_rel"] < 1e-12
    data = np.load(out / "snapshots.npz")
    assert data["t"].tolist() == [0.0, 0.25, 0.5, 1.0]
    assert data["x"].shape == (61, 1) and np.all(np.diff(data["x"][:, 0]) > 0)
    assert data["rho"].shape == (4, 61) and np.all(data["rho"] > 0)
    assert data["m"].shape == (61,) and abs(data["m"].sum() - 12.0) < 1e-12  # lumped masses sum to |Ω|
    assert (out / "solution.xdmf").exists() and (out / "solution.h5").exists()
    for png in ("snapshots.png", "diagnostics.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_solve_overrides_and_no_exact_solution(tmp_path):
    out = tmp_path / "mix"
    proc = subprocess.run(
        PDEFLOW
        + ["solve", "wfr-kl-mixture-1d", "--set", "n=50", "--set", "tau=0.1", "--set", "T=0.5", "--set", "beta=2"]
        + ["--out", str(out), "--quiet", "--no-xdmf", "--no-plots"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] is None
    assert summary["problem"]["flow"]["beta"] == 2.0 and summary["problem"]["T"] == 0.5
    assert summary["snapshot_times"] == [0.0, 0.25, 0.5]
    assert not (out / "solution.xdmf").exists() and not (out / "snapshots.png").exists()


def test_failed_solve_exits_1_without_results(tmp_path):
    """Newton capped at one iteration cannot converge: τ is halved down to tau_min, then the solve
    stops with a one-line message, exit code 1, and no result files."""
    out = tmp_path / "fail"
    proc = subprocess.run(
        PDEFLOW
        + ["solve", "hk-kl-gauss-1d", "--set", "n=50", "--set", "tau=0.1", "--set", "tau_min=0.02"]
        + ["--set", "newton_max_it=1", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "tau_min" in err[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_failing_solve_on_a_cold_jit_cache_prints_one_line(tmp_path):
    """A fresh machine has an empty FFCx cache: the JIT's compiler log (setuptools resets the root
    level to INFO) must not bury the one-line error."""
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cold")}
    proc = subprocess.run(
        PDEFLOW + ["solve", "hk-kl-gauss-1d", "--set", "n=37", "--set", "tau=0.1", "--set", "tau_min=0.02",
                   "--set", "newton_max_it=1", "--out", str(tmp_path / "o"), "--quiet"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "tau_min" in lines[0], proc.stderr[-2000:]


@pytest.mark.parametrize("args,needle", [
    (["solve", "fr-kl-gauss-1d", "--set", "n=1000000000"], "mesh vertices"),
    (["solve", "wfr-kl-gauss-3d", "--set", "n=200"], "mesh vertices"),
    (["solve", "fr-kl-gauss-1d", "--set", "tau=1e-300"], "time steps"),
    (["solve", "fr-kl-gauss-1d", "--set", "T=1e9"], "time steps"),
    (["solve", "hk-kl-gauss-1d", "--set", "tau_min=1e-200"], "halvings"),
    (["approx", "fr-kl-gauss-1d", "--method", "template-fr", "--set", "n_particles=1000000000"], "particles"),
    (["approx", "w-kl-gauss-1d", "--method", "svgd", "--set", "dt=1e-300"], "particle steps"),
    (["approx", "w-kl-gauss-1d", "--method", "svgd", "--set", "n=100000000"], "mesh vertices"),
    (["verify", "w-kl-gauss-1d", "--method", "svgd", "--set", "dt=1e-8"], "particle steps"),
    (["check", "fr-kl-gauss-1d", "nope.npz", "--set", "n=100000000"], "mesh vertices"),
])
def test_inputs_beyond_the_resource_budget_are_refused_at_once(capsys, args, needle):
    """No upper bounds used to mean n=10**9 or tau=1e-300 ran for ever or died in MemoryError."""
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err and "--allow-large" in err, err


def test_allow_large_lifts_the_budget():
    from pdeflow.cases import CaseError, check_budget, get_case

    problem = get_case("fr-kl-gauss-1d")
    with pytest.raises(CaseError, match="budget"):
        check_budget(problem, n=3_000_000)
    check_budget(problem, n=3_000_000, allow_large=True)
    check_budget(problem, n=1000, tau=1e-5, tau_min=1e-12, n_particles=10**6, dt=1e-6)  # within: no error


def test_json_to_a_full_or_closed_stdout_is_one_line_not_a_traceback():
    with open("/dev/full", "w") as full:
        proc = subprocess.run(PDEFLOW + ["cases", "--json"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["pdeflow: error: cannot write the output: No space left on device"]
    proc = subprocess.run(PDEFLOW + ["cases", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120, close_fds=True)
    assert proc.returncode == 0 and proc.stderr == ""
