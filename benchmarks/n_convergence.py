"""Particle-count convergence of stochastic/interacting particle methods against the FE reference.

    python benchmarks/n_convergence.py [--sizes 100 300 1000 3000] [--seeds 5] [--quick]

For each (method, case) below, runs the method for every N and seed, measures the Gaussian MMD
(ℓ = 0.3·L/4, MATH §6 (a)) between the particle measure at T = 1 and the reference solution
(`pdeflow solve`, fine mesh), and prints mean ± standard deviation over the seeds together with
the Monte-Carlo floor (MMD of N i.i.d. draws from the reference — the best any N-particle method can
do on average) and the least-squares slope of the mean in N.  A slope near −1/2 means the error is
still statistical; a flattening above the floor is the method's bias (bandwidth, λ, time step, or a
different continuum limit).  Not a test: a study whose table is quoted in the docs.

Runs: SVGD on w-kl-gauss-1d (the Stein PDE at fixed bandwidth is not Fokker–Planck, MATH §5.1
pitfall: its bias is the floor), birth–death + Langevin and SMC-WFR on wfr-kl-mixture-1d.
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from pdeflow import compare
from pdeflow.approx import MethodParams, run_approximation
from pdeflow.approx.kernels import Kernel
from pdeflow.cases import get_case
from pdeflow.study.orders import fit_order
from pdeflow.verify import metric_scales, solve_reference_for

RUNS = [
    ("svgd", "w-kl-gauss-1d", {"dt": 0.01, "sigma": 0.3}),
    ("birth-death", "wfr-kl-mixture-1d", {"dt": 0.01}),
    ("smc-wfr", "wfr-kl-mixture-1d", {"dt": 0.01}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=[r[0] for r in RUNS])
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    references = {}
    for method, case, opts in RUNS:
        if method not in args.methods:
            continue
        problem = get_case(case)
        if case not in references:
            references[case] = solve_reference_for(problem, n=800, tau=(12 / 800) ** 2 * 4)
        ref = references[case]
        scale = metric_scales(problem)[1]
        kernel = Kernel("gaussian", scale)
        print(f"\n{method} on {case} (T = {problem.T}, {opts}); MMD scale {scale}; reference n = 800")
        print("| N | MMD to reference (mean ± std over seeds) | Monte-Carlo floor | wall per run [s] |")
        print("|---|---|---|---|")
        means = []
        for n in args.sizes:
            vals, walls = [], []
            for seed in range(args.seeds):
                params = MethodParams(n_particles=n, seed=seed, dt=opts["dt"], sigma=opts.get("sigma"))
                t0 = time.perf_counter()
                traj = run_approximation(problem, method, params)
                walls.append(time.perf_counter() - t0)
                vals.append(compare.mmd_to_mesh(kernel, traj.x[-1], traj.w[-1], ref["x"], ref["rho"][-1], ref["m"]))
            floor = compare.mc_floor(kernel, ref["x"], ref["rho"][-1], ref["m"], n, seeds=args.seeds,
                                     rng=np.random.default_rng(1234))
            means.append(float(np.mean(vals)))
            print(f"| {n} | {np.mean(vals):.3e} ± {np.std(vals, ddof=1):.1e} | {floor['mean']:.3e} ± {floor['std']:.1e} | "
                  f"{np.mean(walls):.2f} |", flush=True)
        fit = fit_order(args.sizes, means)
        print(f"slope of the mean MMD in N: {fit} (pairwise {np.round(fit.pairwise, 2)})")


if __name__ == "__main__":
    main()
