"""Verification figures of the gmsh domains and the 3-D case (#5), printed as Markdown tables.

    python benchmarks/mesh_domains.py            # about 1 minute on one core

* FR on the disk (inline case, closed form normalized on the exact disk): L1 error at T = 0.5 for
  n = 12, 24, 48, 96 (h = 6/n, τ = h²/6), with pairwise and least-squares orders;
* wfr-kl-mixture-disk and wfr-kl-mixture-lshape (no closed form): the second moment ∫|x|²ρ(1) for
  n = 16, 32, 64 (τ ∝ h²) and its Richardson order and error estimate;
* wfr-kl-gauss-3d against the Gaussian ODE: L1, L2, Hellinger at T = 0.5 for n = 8, 16, 32 (τ = 0.1 h²).
"""
from __future__ import annotations

import logging
import math
import time

from pdeflow.cases import case_from_table, get_case
from pdeflow.fem import solve_reference
from pdeflow.study.orders import fit_order, richardson


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    fr = case_from_table("fr-bimodal-disk", {
        "domain": {"mesh": "disk"},
        "target": {"mean": [0.0, 0.0], "variance": 1.0},
        "initial": {"components": [{"mean": [-1.2, 0.0], "variance": 0.25, "mass": 0.5},
                                   {"mean": [1.2, 0.8], "variance": 0.36, "mass": 0.5}]},
        "initial_mass": 1.0, "flow": {"alpha": 0.0, "beta": 1.0, "spherical": True}, "T": 0.5, "snapshots": [0.5],
    })
    print("FR on the disk against the closed form (L1 at T = 0.5, tau = h^2/6)\n")
    print("| n | h | vertices | L1 | order |\n|---|---|---|---|---|")
    hs, errs = [], []
    for n in (12, 24, 48, 96):
        h = 6.0 / n
        tr = solve_reference(fr, n=n, tau=h * h / 6, progress=False)
        hs.append(h)
        errs.append(tr.errors[-1]["L1"])
        order = "" if len(errs) < 2 else f"{math.log(errs[-2] / errs[-1]) / math.log(2):.3f}"
        print(f"| {n} | {h:.4g} | {tr.params['n_dofs']} | {errs[-1]:.3e} | {order} |", flush=True)
    fit = fit_order(hs, errs)
    print(f"\nleast-squares order {fit}\n")

    print("Self-convergence of the second moment at T = 1 (tau = 0.02 (16/n)^2)\n")
    print("| case | n = 16 | n = 32 | n = 64 | Richardson order | error estimate (n = 64) | wall n = 64 [s] |")
    print("|---|---|---|---|---|---|---|")
    for name in ("wfr-kl-mixture-disk", "wfr-kl-mixture-lshape"):
        p = get_case(name)
        mom = []
        for n in (16, 32, 64):
            t0 = time.perf_counter()
            tr = solve_reference(p, n=n, tau=0.02 * (16 / n) ** 2, progress=False, exact=None)
            wall = time.perf_counter() - t0
            sp = tr.space
            mom.append(sp.integral(tr.owned_snapshots[-1] * (sp.coords**2).sum(axis=1)))
        r = richardson(abs(mom[0] - mom[1]), abs(mom[1] - mom[2]), 2.0)
        print(f"| {name} | {mom[0]:.6f} | {mom[1]:.6f} | {mom[2]:.6f} | {r.order:.3f} | {r.finest_error:.2e} | {wall:.1f} |",
              flush=True)

    print("\nwfr-kl-gauss-3d against the Gaussian ODE (T = 0.5, tau = 0.1 h^2)\n")
    print("| n | vertices | L1 | L2 | Hellinger | order (L1) | wall [s] |\n|---|---|---|---|---|---|---|")
    p = get_case("wfr-kl-gauss-3d")
    prev = None
    for n in (8, 16, 32):
        h = 8.0 / n
        t0 = time.perf_counter()
        tr = solve_reference(p, n=n, tau=0.1 * h * h, progress=False)
        e = tr.errors[-1]
        order = "" if prev is None else f"{math.log(prev / e['L1']) / math.log(2):.3f}"
        prev = e["L1"]
        print(f"| {n} | {tr.params['n_dofs']} | {e['L1']:.3e} | {e['L2']:.3e} | {e['hellinger']:.3e} | {order} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
