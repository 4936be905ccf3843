"""Tables of issue #10 (quoted in docs/verification.md): (1) the τ-order of the second-order scheme
(bdf2) on every case with an exact solution, 1-D and 2-D, with 95% confidence intervals — τ-error
against a same-mesh solve with τ/16 (the spatial error cancels) and against the exact solution on a
fine mesh; (2) the effectivity (estimate / true L1 error, min and max over the snapshots) of the
certified solve on every exact case.  Not a test (tests/unit/test_scheme2.py and test_certified.py
assert the same things at smaller sizes):

    .venv/bin/python benchmarks/certified_effectivity.py [--orders] [--effectivity] [--tols-1d ...] [--tols-2d ...]
"""
import argparse
import time

import numpy as np

from pdeflow.cases import get_case
from pdeflow.fem import solve_reference
from pdeflow.study.orders import fit_order

EXACT_1D = ["w-kl-gauss-1d", "fr-kl-gauss-1d", "wfr-kl-gauss-1d", "hk-kl-gauss-1d", "hk-kl-mms-1d"]
EXACT_2D = ["wfr-kl-gauss-2d", "fr-kl-bimodal-2d"]


def orders():
    taus = (0.05, 0.025, 0.0125, 0.00625)
    print("| case | n | τ | self-referenced τ-error (L1, max over snapshots) | order [95% CI] | against exact (n fine): L1 at τ_min | wall |")
    print("|---|---|---|---|---|---|---|")
    for name in EXACT_1D + EXACT_2D:
        problem = get_case(name)
        n = 200 if problem.dim == 1 else 32
        t0 = time.perf_counter()
        ref = solve_reference(problem, n=n, tau=taus[-1] / 16, scheme="bdf2", progress=False, exact=None)
        m = ref.space.gather(ref.space.lumped_mass)
        errs = []
        for tau in taus:
            tr = solve_reference(problem, n=n, tau=tau, scheme="bdf2", progress=False, exact=None)
            errs.append(max(float(np.dot(m, np.abs(tr.rho[k] - ref.rho[k]))) for k in range(1, len(tr.times))))
        fit = fit_order(np.array(taus), np.array(errs))
        fine = solve_reference(problem, n=3200 if problem.dim == 1 else 128, tau=taus[-1], scheme="bdf2", progress=False)
        print(f"| {name} | {n} | {taus[0]:g} … {taus[-1]:g} | {' '.join(f'{e:.2e}' for e in errs)} | "
              f"{fit.order:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}] | {fine.errors[-1]['L1']:.2e} "
              f"(n = {fine.params['n']}) | {time.perf_counter() - t0:.1f} s |", flush=True)


def effectivity(tols_1d, tols_2d):
    from pdeflow.fem.certified import solve_certified

    print("| case | tol | n | τ | max estimate | max true error | effectivity min … max | runs | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for names, tols in ((EXACT_1D, tols_1d), (EXACT_2D, tols_2d)):
        for name in names:
            for tol in tols:
                t0 = time.perf_counter()
                try:
                    r = solve_certified(get_case(name), tol)
                except Exception as exc:  # noqa: BLE001 — a budget refusal is a row of the table
                    print(f"| {name} | {tol:g} | — | — | — | — | not run: {exc} | — | {time.perf_counter() - t0:.1f} s |")
                    continue
                est = [e["L1"] for e in r.estimates[1:]]
                true = [e["L1"] for e in r.trajectory.errors[1:]]
                eff = [a / b for a, b in zip(est, true)]
                print(f"| {name} | {tol:g} | {r.provenance['n']} | {r.provenance['tau']:g} | {max(est):.2e} | "
                      f"{max(true):.2e} | {min(eff):.2f} … {max(eff):.2f} | {len(r.provenance['runs'])} | "
                      f"{time.perf_counter() - t0:.1f} s |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", action="store_true")
    ap.add_argument("--effectivity", action="store_true")
    ap.add_argument("--tols-1d", type=float, nargs="*", default=[1e-3, 1e-4, 1e-5, 1e-6])
    ap.add_argument("--tols-2d", type=float, nargs="*", default=[1e-2, 1e-3])
    args = ap.parse_args()
    if args.orders or not args.effectivity:
        orders()
    if args.effectivity or not args.orders:
        effectivity(args.tols_1d, args.tols_2d)


if __name__ == "__main__":
    main()
