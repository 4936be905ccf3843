"""The seeded-defect classification table (tests/defects/catalogue.py): every correct version,
seeded defect and harmless variant through `pdeflow verify` at its catalogued plan (or --plan).

    .venv/bin/python benchmarks/defects.py [--plan PLAN] [--json out.json]

Not a test (a few minutes); tests/unit/test_defects.py runs the catalogue with the quick plan.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

from pdeflow.approx.methods import MethodParams
from pdeflow.assess.verify import verify_method
from pdeflow.cases import apply_overrides, get_case, parse_overrides, METHOD_KEYS

ROOT = Path(__file__).resolve().parents[1]


def load_catalogue():
    spec = importlib.util.spec_from_file_location("defect_catalogue", ROOT / "tests" / "defects" / "catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_entry(cat, entry, plan=None):
    values = parse_overrides(cat.set_args(entry), extra_keys=METHOD_KEYS)
    problem, _ = apply_overrides(get_case(entry["case"]), values)
    params = MethodParams(**{k: values[k] for k in ("sigma", "dt", "lam", "kernel", "seed") if k in values})
    return verify_method(problem, cat.spec(entry), params, plan=plan or entry["plan"], keep_runs=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", default=None, help="override every entry's plan")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    cat = load_catalogue()
    rows = []
    print(f"{'file':<28} {'type':<12} {'touches':<12} {'expected':<13} {'verdict':<13} {'residual [95% CI]':<30} "
          f"{'tolerance':>9} {'plan':<9} {'time':>6}")
    for entry in cat.CATALOGUE:
        t0 = time.perf_counter()
        out = run_entry(cat, entry, args.plan)
        v = out["verdict"]
        f = v["evidence"]["fit"]
        row = {"file": entry["file"], "type": entry["method"], "touches": entry["touches"], "case": entry["case"],
               "expected": entry["expected"], "verdict": v["status"], "residual": f["residual"], "ci": f["residual_ci"],
               "tolerance": v["evidence"]["tolerance"], "plan": args.plan or entry["plan"],
               "wall_s": time.perf_counter() - t0}
        rows.append(row)
        mark = "" if row["verdict"] == row["expected"] else "  <-- differs"
        print(f"{row['file']:<28} {row['type']:<12} {row['touches']:<12} {row['expected']:<13} {row['verdict']:<13} "
              f"{row['residual']:.2e} [{row['ci'][0]:.2e}, {row['ci'][1]:.2e}]  {row['tolerance']:>9.2e} "
              f"{row['plan']:<9} {row['wall_s']:>5.1f}s{mark}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
