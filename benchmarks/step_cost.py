"""Cost of one reference time step relative to one CG+GAMG Poisson solve on the same mesh.

    python benchmarks/step_cost.py [--case wfr-kl-gauss-2d] [--sizes 64 128 256] [--ranks 1 2] [--steps 10] [--tau 0.01]
    python benchmarks/step_cost.py --case wfr-kl-gauss-3d --sizes 16 32 48 --tau 0.05    # 3-D (#5)

For each mesh size and number of ranks (each run is a separate `mpirun -n P` of this script with
--worker) it measures, on the case given (default the 2-D wfr-kl-gauss-2d: spherical WFR, bordered
Newton, CG+GAMG):

* the mean wall time of a time step (assembly of 𝖠(ρⁿ) + Newton with its linear solves), over
  ``--steps`` steps after one warm-up step, with the mean Newton and CG iterations per step;
* the wall time of one Poisson solve −Δu = 1, u = 0 on ∂Ω, P1 on the same mesh: KSP set-up
  (GAMG hierarchy) + CG solve to rtol 1e-8, best of 3 (matrix assembly excluded);

and prints their ratio and the np = 2 speed-up.  Not a test: timings on a shared machine are noisy,
so compare ratios measured in one run.  Results are also written to results/bench/step_cost.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def worker(case: str, n: int, steps: int, tau: float) -> dict:
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    import numpy as np
    import ufl
    from mpi4py import MPI
    from petsc4py import PETSc

    import dolfinx.fem
    import dolfinx.mesh

    from pdeflow.cases import get_case
    from pdeflow.fem import compat, solve_reference

    comm = MPI.COMM_WORLD
    problem = get_case(case)
    # ---- the reference scheme: warm-up step + `steps` timed steps (no error norms: not timed)
    problem = problem.with_changes(T=tau * (steps + 1), snapshots=())
    traj = solve_reference(problem, n=n, tau=tau, comm=comm, progress=False, exact=None)
    timed = traj.steps[1:]
    step_wall = comm.allreduce(float(np.mean([s["wall"] for s in timed])), op=MPI.MAX)
    newton = float(np.mean([s["newton_iterations"] for s in timed]))
    linear = float(np.mean([s["linear_iterations"] for s in timed]))
    space = traj.space

    # ---- one Poisson solve on the same mesh
    V = space.V
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    mesh = space.mesh
    fdim = mesh.topology.dim - 1
    facets = dolfinx.mesh.locate_entities_boundary(mesh, fdim, lambda x: np.full(x.shape[1], True))
    dofs = dolfinx.fem.locate_dofs_topological(V, fdim, facets)
    bc = dolfinx.fem.dirichletbc(PETSc.ScalarType(0), dofs, V)
    a = compat.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = compat.form(v * ufl.dx)
    A = compat.fem_petsc.assemble_matrix(a, bcs=[bc])
    A.assemble()
    b = compat.fem_petsc.assemble_vector(L)
    compat.fem_petsc.apply_lifting(b, [a], bcs=[[bc]])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    compat.fem_petsc.set_bc(b, [bc])
    best, its = float("inf"), 0
    for _ in range(3):
        ksp = PETSc.KSP().create(comm)
        ksp.setOperators(A)
        ksp.setType("cg")
        ksp.getPC().setType("gamg")
        ksp.setTolerances(rtol=1e-8)
        x = A.createVecRight()
        comm.barrier()
        t0 = time.perf_counter()
        ksp.setUp()
        ksp.solve(b, x)
        dt = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        its = ksp.getIterationNumber()
        best = min(best, dt)
        ksp.destroy()
        x.destroy()
    return {
        "case": case,
        "dim": problem.dim,
        "n": n,
        "np": comm.size,
        "dofs": space.n_global,
        "tau": tau,
        "steps": len(timed),
        "step_wall": step_wall,
        "newton_mean": newton,
        "linear_per_step": linear,
        "poisson_wall": best,
        "poisson_its": its,
        "ratio": step_wall / best,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="wfr-kl-gauss-2d")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tau", type=float, default=0.01)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.case, args.n, args.steps, args.tau)
        from mpi4py import MPI

        if MPI.COMM_WORLD.rank == 0:
            print("RESULT " + json.dumps(res), flush=True)
        return

    mpirun = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    rows = []
    for n in args.sizes:
        for p in args.ranks:
            cmd = mpirun + ["-n", str(p), sys.executable, __file__, "--worker", "--case", args.case, "--n", str(n)]
            cmd += ["--steps", str(args.steps), "--tau", str(args.tau)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"worker failed (n={n}, np={p}):\n{proc.stderr[-3000:]}")
            out = proc.stdout
            res = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            rows.append(res)
            print(
                f"n={n:4d}^{res['dim']} np={p}: step {res['step_wall'] * 1e3:8.2f} ms, Poisson {res['poisson_wall'] * 1e3:7.2f} ms "
                f"-> ratio {res['ratio']:.2f}; Newton {res['newton_mean']:.2f}/step, CG {res['linear_per_step']:.1f}/step",
                flush=True,
            )
    print()
    print("| mesh | dofs | np | step [ms] | Poisson CG+GAMG [ms] | step / Poisson | Newton its/step | CG its/step | speed-up np=2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one = next((q for q in rows if q["n"] == r["n"] and q["np"] == 1), None)
        speed = f"{one['step_wall'] / r['step_wall']:.2f}" if one and r["np"] != 1 else ""
        print(
            f"| {r['n']}^{r['dim']} | {r['dofs']} | {r['np']} | {r['step_wall'] * 1e3:.2f} | {r['poisson_wall'] * 1e3:.2f} | "
            f"{r['ratio']:.2f} | {r['newton_mean']:.2f} | {r['linear_per_step']:.1f} | {speed} |"
        )
    out = Path("results/bench")
    out.mkdir(parents=True, exist_ok=True)
    name = "step_cost.json" if args.case == "wfr-kl-gauss-2d" else f"step_cost_{args.case}.json"
    (out / name).write_text(json.dumps(rows, indent=1))
    print(f"\nwritten: {out / name}")


if __name__ == "__main__":
    main()
