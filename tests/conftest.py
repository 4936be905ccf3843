import atexit
import logging
import os
import shutil
import tempfile

import pytest

# The test session compiles every form itself, into an empty JIT cache of its own: a warm
# ~/.cache/fenics once hid a fresh-machine failure (the FFCx build tooling printing compiler lines
# around a one-line error).  Set here, before anything imports dolfinx (its JIT options read
# XDG_CACHE_HOME at import), and inherited by the subprocesses the tests start.  Under mpirun every
# rank uses rank 0's directory.  PDEFLOW_TEST_WARM_JIT=1 keeps the user's cache (quick local loops).
if not os.environ.get("PDEFLOW_TEST_WARM_JIT"):
    from mpi4py import MPI

    _comm = MPI.COMM_WORLD
    _jit = _comm.bcast(tempfile.mkdtemp(prefix="pdeflow-test-jit-") if _comm.rank == 0 else None, root=0)
    os.environ["XDG_CACHE_HOME"] = _jit
    if _comm.rank == 0:
        atexit.register(shutil.rmtree, _jit, True)

# dolfinx's JIT logs each compiler line at INFO; keep test output readable
logging.getLogger().setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def solve():
    """solve_reference without a progress bar (imported lazily: unit tests of numpy-only modules
    must not need dolfinx)."""
    from pdeflow.fem import solve_reference

    def run(problem, **kw):
        kw.setdefault("progress", False)
        return solve_reference(problem, **kw)

    return run
