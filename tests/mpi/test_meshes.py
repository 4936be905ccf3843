"""Run under `mpirun -n 2`: every gmsh mesh of meshes/ loads distributed, and the mesh cases solve
the same on 2 ranks as on one (#5)."""
import numpy as np
import pytest
from mpi4py import MPI

from pdeflow.problem import Domain
from pdeflow.shapes import SHAPES

COMM = MPI.COMM_WORLD


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_mesh_loads_distributed(name):
    from pdeflow.fem import meshfiles
    from pdeflow.fem.space import P1Space

    n = 12
    space = P1Space(Domain.from_mesh(name), n, COMM)  # rank 0 generates it if the cache lacks it
    meta = meshfiles.meta(name, n)
    assert space.n_global == meta["vertices"]
    assert space.n_owned > 0  # partitioned, not all on one rank
    assert COMM.allreduce(space.n_owned) == meta["vertices"]
    assert space.integral(np.ones(space.n_owned)) == pytest.approx(meta["volume"], rel=1e-12)
    serial = P1Space(Domain.from_mesh(name), n, MPI.COMM_SELF)
    if COMM.rank == 0:
        np.testing.assert_allclose(space.gathered_coords, serial.gathered_coords, atol=1e-13)
