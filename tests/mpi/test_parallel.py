"""Run under `mpirun -n 2`: the reference solution must not depend on the number of ranks.

Each test solves once on COMM_WORLD (domain-decomposed) and once on COMM_SELF (every rank a
serial solve), then compares the gathered nodal values on rank 0."""
import json
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from pdeflow.cases import get_case

COMM = MPI.COMM_WORLD


def _both(solve, problem, **kw):
    par = solve(problem, comm=COMM, **kw)
    ser = solve(problem, comm=MPI.COMM_SELF, **kw)
    return par, ser


@pytest.mark.parametrize(
    "name,n,tau,T,tol",
    [
        ("wfr-kl-gauss-2d", 32, 0.05, 0.5, 1e-10),  # CG + GAMG, bordered spherical Newton
        ("fr-kl-bimodal-2d", 40, 0.05, 0.5, 1e-10),  # diagonal Newton
        ("wfr-kl-mixture-1d", 300, 0.01, 0.5, 1e-10),  # direct solver (MUMPS in parallel, LU serially)
        ("hk-kl-gauss-1d", 200, 0.02, 0.5, 1e-10),  # unbalanced
        ("wfr-kl-mixture-disk", 24, 0.05, 0.5, 1e-10),  # gmsh mesh, curved boundary (#5)
        ("wfr-kl-mixture-lshape", 24, 0.01, 0.5, 1e-10),  # gmsh mesh, re-entrant corner
        # 3-D tetrahedra, CG + GAMG: Newton contracts slowly here and ends some steps at CG's accuracy
        # floor (newton_change up to 1.3e-8 on PETSc 3.22, depending on GAMG's random eigenvalue
        # estimates). Measured max |Δρ| / energy rel: 7e-12 / 3.8e-10 (PETSc 3.18), up to 3.6e-9 /
        # 2.7e-9 (3.22); docs/reference-solver.md.
        ("wfr-kl-gauss-3d", 8, 0.1, 0.5, 1e-8),
    ],
)
def test_serial_and_parallel_nodal_values_agree(solve, name, n, tau, T, tol):
    problem = get_case(name).with_changes(T=T)
    par, ser = _both(solve, problem, n=n, tau=tau)
    assert par.mpi_size == COMM.size and ser.mpi_size == 1
    if COMM.rank == 0:
        assert np.max(np.abs(par.x - ser.x)) <= 1e-12, np.max(np.abs(par.x - ser.x))
        assert par.rho.shape == ser.rho.shape
        assert np.max(np.abs(par.rho - ser.rho)) <= tol
        for a, b in zip(par.steps, ser.steps):
            assert a["energy"] == pytest.approx(b["energy"], rel=tol, abs=1e-13)
        if par.errors is not None:
            for a, b in zip(par.errors, ser.errors):
                assert a["L1"] == pytest.approx(b["L1"], rel=1e-8, abs=1e-13)
                assert a["L2"] == pytest.approx(b["L2"], rel=1e-8, abs=1e-13)


def test_mass_and_identity_in_parallel(solve):
    problem = get_case("wfr-kl-gauss-2d").with_changes(T=0.25)
    traj = solve(problem, comm=COMM, n=32, tau=0.025)
    m0 = traj.initial["mass"]
    assert max(abs(s["mass"] - m0) / m0 for s in traj.steps) <= 1e-12
    assert max(s["identity_residual_rel"] for s in traj.steps) <= 1e-10


def test_cli_solve_under_mpi(tmp_path_factory):
    from pdeflow.cli import main

    out = COMM.bcast(str(tmp_path_factory.mktemp("cli")) if COMM.rank == 0 else None, root=0)
    rc = main(["solve", "wfr-kl-gauss-2d", "--set", "n=16", "--set", "tau=0.1", "--set", "T=0.5", "--out", out, "--quiet"])
    assert rc == 0
    COMM.barrier()
    if COMM.rank == 0:
        with open(f"{out}/summary.json") as f:
            summary = json.load(f)
        assert summary["mpi_size"] == COMM.size
        assert summary["parameters"]["n"] == 16 and summary["problem"]["T"] == 0.5
        data = np.load(f"{out}/snapshots.npz")
        assert data["rho"].shape == (3, 17 * 17) and data["x"].shape == (17 * 17, 2)
        assert list(data["t"]) == [0.0, 0.25, 0.5]
        assert abs(data["m"].sum() - 100.0) < 1e-10 and np.all(data["m"] > 0)


def test_cli_bad_input_exits_2_on_every_rank(capsys):
    from pdeflow.cli import main

    assert main(["solve", "wfr-kl-gauss-2d", "--set", "tau=0"]) == 2
    err = capsys.readouterr().err
    if COMM.rank == 0:
        assert err.strip().count("\n") == 0 and "tau" in err
    else:
        assert err == ""


def test_approx_under_mpi_matches_serial(tmp_path_factory):
    """`pdeflow approx` under mpirun: the reference is domain-decomposed, the particle run is the
    same on every rank (same seed), rank 0 writes; the distances equal those of a serial run."""
    from pdeflow.cli import main

    base = COMM.bcast(str(tmp_path_factory.mktemp("approx")) if COMM.rank == 0 else None, root=0)
    args = ["approx", "fr-kl-gauss-1d", "--method", "lambda-fr", "--set", "n_particles=80", "--set", "dt=0.05",
            "--set", "n=100", "--set", "tau=0.02", "--set", "sigma=0.5", "--quiet"]
    assert main(args + ["--out", f"{base}/par"]) == 0
    COMM.barrier()
    if COMM.rank == 0:
        par = json.load(open(f"{base}/par/summary.json"))
        assert par["mpi_size"] == COMM.size
        ref = np.load(f"{base}/par/reference/snapshots.npz")
        assert ref["rho"].shape == (4, 101)
        from pdeflow.approx import MethodParams
        from pdeflow.verify import evaluate, solve_reference_for

        problem = get_case("fr-kl-gauss-1d")
        serial = solve_reference_for(problem, 100, 0.02, comm=MPI.COMM_SELF)
        assert np.max(np.abs(serial["rho"] - ref["rho"])) <= 1e-10
        run = evaluate(problem, "lambda-fr", MethodParams(n_particles=80, dt=0.05, sigma=0.5), serial,
                       comm=MPI.COMM_SELF)["result"]
        for a, b in zip(run["snapshots"], par["snapshots"]):
            for k, v in a["reference"]["mmd_gaussian"].items():
                assert v == pytest.approx(b["reference"]["mmd_gaussian"][k], rel=1e-8, abs=1e-12)
    COMM.barrier()


def test_approx_with_reused_reference_does_not_hang(tmp_path_factory):
    """`mpirun -n 2 pdeflow approx ... --reference DIR` used to hang: rank 0 alone imported
    pdeflow.fem.io (petsc4py's start-up is collective).  Now every rank returns 0."""
    from pdeflow.cli import main

    base = COMM.bcast(str(tmp_path_factory.mktemp("reuse")) if COMM.rank == 0 else None, root=0)
    assert main(["solve", "fr-kl-gauss-1d", "--set", "n=60", "--set", "tau=0.05", "--out", f"{base}/ref", "--quiet",
                 "--no-xdmf", "--no-plots"]) == 0
    rc = main(["approx", "fr-kl-gauss-1d", "--method", "template-fr", "--set", "n_particles=40", "--reference",
               f"{base}/ref", "--out", f"{base}/run", "--quiet", "--no-plots"])
    assert COMM.allgather(rc) == [0] * COMM.size


def test_verify_under_mpi_matches_serial(tmp_path_factory):
    """`pdeflow verify` under mpirun: the runs of the sweep are split over the ranks and gathered;
    the verdict and the fitted residual equal those of a serial run (same seeds, same features)."""
    from pdeflow.approx import MethodParams
    from pdeflow.assess.verify import verify_method
    from pdeflow.cli import main

    base = COMM.bcast(str(tmp_path_factory.mktemp("verify")) if COMM.rank == 0 else None, root=0)
    rc = main(["verify", "fr-kl-gauss-1d", "--method", "template-fr", "--plan", "quick", "--out", f"{base}/v",
               "--quiet", "--no-plots"])
    assert COMM.allgather(rc) == [rc] * COMM.size
    if COMM.rank == 0:
        par = json.load(open(f"{base}/v/summary.json"))["verdict"]
        serial = verify_method(get_case("fr-kl-gauss-1d"), "template-fr", MethodParams(), plan="quick",
                               comm=MPI.COMM_SELF)["verdict"]
        assert par["status"] == serial["status"] == "consistent"
        assert par["evidence"]["fit"]["A0"] == pytest.approx(serial["evidence"]["fit"]["A0"], rel=1e-8, abs=1e-12)
        assert par["evidence"]["mpi_size"] == COMM.size
    COMM.barrier()


def test_disk_full_on_rank_0_fails_every_rank_without_partial_files(tmp_path_factory, monkeypatch, capsys):
    """An OSError while rank 0 writes (disk full, injected) is agreed on: every rank exits 1, nothing
    half-written is left, and no rank waits in the XDMF collective (it used to hang)."""
    import errno

    import pdeflow.fem.io as fio
    from pdeflow.cli import main

    base = COMM.bcast(str(tmp_path_factory.mktemp("full")) if COMM.rank == 0 else None, root=0)
    if COMM.rank == 0:
        def full(*args, **kw):
            raise OSError(errno.ENOSPC, "No space left on device", args[0] if args else None)

        monkeypatch.setattr(fio.np, "savez", full)
    rc = main(["solve", "fr-kl-gauss-1d", "--set", "n=40", "--set", "tau=0.05", "--out", f"{base}/out", "--quiet",
               "--no-plots"])
    assert COMM.allgather(rc) == [1] * COMM.size
    if COMM.rank == 0:
        out = Path(base) / "out"
        assert not any(out.glob("*")) if out.exists() else True
        assert "No space left on device" in capsys.readouterr().err
    COMM.barrier()
