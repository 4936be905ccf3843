"""Seeded defects (tests/defects/): `pdeflow verify` with the quick plan must never call a defect
consistent nor a correct or harmless variant inconsistent, and must resolve the clear ones.

The full classification at each entry's catalogued plan (standard; thorough for one) is
benchmarks/defects.py, whose table is in docs/verification-of-methods.md."""
import importlib.util
from pathlib import Path

import pytest

from pdeflow.approx.methods import MethodParams
from pdeflow.assess.verify import verify_method
from pdeflow.cases import METHOD_KEYS, apply_overrides, get_case, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("defect_catalogue", ROOT / "tests" / "defects" / "catalogue.py")
CAT = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CAT)

# resolved by the quick plan (measured: residual interval clear of the tolerance); the others come out
# inconclusive at quick and resolve with the standard (or thorough) plan of the catalogue
QUICK_RESOLVED = {"svgd_ok.py", "fr_ok.py", "bd_ok.py", "svgd_drift_shifted.py", "svgd_half_repulsion.py",
                  "svgd_shifted_init.py", "fr_linear_exponent.py", "fr_squared_weights.py", "fr_unnormalized.py",
                  "fr_narrow_init.py", "bd_drift_shifted.py", "bd_narrow_init.py", "svgd_harmless_heun.py",
                  "svgd_harmless_no_self.py", "fr_harmless_mirror.py"}
OPPOSITE = {"consistent": "inconsistent", "inconsistent": "consistent"}


def test_catalogue_spreads_over_methods_and_touches():
    defects = CAT.DEFECTS
    assert len(defects) >= 8 and len({e["file"] for e in defects}) == len(defects)
    assert {e["method"] for e in defects} == {"transport", "reweighting", "birth-death"}
    assert {"drift", "interaction", "kernel", "time-scale", "initial", "weights"} <= {e["touches"] for e in defects}
    assert len(CAT.HARMLESS) >= 2 and all(e["expected"] == "consistent" for e in CAT.HARMLESS)


@pytest.mark.parametrize("entry", CAT.CATALOGUE, ids=lambda e: f"{e['file'][:-3]}-{e['case']}")
def test_quick_verdict(entry):
    values = parse_overrides(CAT.set_args(entry), extra_keys=METHOD_KEYS)
    problem, _ = apply_overrides(get_case(entry["case"]), values)
    params = MethodParams(**{k: values[k] for k in ("sigma", "dt") if k in values})
    verdict = verify_method(problem, CAT.spec(entry), params, plan="quick", keep_runs=False)["verdict"]
    status = verdict["status"]
    assert status != OPPOSITE[entry["expected"]], (entry["file"], verdict["summary"])
    if entry["file"] in QUICK_RESOLVED:
        assert status == entry["expected"], (entry["file"], verdict["summary"])
    assert verdict["evidence"]["continuum"]["name"] == entry["continuum"]
