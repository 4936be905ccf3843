"""Error control (pdeflow/fem/certified.py): the certified solve meets its tolerance and its error
estimate is honest — effectivity (estimate / true error against the exact solution) in [1, 10] at
every snapshot of every case with an exact solution (1-D at tol 1e-3 and 1e-4, 2-D at 2e-2; the
smaller tolerances of docs/verification.md are measured by benchmarks/certified_effectivity.py)."""
import json

import pytest

from pdeflow.cases import get_case

ONE_D = ["w-kl-gauss-1d", "fr-kl-gauss-1d", "wfr-kl-gauss-1d", "hk-kl-gauss-1d", "hk-kl-mms-1d"]


def _effectivities(result):
    est, true = result.estimates[1:], result.trajectory.errors[1:]
    return [e["L1"] / t["L1"] for e, t in zip(est, true)]


@pytest.mark.parametrize("tol", [1e-3, 1e-4])
@pytest.mark.parametrize("name", ONE_D)
def test_certified_estimate_is_honest_in_1d(name, tol):
    from pdeflow.fem.certified import solve_certified

    result = solve_certified(get_case(name), tol)
    eff = _effectivities(result)
    assert all(1.0 <= e <= 10.0 for e in eff), (eff, result.estimates, result.trajectory.errors)
    assert max(e["L1"] for e in result.estimates[1:]) <= tol
    assert max(e["L1"] for e in result.trajectory.errors[1:]) <= tol
    # the split adds up and the MMD estimates are there at every metric scale
    for e in result.estimates:
        assert e["L1"] == pytest.approx(e["L1_time"] + e["L1_space"], rel=1e-12)
        assert len(e["mmd"]) == 3 and all(v >= 0 for v in e["mmd"].values())
    assert result.trajectory.params["scheme"] == "bdf2" and result.trajectory.step_rho is not None


@pytest.mark.parametrize("name", ["wfr-kl-gauss-2d", "fr-kl-bimodal-2d"])
def test_certified_estimate_is_honest_in_2d(name):
    from pdeflow.fem.certified import solve_certified

    result = solve_certified(get_case(name), 2e-2)
    eff = _effectivities(result)
    assert all(1.0 <= e <= 10.0 for e in eff), (eff, result.estimates, result.trajectory.errors)


def test_plain_solve_reports_an_uncertified_estimate_that_bounds_the_error(tmp_path):
    from pdeflow.cli import main

    for scheme in ("frozen-mobility", "bdf2"):
        out = tmp_path / scheme
        assert main(["solve", "wfr-kl-gauss-1d", "--set", "n=200", "--set", "tau=0.02", "--set", f"scheme={scheme}",
                     "--out", str(out), "--quiet", "--no-plots", "--no-xdmf"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        est = summary["error_estimate"]
        assert est["certified"] is False and "not certified" in est["method"]
        eff = [e["L1"] / t["L1"] for e, t in zip(est["snapshots"][1:], summary["errors"][1:])]
        assert all(1.0 <= e <= 10.0 for e in eff), (scheme, eff)
    out = tmp_path / "none"
    assert main(["solve", "wfr-kl-gauss-1d", "--set", "n=50", "--out", str(out), "--quiet", "--no-plots", "--no-xdmf",
                 "--no-estimate"]) == 0
    assert json.loads((out / "summary.json").read_text())["error_estimate"] is None


def test_cli_tol_writes_a_certified_summary(tmp_path, capsys):
    from pdeflow.cli import main

    assert main(["solve", "fr-kl-gauss-1d", "--tol", "1e-3", "--out", str(tmp_path), "--quiet", "--no-plots",
                 "--no-xdmf"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    est = summary["error_estimate"]
    assert est["certified"] is True and est["tol"] == 1e-3 and len(est["snapshots"]) == len(summary["snapshot_times"])
    assert summary["parameters"]["scheme"] == "bdf2"
    for bad in ("0", "1", "-1e-3", "nan", "abc"):
        assert main(["solve", "fr-kl-gauss-1d", "--tol", bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pdeflow: error:") and "\n" not in err and "--tol" in err, err
    assert not (tmp_path / "x").exists()
