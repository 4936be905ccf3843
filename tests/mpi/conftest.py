import gc

import pytest
from mpi4py import MPI


@pytest.fixture(autouse=True)
def collective_teardown():
    """PETSc objects are destroyed collectively: collect on every rank, then synchronize."""
    yield
    gc.collect()
    MPI.COMM_WORLD.barrier()
