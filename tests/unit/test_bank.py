"""The reference bank (pdeflow/bank.py): certified entries pinned by a key of the case definition,
scheme, tolerance, estimator and format; resumable; stale entries listed and never looked up."""
import json

import pytest

from pdeflow import bank
from pdeflow.cases import get_case
from pdeflow.cli import main


def test_estimator_id_matches_the_certified_solve():
    from pdeflow.fem import certified

    assert bank.ESTIMATOR_ID == (f"richardson tau-order {certified.TIME_ORDER[bank.SCHEME]}, h-order "
                                 f"{certified.SPACE_ORDER}, safety {certified.SAFETY:g}")


def test_build_list_resume_and_stale(tmp_path, capsys):
    d = str(tmp_path / "bank")
    assert main(["bank", "build", "fr-kl-gauss-1d", "--tol-1d", "1e-3", "--dir", d, "--quiet"]) == 0
    problem = get_case("fr-kl-gauss-1d")
    path = bank.lookup(problem, 1e-3, d)
    assert path is not None and path.name == f"fr-kl-gauss-1d-{bank.entry_key(problem, 1e-3)}.npz"
    assert bank.lookup(problem, 1e-4, d) is None  # another tolerance is another entry
    from pdeflow.reference import Reference

    ref = Reference(path)
    assert max(e["L1"] for e in ref.estimates[1:]) <= 1e-3 and ref.provenance["tol"] == 1e-3
    mtime = path.stat().st_mtime_ns
    assert main(["bank", "build", "fr-kl-gauss-1d", "--tol-1d", "1e-3", "--dir", d]) == 0  # resumable: kept
    assert path.stat().st_mtime_ns == mtime and "0 built, 1 already there" in capsys.readouterr().out
    # an entry whose key no longer matches (the case definition or the estimator changed) is stale
    stale = path.with_name("fr-kl-gauss-1d-000000000000.npz")
    stale.write_bytes(path.read_bytes())
    rows = {r["file"]: r for r in bank.listing(d)}
    assert rows[str(path)]["status"] == "current" and rows[str(stale)]["status"] == "stale"
    assert main(["bank", "list", "--dir", d, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in listed} == {"current", "stale"}
    (tmp_path / "bank" / "broken-123456789abc.npz").write_bytes(b"no")
    assert {r["status"] for r in bank.listing(d)} == {"current", "stale", "unreadable"}
    # a rebuild of the case removes its stale files
    path.unlink()
    assert main(["bank", "build", "fr-kl-gauss-1d", "--tol-1d", "1e-3", "--dir", d, "--quiet"]) == 0
    assert path.exists() and not stale.exists()


@pytest.mark.parametrize("args,needle", [
    (["bank", "build", "nope"], "unknown case"),
    (["bank", "build", "fr-kl-gauss-1d", "--tol-1d", "0"], "--tol-1d"),
    (["bank", "build", "fr-kl-gauss-1d", "--tol-2d", "nan"], "--tol-2d"),
    (["bank"], "{build,list}"),
])
def test_bank_bad_input(tmp_path, capsys, args, needle):
    assert main(args + (["--dir", str(tmp_path / "b")] if len(args) > 1 else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, err
    assert not (tmp_path / "b").exists()
