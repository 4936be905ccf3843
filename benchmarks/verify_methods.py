"""Every built-in particle method against its own continuum on three cases (1-D and 2-D): the
verdict table of docs/verification-of-methods.md, and the time of one `pdeflow verify` in 1-D.

    .venv/bin/python benchmarks/verify_methods.py [--plan standard] [--only svgd,birth-death] [--json out.json]
    .venv/bin/python benchmarks/verify_methods.py --plan thorough --extra     # the rows standard leaves open

Not a test (minutes on 2 cores); tests/unit/test_verify.py runs one case per method with the quick plan.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from pdeflow.approx.methods import MethodParams
from pdeflow.assess.verify import verify_method
from pdeflow.cases import apply_overrides, get_case

W, FR = {"beta": 0.0}, {"alpha": 0.0}
# (method, case, case overrides, method parameters)
MATRIX = [
    ("svgd", "w-kl-gauss-1d", {}, dict(sigma=0.5, dt=0.02)),
    ("svgd", "wfr-kl-mixture-1d", W, dict(sigma=0.5, dt=0.02)),
    ("svgd", "wfr-kl-gauss-2d", W, dict(sigma=0.7, dt=0.02)),
    ("lambda-stein", "w-kl-gauss-1d", {}, dict(sigma=0.5, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.3})),
    ("lambda-stein", "wfr-kl-mixture-1d", W, dict(sigma=0.5, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.3})),
    ("lambda-stein", "wfr-kl-gauss-2d", W, dict(sigma=0.7, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.4})),
    ("mmd-flow", "w-kl-gauss-1d", {}, dict(sigma=0.5, dt=0.05)),
    ("mmd-flow", "wfr-kl-mixture-1d", W, dict(sigma=0.5, dt=0.05)),
    ("mmd-flow", "wfr-kl-gauss-2d", W, dict(sigma=0.7, dt=0.05)),
    ("lambda-fr", "fr-kl-gauss-1d", {}, dict(sigma=0.5, lam=1e-3, dt=0.02)),
    ("lambda-fr", "wfr-kl-mixture-1d", FR, dict(sigma=0.5, lam=1e-3, dt=0.02)),
    ("lambda-fr", "fr-kl-bimodal-2d", {}, dict(sigma=0.7, lam=1e-3, dt=0.02)),
    ("template-fr", "fr-kl-gauss-1d", {}, dict()),
    ("template-fr", "wfr-kl-mixture-1d", FR, dict()),
    ("template-fr", "fr-kl-bimodal-2d", {}, dict()),
    ("birth-death", "wfr-kl-gauss-1d", {}, dict(sigma=0.3, dt=0.02)),
    ("birth-death", "wfr-kl-mixture-1d", {}, dict(sigma=0.3, dt=0.02)),
    ("birth-death", "wfr-kl-gauss-2d", {}, dict(sigma=0.4, dt=0.02)),
    ("smc-wfr", "wfr-kl-gauss-1d", {}, dict(dt=0.05)),
    ("smc-wfr", "wfr-kl-mixture-1d", {}, dict(dt=0.05)),
    ("smc-wfr", "hk-kl-gauss-1d", {}, dict(dt=0.05)),
    ("lambda-wfr", "wfr-kl-gauss-1d", {}, dict(sigma=0.5, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.3})),
    ("lambda-wfr", "wfr-kl-mixture-1d", {}, dict(sigma=0.5, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.3})),
    ("lambda-wfr", "wfr-kl-gauss-2d", {}, dict(sigma=0.7, lam=1e-2, dt=0.01, extra={"kde_bandwidth": 0.4})),
    # FR on M+ with bounded importance weights (ρ0 = 0.5 N(-1, 2) is wider than π = 2 N(1, 0.5)): the
    # FR cases above have weights (π/ρ0)^(1-e^-t) with an infinite fourth moment, which widens the interval
    ("lambda-fr", "hk-kl-gauss-1d", FR, dict(sigma=0.5, lam=1e-3, dt=0.02)),
    ("template-fr", "hk-kl-gauss-1d", FR, dict()),
    # a curved boundary (gmsh disk) for the MMD flow, whose 1-D cases move too little for the standard plan
    ("mmd-flow", "wfr-kl-mixture-disk", W, dict(sigma=0.7, dt=0.05)),
]
# rows that the standard plan leaves inconclusive, rerun with --plan thorough (the `--extra` set)
EXTRA = [
    ("mmd-flow", "w-kl-gauss-1d", {}, dict(sigma=0.5, dt=0.05)),
    ("mmd-flow", "wfr-kl-mixture-1d", W, dict(sigma=0.5, dt=0.05)),
    ("birth-death", "wfr-kl-mixture-1d", {}, dict(sigma=0.3, dt=0.02)),
    ("birth-death", "wfr-kl-gauss-2d", {}, dict(sigma=0.4, dt=0.02)),
    ("lambda-fr", "fr-kl-gauss-1d", {}, dict(sigma=0.5, lam=1e-3, dt=0.02)),
    ("lambda-fr", "fr-kl-bimodal-2d", {}, dict(sigma=0.7, lam=1e-3, dt=0.02)),
    ("template-fr", "wfr-kl-mixture-1d", FR, dict()),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", default="standard")
    ap.add_argument("--only", default="", help="comma-separated method names")
    ap.add_argument("--json", default=None, help="write the rows to this file")
    ap.add_argument("--extra", action="store_true", help="the EXTRA rows instead (use with --plan thorough)")
    args = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    only = set(filter(None, args.only.split(",")))
    rows = []
    print(f"{'method':<13} {'case':<28} {'continuum':<13} {'verdict':<13} {'residual [95% CI]':<32} {'tolerance':>9} "
          f"{'rate N':>7} {'time':>6}")
    for method, case, overrides, kw in (EXTRA if args.extra else MATRIX):
        if only and method not in only:
            continue
        problem, _ = apply_overrides(get_case(case), overrides)
        label = case + "".join(f" {k}={v:g}" for k, v in overrides.items())
        t0 = time.perf_counter()
        try:
            out = verify_method(problem, method, MethodParams(**kw), plan=args.plan, keep_runs=False)
        except Exception as exc:  # a row that fails is reported, not hidden
            print(f"{method:<13} {label:<28} {'-':<13} {'ERROR':<13} {type(exc).__name__}: {exc}")
            rows.append({"method": method, "case": label, "status": "error", "error": str(exc)})
            continue
        ev = out["verdict"]["evidence"]
        f = ev["fit"]
        row = {"method": method, "case": label, "continuum": ev["continuum"]["name"], "status": out["verdict"]["status"],
               "residual": f["residual"], "ci": f["residual_ci"], "tolerance": ev["tolerance"],
               "rate_N": ev["rate_N"]["rate"], "wall_s": time.perf_counter() - t0}
        rows.append(row)
        print(f"{method:<13} {label:<28} {row['continuum']:<13} {row['status']:<13} "
              f"{row['residual']:.2e} [{row['ci'][0]:.2e}, {row['ci'][1]:.2e}]    {row['tolerance']:>9.2e} "
              f"{row['rate_N']:>7.2f} {row['wall_s']:>5.1f}s", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
