"""FE vs FV cross-check on every built-in case (issue #11): the table of docs/verification.md.

    .venv/bin/python benchmarks/crosscheck_table.py [--json out.json] [CASE ...]

For each case: `pdeflow.crosscheck.crosscheck` at the resolution below (FE τ = 0.5 h², FV tol),
and, at the snapshot where the difference is largest relative to its bound, the L1 and MMD
differences next to both error estimates, the verdict over all snapshots, and the wall time.
"""
import argparse
import json
import time

from pdeflow.cases import case_names, get_case
from pdeflow.crosscheck import SAFETY, crosscheck

SETTINGS = {  # case: (n, tol)
    "hk-kl-mms-1d": (64, 1e-8),
    "wfr-kl-gauss-2d": (64, 1e-7),
    "fr-kl-bimodal-2d": (64, 1e-7),
    "wfr-kl-mixture-disk": (64, 1e-7),
    "wfr-kl-mixture-lshape": (64, 1e-7),
    "wfr-kl-gauss-3d": (24, 1e-6),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    names = a.cases or case_names()
    print(f"| case | n | t | L1 diff | L1 E_FE | L1 E_FV | MMD diff | MMD E_FE | MMD E_FV | max D/bound | verdict | wall [s] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for name in names:
        p = get_case(name)
        n, tol = SETTINGS.get(name, (128, 1e-8))
        t0 = time.perf_counter()
        r = crosscheck(p, n=n, tol=tol)
        wall = time.perf_counter() - t0
        results[name] = r
        worst = max(r["snapshots"][1:], key=lambda row: max(row["L1"]["ratio"], row["MMD"]["ratio"]))
        a1, b1 = worst["L1"], worst["MMD"]
        ratio = max(max(row["L1"]["ratio"], row["MMD"]["ratio"]) for row in r["snapshots"])
        print(f"| {name} | {n} | {worst['t']:g} | {a1['difference']:.2e} | {a1['fe_estimate']:.2e} | {a1['fv_estimate']:.2e} | "
              f"{b1['difference']:.2e} | {b1['fe_estimate']:.2e} | {b1['fv_estimate']:.2e} | {ratio:.2f} | "
              f"{r['verdict']} | {wall:.1f} |", flush=True)
    print(f"\nbound = {SAFETY} (E_FE + E_FV) (+ the MMD round-off floor); 'agree' when D <= bound at every snapshot")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
