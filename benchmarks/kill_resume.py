"""Data integrity under kill -9 (issue #14), measured — not a test (it takes minutes).

1. Studies: ``mpirun -n 2 pdeflow study SLOW`` is killed with SIGKILL at a random moment, resumed,
   killed again, … until it completes; then the store must hold every run of the spec exactly once,
   with metrics equal to an uninterrupted serial study's (0 lost, 0 duplicated, numbers identical).
2. Solves: ``pdeflow solve`` is killed at a random moment; --out must then hold either a complete
   result (summary.json with every file beside it) or no summary.json at all.

    .venv/bin/python benchmarks/kill_resume.py [--sequences 10] [--solves 20] [--seed 0]
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from study_specs import SLOW, assert_same_results  # noqa: E402

MPIRUN = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
PDEFLOW = [sys.executable, "-m", "pdeflow.cli"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "OPAL_", "PRTE_"))}


def _rows(path: Path) -> list:
    con = sqlite3.connect(f"file:{path / 'study.sqlite'}?mode=ro", uri=True)  # never creates the file
    try:
        return con.execute("select run_id, status, metrics from runs").fetchall()
    finally:
        con.close()


def _kill_orphans(lock: Path) -> None:
    """Open MPI 5 starts the ranks outside mpirun's process group: a rank that outlived the kill
    still holds study.lock (the lock file names its pid)."""
    try:
        pid = int(lock.read_text().split()[1])
        os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError, ValueError):
        pass


def kill_sequence(spec: Path, out: Path, rng: random.Random) -> dict:
    kills = 0
    while True:
        cmd = MPIRUN + ["-n", "2"] + PDEFLOW + ["study", str(spec), "--out", str(out), "--quiet"]
        if (out / "study.sqlite").exists():
            cmd.append("--resume")
        before = len(_rows(out)) if (out / "study.sqlite").exists() else 0
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=ENV)
        # kill at a random moment after this start has stored at least one more run (a kill during
        # start-up would test nothing and, on a loaded machine, never let the study progress)
        while proc.poll() is None:
            time.sleep(0.1)
            try:
                if len(_rows(out)) > before:
                    break
            except sqlite3.Error:
                pass
        try:
            proc.wait(timeout=rng.uniform(0.0, 3.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _kill_orphans(out / "study.lock")
            kills += 1
            continue
        if proc.returncode != 0:
            raise SystemExit(f"study exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        return {"kills": kills}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=10)
    ap.add_argument("--solves", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    from mpi4py import MPI

    from pdeflow.study.runner import run_study
    from pdeflow.study.spec import load_spec
    from pdeflow.study.store import Store

    work = Path(tempfile.mkdtemp(prefix="pdeflow-kill-"))
    spec_path = work / "slow.toml"
    spec_path.write_text(SLOW)
    spec = load_spec(spec_path)
    expected = {r["run_id"] for r in spec.runs()}
    serial = work / "serial"
    run_study(spec, serial, comm=MPI.COMM_SELF, progress=False)

    def metrics(path):
        with Store(path / "study.sqlite") as store:
            return {(r["group"], r["run_id"]): (r["status"], r["metrics"], r["message"]) for r in store.rows()}

    lost = duplicated = differing = kills = 0
    t0 = time.time()
    for i in range(args.sequences):
        out = work / f"killed-{i}"
        kills += kill_sequence(spec_path, out, rng)["kills"]
        rows = _rows(out)
        ids = [r[0] for r in rows]
        lost += len(expected - set(ids))
        duplicated += len(ids) - len(set(ids))
        try:
            assert_same_results(metrics(out), metrics(serial))
        except AssertionError:
            differing += 1
    print(f"studies: {args.sequences} kill/resume sequences, {kills} kills: {lost} runs lost, {duplicated} duplicated, "
          f"{differing} sequences with metrics differing from the serial study ({time.time() - t0:.0f} s)")

    complete = absent = half = killed = 0
    for i in range(args.solves):
        out = work / f"solve-{i}"
        # about 2.5 s here (start-up, the solve, its error-estimate companions, the writes): kills land before,
        # during and after the writing of the outputs
        proc = subprocess.Popen(PDEFLOW + ["solve", "wfr-kl-gauss-2d", "--set", "n=48", "--set", "tau=0.02", "--out",
                                           str(out), "--quiet", "--no-plots"], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        try:
            proc.wait(timeout=rng.uniform(0.5, 3.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed += 1
        if not (out / "summary.json").exists():
            absent += 1
            continue
        try:
            json.loads((out / "summary.json").read_text())
            ok = all((out / n).exists() for n in ("snapshots.npz", "solution.xdmf", "solution.h5"))
        except ValueError:
            ok = False
        complete += ok
        half += not ok
    print(f"solves: {args.solves} runs killed at a random moment ({killed} before they ended): {complete} complete "
          f"results, {absent} without summary.json, {half} half-written")
    return 0 if lost == duplicated == differing == half == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
