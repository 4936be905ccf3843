"""Run under `mpirun -n 2`: an exported reference does not depend on the number of ranks (issue #10)."""
from pathlib import Path

import numpy as np
from mpi4py import MPI

from pdeflow.cases import get_case
from pdeflow.fem import solve_reference
from pdeflow.fem.export import write_reference
from pdeflow.reference import Reference

COMM = MPI.COMM_WORLD


def _cells_key(ref):
    """The cells as a set: the gather order of cells (and of a cell's vertices) follows the partition."""
    return np.unique(np.sort(ref.cells, axis=1), axis=0)


def test_parallel_export_equals_the_serial_one(tmp_path):
    base = Path(COMM.bcast(str(tmp_path) if COMM.rank == 0 else None, root=0))
    problem = get_case("wfr-kl-gauss-2d").with_changes(T=0.3)
    par = solve_reference(problem, n=12, tau=0.05, scheme="bdf2", comm=COMM, keep_steps=True, progress=False)
    write_reference(base / "par.npz", par)
    ser = solve_reference(problem, n=12, tau=0.05, scheme="bdf2", comm=MPI.COMM_SELF, keep_steps=True, progress=False)
    write_reference(base / f"ser{COMM.rank}.npz", ser)
    COMM.barrier()
    if COMM.rank == 0:
        a, b = Reference(base / "par.npz"), Reference(base / "ser0.npz")
        assert np.max(np.abs(a.x - b.x)) <= 1e-12 and np.array_equal(a.m.shape, b.m.shape)
        assert np.allclose(a.m, b.m, rtol=1e-13, atol=0)
        assert np.array_equal(_cells_key(a), _cells_key(b))
        assert np.array_equal(a.step_times, b.step_times)
        assert np.max(np.abs(a.step_rho - b.step_rho)) <= 1e-10 * np.max(b.step_rho)
        t = 0.137  # between steps: the same P1 function in space and time
        pts = b.sample(t, 500, seed=3)
        assert np.max(np.abs(a.density(t, pts) - b.density(t, pts))) <= 1e-10 * np.max(b.step_rho)
        assert abs(a.expect(t, lambda x: x[:, 0] ** 2) - b.expect(t, lambda x: x[:, 0] ** 2)) <= 1e-10
    assert _no_temporary_files(base / "par.npz")


def _no_temporary_files(path) -> bool:
    """The file was written by rank 0 alone, renamed into place: no temporary files beside it."""
    return not [p for p in Path(path).parent.iterdir() if p.name.startswith(".")]
