"""Study runner under mpirun -n 2: the stored metrics equal those of a serial study, and an
exception on one rank is stored as a failed run without hanging the study."""
import os
import sys
import time

import pytest
from mpi4py import MPI

pytest.importorskip("pdeflow.study.spec")
pytest.importorskip("pdeflow.study.report")
from pdeflow.study.runner import run_study  # noqa: E402
from pdeflow.study.spec import load_spec  # noqa: E402
from pdeflow.study.store import Store  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from study_specs import TINY, assert_same_results  # noqa: E402

COMM = MPI.COMM_WORLD


@pytest.fixture()
def spec(tmp_path_factory):
    base = COMM.bcast(str(tmp_path_factory.mktemp("study")) if COMM.rank == 0 else None, root=0)
    path = os.path.join(base, "tiny.toml")
    if COMM.rank == 0:
        with open(path, "w") as f:
            f.write(TINY)
    COMM.barrier()
    return base, load_spec(path)


def _rows(path):
    store = Store(os.path.join(path, "study.sqlite"))
    try:
        return {(r["group"], r["run_id"]): (r["status"], r["metrics"], r["message"]) for r in store.rows()}
    finally:
        store.close()


def test_parallel_study_equals_serial_study(spec):
    base, s = spec
    run_study(s, os.path.join(base, "par"), comm=COMM, progress=False)
    COMM.barrier()
    if COMM.rank == 0:
        run_study(s, os.path.join(base, "ser"), comm=MPI.COMM_SELF, progress=False)
        par, ser = _rows(os.path.join(base, "par")), _rows(os.path.join(base, "ser"))
        assert par.keys() == ser.keys() and len(par) == 11
        assert_same_results(par, ser)
    COMM.barrier()


def test_exception_on_one_rank_is_a_failed_run_and_nothing_hangs(spec):
    base, s = spec
    out = os.path.join(base, "fail")
    if COMM.rank == 1:
        os.environ["PDEFLOW_STUDY_FAIL"] = "tau:0"  # rank 0 of its group, on world rank 1 only
    t0 = time.perf_counter()
    try:
        run_study(s, out, comm=COMM, progress=False)
    finally:
        os.environ.pop("PDEFLOW_STUDY_FAIL", None)
    COMM.barrier()
    assert time.perf_counter() - t0 < 120
    if COMM.rank == 0:
        rows = _rows(out)
        failed = {k: v for k, v in rows.items() if v[0] == "failed"}
        assert {g for g, _ in failed} == {"tau"} and len(failed) == 3
        assert all("injected failure" in v[2] for v in failed.values())
        assert sum(1 for v in rows.values() if v[0] == "done") == len(rows) - 3
    COMM.barrier()
