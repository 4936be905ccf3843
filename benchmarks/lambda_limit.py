"""λ-FRk → Fisher–Rao as λ → 0 (ZM Thm 6.17, Cor 6.18; MATH §2.3 (d), C7): error table.

    python benchmarks/lambda_limit.py [--cases fr-kl-gauss-1d fr-kl-bimodal-2d] [--bandwidth 0.5 1.0]

For each case the mesh λ-FRk system (pdeflow.fem.nonlocal_flows, vertex quadrature, Gaussian
kernel of the given bandwidth, DOP853 to rtol 1e-10) is solved to T = 1 for λ = 10⁻¹ … 10⁻⁶ and
compared with the exact FR solution at the vertices: lumped L1 = Σ m_i |ρ_i − ρ(T, x_i)| and the
Gaussian MMD (ℓ = 0.3·L/4) by vertex quadrature.  Prints the table, the least-squares rate in λ
with its 95% interval, and the energy–dissipation-balance residual of every run.  Not a test
(tests/unit/test_nonlocal.py asserts the 1-D rate and the EDB bound).
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from pdeflow.approx.kernels import Kernel
from pdeflow.cases import get_case
from pdeflow.compare import mmd
from pdeflow.exact import exact_solution
from pdeflow.fem.nonlocal_flows import solve_lambda_frk_mesh
from pdeflow.study.orders import fit_order
from pdeflow.verify import metric_scales

LAMBDAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["fr-kl-gauss-1d", "fr-kl-bimodal-2d"])
    ap.add_argument("--bandwidth", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--n", type=int, nargs="+", default=[300, 40], help="cells per direction, per case")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    for name, ell, n in zip(args.cases, args.bandwidth, args.n):
        problem = get_case(name)
        exact = exact_solution(problem)
        scale = metric_scales(problem)[1]
        print(f"\n{name}: Gaussian kernel l = {ell}, mesh n = {n}, MMD scale {scale}")
        print("| lambda | L1 to exact FR | MMD to exact FR | max EDB residual | wall [s] |")
        print("|---|---|---|---|---|")
        l1s = []
        for lam in LAMBDAS:
            t0 = time.perf_counter()
            out = solve_lambda_frk_mesh(problem, n, 0.01, lam, Kernel("gaussian", ell), integrator="ivp")
            rho_ex = exact.density(problem.T, out["x"].T)
            l1 = float(np.dot(out["m"], np.abs(out["rho"][-1] - rho_ex)))
            d = mmd(Kernel("gaussian", scale), out["x"], out["m"] * out["rho"][-1], out["x"], out["m"] * rho_ex)
            l1s.append(l1)
            print(f"| {lam:.0e} | {l1:.3e} | {d:.3e} | {np.max(np.abs(out['edb_residual'])):.1e} | {time.perf_counter() - t0:.1f} |",
                  flush=True)
        fit = fit_order(LAMBDAS, l1s)
        monotone = all(a > b for a, b in zip(l1s, l1s[1:]))
        print(f"L1 rate in lambda: {fit} (pairwise {np.round(fit.pairwise, 2)}); monotone: {monotone}")


if __name__ == "__main__":
    main()
