"""Table of observed convergence orders of the reference solver against exact solutions.

    python benchmarks/verification_orders.py [--quick] [--markdown FILE]

Runs the same ladders as tests/convergence (τ-ladders at a fine mesh, h-ladders with τ ∝ h²)
plus one finer level where affordable, fits log(error) = log C + q log(param) by least squares
and prints q with its 95% confidence interval for L1, L2 and Hellinger, and the Richardson
self-convergence of wfr-kl-mixture-1d.  Not a test (the tests assert the orders); this prints the
numbers quoted in docs/verification.md and the README.
"""
from __future__ import annotations

import argparse
import logging
import time

from pdeflow.cases import get_case
from pdeflow.compare import p1_distances_1d
from pdeflow.fem import solve_reference
from pdeflow.study.orders import fit_order, richardson

METRICS = ("L1", "L2", "hellinger")


def _h(name, n):
    d = get_case(name).domain
    return max(b - a for a, b in zip(d.lower, d.upper)) / n


def ladders(quick: bool):
    taus = (0.05, 0.025, 0.0125, 0.00625) if quick else (0.05, 0.025, 0.0125, 0.00625, 0.003125)
    rows = []
    for name, n_fine in [
        ("w-kl-gauss-1d", 3200),
        ("fr-kl-gauss-1d", 3200),
        ("wfr-kl-gauss-1d", 3200),
        ("hk-kl-gauss-1d", 3200),
        ("hk-kl-mms-1d", 3200),
    ]:
        rows.append((name, "tau", "frozen-mobility", [(n_fine, t) for t in taus], list(taus)))
    rows.append(("fr-kl-gauss-1d", "tau", "hellinger-jko", [(3200, t) for t in taus], list(taus)))
    for name, ns, c in [
        ("w-kl-gauss-1d", (50, 100, 200, 400, 800), 1.0),
        ("fr-kl-gauss-1d", (50, 100, 200, 400, 800), 1.0),
        ("wfr-kl-gauss-1d", (50, 100, 200, 400, 800), 1.0),
        ("hk-kl-gauss-1d", (100, 200, 400, 800), 1.0),
        ("hk-kl-mms-1d", (25, 50, 100, 200), 8.0),
    ]:
        ns = ns[:4] if quick else ns
        hs = [_h(name, n) for n in ns]
        rows.append((name, "h", "frozen-mobility", [(n, c * h * h) for n, h in zip(ns, hs)], hs))
    t2 = (0.1, 0.05, 0.025, 0.0125)
    rows.append(("fr-kl-bimodal-2d", "tau", "frozen-mobility", [(384, t) for t in taus[:4]], list(taus[:4])))
    rows.append(("wfr-kl-gauss-2d", "tau", "frozen-mobility", [(128, t) for t in t2], list(t2)))
    for name, ns in [("fr-kl-bimodal-2d", (64, 128, 256)), ("wfr-kl-gauss-2d", (32, 64, 128))]:
        hs = [_h(name, n) for n in ns]
        rows.append((name, "h", "frozen-mobility", [(n, h * h) for n, h in zip(ns, hs)], hs))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the test ladders only (about a minute)")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    lines = [
        "| case | scheme | refined | levels | finest error (L1) | order L1 [95% CI] | order L2 [95% CI] | order Hellinger [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    t_start = time.perf_counter()
    for name, param, scheme, runs, values in ladders(args.quick):
        problem = get_case(name)
        errs = {k: [] for k in METRICS}
        for n, tau in runs:
            e = solve_reference(problem, n=n, tau=tau, scheme=scheme, progress=False).errors[-1]
            for k in METRICS:
                errs[k].append(e[k])
        fits = {k: fit_order(values, errs[k]) for k in METRICS}
        desc = f"n = {runs[0][0]}" if param == "tau" else ("τ = 8h²" if name == "hk-kl-mms-1d" else "τ = h²")
        level = ", ".join(f"{v:.4g}" for v in values)
        line = (
            f"| {name} | {scheme} | {param} ({desc}) | {level} | {errs['L1'][-1]:.2e} | "
            + " | ".join(str(fits[k]) for k in METRICS)
            + " |"
        )
        lines.append(line)
        print(line, flush=True)
    # self-convergence of the mixture case (no closed form)
    problem = get_case("wfr-kl-mixture-1d")
    ns = (100, 200, 400, 800) if args.quick else (100, 200, 400, 800, 1600)
    sols = []
    for n in ns:
        h = 12.0 / n
        traj = solve_reference(problem, n=n, tau=h * h, progress=False)
        sols.append((traj.x, traj.rho[-1]))
    d = [p1_distances_1d(*sols[k], *sols[k + 1])["L1"] for k in range(len(ns) - 1)]
    rich = [richardson(d[k], d[k + 1], 2.0) for k in range(len(d) - 1)]
    extra = [
        "",
        f"wfr-kl-mixture-1d self-convergence at t = 1 (τ = h², n = {', '.join(map(str, ns))}): "
        f"L1 differences {', '.join(f'{v:.3e}' for v in d)}; observed orders "
        f"{', '.join(f'{r.order:.3f}' for r in rich)}; estimated L1 error of the finest run (n = {ns[-1]}): "
        f"{rich[-1].finest_error:.2e}",
        f"(total wall time {time.perf_counter() - t_start:.0f} s)",
    ]
    print("\n".join(extra))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines + extra) + "\n")


if __name__ == "__main__":
    main()
