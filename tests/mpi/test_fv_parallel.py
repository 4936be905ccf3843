"""Run under `mpirun -n 2`: the finite-volume solution (pdeflow.fv) does not depend on the number of
ranks — contiguous ownership ranges, ghost values by VecScatter, MUMPS in parallel — to 1e-10, and
conserves the mass to round-off in parallel."""
import numpy as np
import pytest
from mpi4py import MPI

from pdeflow.cases import get_case
from pdeflow.fv import solve_fv

COMM = MPI.COMM_WORLD


@pytest.mark.parametrize("name,n,T", [
    ("wfr-kl-gauss-1d", 40, 0.5),  # spherical WFR: Sherman-Morrison rank-one term in parallel
    ("hk-kl-gauss-1d", 40, 0.5),  # unbalanced
    ("wfr-kl-gauss-2d", 12, 0.25),  # 2-D box
    ("wfr-kl-mixture-disk", 12, 0.25),  # vertex-centred dual of the gmsh disk
])
def test_fv_serial_and_parallel_agree(name, n, T):
    p = get_case(name).with_changes(T=T)
    par = solve_fv(p, n=n, tol=1e-7, comm=COMM)
    ser = solve_fv(p, n=n, tol=1e-7, comm=MPI.COMM_SELF)
    assert par.mpi_size == COMM.size
    if COMM.rank == 0:
        assert np.array_equal(par.x, ser.x)
        assert np.max(np.abs(par.rho - ser.rho)) <= 1e-10
        assert par.statistics["n_steps"] == ser.statistics["n_steps"]
        if par.errors is not None:
            for a, b in zip(par.errors, ser.errors):
                assert a["L1"] == pytest.approx(b["L1"], rel=1e-10, abs=1e-14)
        if p.flow.conserves_mass:
            assert par.statistics["mass_drift_rel_max"] <= 1e-12
        assert par.statistics["rho_min"] > 0
