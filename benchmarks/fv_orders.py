"""Observed orders of the finite-volume solver (pdeflow.fv) against the exact solutions, and its
time error at the chosen tolerance (issue #11; numbers in docs/fv.md).

    .venv/bin/python benchmarks/fv_orders.py
"""
import time

import numpy as np
from mpi4py import MPI

from pdeflow.cases import get_case
from pdeflow.fv import solve_fv

LADDERS = [
    ("w-kl-gauss-1d", (50, 100, 200, 400), 1e-9, {}),
    ("wfr-kl-gauss-1d", (50, 100, 200, 400), 1e-9, {}),
    ("hk-kl-gauss-1d", (50, 100, 200, 400), 1e-9, {}),
    ("hk-kl-mms-1d", (25, 50, 100, 200), 1e-9, {}),
    ("wfr-kl-gauss-2d", (16, 32, 64), 1e-7, {}),
    ("wfr-kl-gauss-3d", (8, 16, 24), 1e-6, {}),
]


def main():
    print("| case | n | L1 errors | observed orders | time error at tol (vs tol/100) / space error | wall [s] |")
    print("|---|---|---|---|---|---|")
    for name, ns, tol, ch in LADDERS:
        p = get_case(name).with_changes(**ch) if ch else get_case(name)
        t0 = time.perf_counter()
        runs = [solve_fv(p, n=n, tol=tol, comm=MPI.COMM_SELF) for n in ns]
        e = np.array([r.errors[-1]["L1"] for r in runs])
        h = np.array([r.params["h"] for r in runs])
        orders = np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])
        fine = solve_fv(p, n=ns[-1], tol=tol / 100, comm=MPI.COMM_SELF)
        t_err = float(np.sum(fine.m * np.abs(runs[-1].rho[-1] - fine.rho[-1])))
        print(f"| {name} | {', '.join(map(str, ns))} | {', '.join(f'{v:.3e}' for v in e)} | "
              f"{', '.join(f'{v:.3f}' for v in orders)} | {t_err:.2e} / {fine.errors[-1]['L1']:.2e} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
