"""Outputs are whole or absent (issue #14): a full disk, a read-only or locked --out, a corrupt
store — one line, the right exit code, no partial result and nothing hidden left behind.  The disk
is made full for real on a small tmpfs where this machine allows a mount (root in CI), and by
injection (PDEFLOW_FAULT, pdeflow.agreement) everywhere."""
import contextlib
import fcntl
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pdeflow.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from common import SOLVE, study_spec  # noqa: E402

SPEC = study_spec("lock", [20, 40, 80], 0.02)
PDEFLOW = [sys.executable, "-m", "pdeflow.cli"]


def _one_line(err: str, needle: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pdeflow: error:") and needle in lines[0], err
    return lines[0]


def _everything(path: Path) -> set:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


@pytest.mark.parametrize("stage", ["write", "xdmf", "publish"])
def test_a_full_disk_at_any_output_stage_leaves_nothing(tmp_path, capsys, monkeypatch, stage):
    out = tmp_path / "out"
    monkeypatch.setenv("PDEFLOW_FAULT", f"{stage}:0:oserror")
    assert main(SOLVE + ["--out", str(out)]) == 1
    _one_line(capsys.readouterr().err, "No space left on device")
    assert _everything(out) == set()  # no summary.json beside a truncated .h5, no hidden staging files


def test_a_failed_rewrite_keeps_the_earlier_result_whole(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(SOLVE + ["--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in ("summary.json", "snapshots.npz")}
    monkeypatch.setenv("PDEFLOW_FAULT", "xdmf:0:oserror")
    assert main(SOLVE + ["--set", "tau=0.025", "--out", str(out)]) == 1
    capsys.readouterr()
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not list(out.glob(".partial-*"))


def test_staging_left_by_a_killed_run_is_cleared_by_the_next(tmp_path):
    out = tmp_path / "out"
    (out / ".partial-killed").mkdir(parents=True)
    (out / ".partial-killed" / "snapshots.npz").write_bytes(b"half")
    assert main(SOLVE + ["--out", str(out)]) == 0
    assert _everything(out) == {"summary.json", "snapshots.npz", "solution.xdmf", "solution.h5"}


@contextlib.contextmanager
def _tmpfs(size: str):
    where = Path("/tmp") / f"pdeflow-tmpfs-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


def test_a_really_full_disk_is_one_line_and_leaves_nothing():
    # n = 2000: snapshots.npz + summary.json take 88 KB, solution.h5 120 KB; 150 KB holds the first
    # two, not the third — the disk fills at the XDMF stage
    with _tmpfs("150k") as disk:
        out = disk / "out"
        proc = subprocess.run(PDEFLOW + SOLVE[:1] + ["wfr-kl-gauss-1d", "--set", "n=2000", "--set", "tau=0.05",
                                                     "--set", "T=0.5", "--quiet", "--no-plots", "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        _one_line(proc.stderr, "No space left on device")
        assert not (out / "summary.json").exists()
        assert not list(out.glob(".partial-*")) and not list(out.glob("*.tmp*"))


def test_a_read_only_out_is_one_line():
    with _tmpfs("1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        proc = subprocess.run(PDEFLOW + SOLVE + ["--out", str(disk / "out")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 1
        _one_line(proc.stderr, "Read-only file system")


def test_a_second_writer_on_one_study_is_refused(tmp_path, capsys):
    spec = tmp_path / "lock.toml"
    spec.write_text(SPEC)
    out = tmp_path / "study"
    out.mkdir()
    fd = os.open(out / "study.lock", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"pid 4242 on elsewhere")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running study holds it
        assert main(["study", str(spec), "--out", str(out), "--quiet"]) == 2
        line = _one_line(capsys.readouterr().err, "another pdeflow study is writing there")
        assert "pid 4242" in line
        assert not (out / "study.sqlite").exists()
    finally:
        os.close(fd)
    assert main(["study", str(spec), "--out", str(out), "--quiet"]) == 0  # released: it runs


def test_two_simultaneous_fresh_starts_store_each_run_once(tmp_path):
    spec = tmp_path / "lock.toml"
    spec.write_text(SPEC)
    out = tmp_path / "study"
    procs = [subprocess.Popen(PDEFLOW + ["study", str(spec), "--out", str(out), "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "another pdeflow study is writing there" in loser or "already holds a study" in loser, loser
    from pdeflow.study.store import Store

    with Store(out / "study.sqlite") as store:
        rows = store.rows()
    assert len(rows) == 3 and len({r["run_id"] for r in rows}) == 3


def test_a_corrupt_store_on_resume_is_bad_input(tmp_path, capsys):
    spec = tmp_path / "lock.toml"
    spec.write_text(SPEC)
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.sqlite").write_bytes(b"this is not a database" * 100)
    assert main(["study", str(spec), "--out", str(out), "--resume", "--quiet"]) == 2
    _one_line(capsys.readouterr().err, "not a database")


def test_a_store_that_cannot_be_written_fails_the_study_in_one_line(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "lock.toml"
    spec.write_text(SPEC)
    monkeypatch.setenv("PDEFLOW_FAULT", "store:0:oserror:2")
    assert main(["study", str(spec), "--out", str(tmp_path / "study"), "--quiet"]) == 1
    _one_line(capsys.readouterr().err, "No space left on device")
    monkeypatch.delenv("PDEFLOW_FAULT")
    # what was committed before the failure is kept, and --resume completes the study
    assert main(["study", str(spec), "--out", str(tmp_path / "study"), "--quiet", "--resume"]) == 0
