"""Study spec (pdeflow.study.spec): validation at load (one-line errors naming the key) and the
expansion of groups into runs (counts, ladder and tied values, run ids, cost order, seeds)."""
import copy
import math
from pathlib import Path

import pytest

from pdeflow.study.spec import SpecError, fit_slice, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = """
[study]
name = "quickstart"
case = "wfr-kl-gauss-1d"
target = "exact"
metrics = ["L1", "L2", "hellinger"]
fit_range = [0, -1]
T = 1.0

[[group]]
label = "tau"
kind = "reference"
n = 1600
tau = {start = 0.05, factor = 0.5, levels = 4}

[[group]]
label = "h"
kind = "reference"
n = {start = 50, factor = 2, levels = 4}
tau = {tied = "h^2", coefficient = 1.0}

[[group]]
label = "svgd-N"
kind = "approx"
method = "svgd"
case = "wfr-kl-mixture-1d"
beta = 0
n_particles = [100, 300, 1000]
seeds = 5
dt = 0.01
reference = {n = 400, tau = 0.005}
"""


def _base() -> dict:
    return {
        "study": {"name": "s", "case": "wfr-kl-gauss-1d", "target": "exact", "metrics": ["L1", "L2", "hellinger"]},
        "group": [
            {"label": "tau", "kind": "reference", "n": 1600, "tau": {"start": 0.05, "factor": 0.5, "levels": 4}},
            {"label": "h", "kind": "reference", "n": {"start": 50, "factor": 2, "levels": 4},
             "tau": {"tied": "h^2", "coefficient": 1.0}},
            {"label": "svgd-N", "kind": "approx", "method": "svgd", "case": "wfr-kl-mixture-1d", "beta": 0.0,
             "n_particles": [100, 300, 1000], "seeds": 5, "dt": 0.01, "reference": {"n": 400, "tau": 0.005}},
        ],
    }


def _with(edit):
    data = _base()
    edit(data)
    return data


def _set(path, value):
    """An edit that sets data[path[0]][path[1]]... = value (path items: keys or list indices)."""
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _delete(path):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


MALFORMED = [
    # (id, edit, the key path the message must start with)
    ("unknown-top-key", _set(("studdy",), {}), "studdy"),
    ("unknown-study-key", _set(("study", "nmae"), "x"), "study.nmae"),
    ("unknown-group-key", _set(("group", 0, "tua"), 0.1), "group[0].tua"),
    ("approx-key-in-reference-group", _set(("group", 0, "method"), "svgd"), "group[0].method"),
    ("unknown-ladder-key", _set(("group", 0, "tau"), {"start": 0.1, "factor": 0.5, "level": 3}), "group[0].tau.level"),
    ("missing-name", _delete(("study", "name")), "study.name"),
    ("bad-name", _set(("study", "name"), "my study"), "study.name"),
    ("missing-groups", _delete(("group",)), "group"),
    ("empty-groups", _set(("group",), []), "group"),
    ("missing-label", _delete(("group", 1, "label")), "group[1].label"),
    ("duplicate-label", _set(("group", 1, "label"), "tau"), "group[1].label"),
    ("missing-kind", _delete(("group", 0, "kind")), "group[0].kind"),
    ("bad-kind", _set(("group", 0, "kind"), "exact"), "group[0].kind"),
    ("unknown-case", _set(("study", "case"), "no-such-case"), "study.case"),
    ("unknown-group-case", _set(("group", 2, "case"), "gauss"), "group[2].case"),
    ("unknown-method", _set(("group", 2, "method"), "langevin"), "group[2].method"),
    ("missing-method", _delete(("group", 2, "method")), "group[2].method"),
    ("bool-is-not-a-number", _set(("group", 0, "n"), True), "group[0].n"),
    ("string-tau", _set(("group", 0, "tau"), "0.1"), "group[0].tau"),
    ("float-n", _set(("group", 0, "n"), 100.5), "group[0].n"),
    ("empty-list", _set(("group", 2, "n_particles"), []), "group[2].n_particles"),
    ("duplicate-in-list", _set(("group", 2, "n_particles"), [100, 100]), "group[2].n_particles[1]"),
    ("bad-list-item", _set(("group", 2, "n_particles"), [100, "many"]), "group[2].n_particles[1]"),
    ("one-level-ladder", _set(("group", 0, "tau"), {"start": 0.1, "factor": 0.5, "levels": 1}), "group[0].tau.levels"),
    ("ladder-missing-factor", _set(("group", 0, "tau"), {"start": 0.1, "levels": 3}), "group[0].tau.factor"),
    ("non-positive-start", _set(("group", 0, "tau"), {"start": 0.0, "factor": 0.5, "levels": 3}),
     "group[0].tau.start"),
    ("tau-factor-coarsens", _set(("group", 0, "tau"), {"start": 0.05, "factor": 3, "levels": 4}),
     "group[0].tau.factor"),
    ("n-factor-coarsens", _set(("group", 1, "n"), {"start": 400, "factor": 0.5, "levels": 3}), "group[1].n.factor"),
    ("non-integer-n-ladder", _set(("group", 1, "n"), {"start": 50, "factor": 1.5, "levels": 3}), "group[1].n"),
    ("bad-tied-rule", _set(("group", 1, "tau"), {"tied": "h2"}), "group[1].tau.tied"),
    ("bad-tied-coefficient", _set(("group", 1, "tau"), {"tied": "h^2", "coefficient": -1}),
     "group[1].tau.coefficient"),
    ("ladder-not-allowed", _set(("group", 2, "sigma"), {"start": 1, "factor": 0.5, "levels": 3}), "group[2].sigma"),
    ("bad-kernel", _set(("group", 2, "kernel"), "rbf"), "group[2].kernel"),
    ("unknown-extra", _set(("group", 2, "extra"), {"colour": "red"}), "group[2].extra.colour"),
    ("negative-seed", _set(("group", 2, "seeds"), [0, -1]), "group[2].seeds[1]"),
    ("duplicate-seed", _set(("group", 2, "seeds"), [1, 2, 1]), "group[2].seeds[2]"),
    ("zero-seeds", _set(("group", 2, "seeds"), 0), "group[2].seeds"),
    ("seeds-in-reference-group", _set(("group", 0, "seeds"), 3), "group[0].seeds"),
    ("missing-reference", _delete(("group", 2, "reference")), "group[2].reference"),
    ("reference-missing-tau", _set(("group", 2, "reference"), {"n": 400}), "group[2].reference.tau"),
    ("bad-target", _set(("study", "target"), "analytic"), "study.target"),
    ("exact-without-exact-solution", _set(("group", 1, "case"), "wfr-kl-mixture-1d"), "study.target"),
    ("richardson-needs-n-ladder", _set(("study", "target"), "richardson"), "study.target"),
    ("richardson-needs-3-levels",
     lambda d: d["group"][1].update(target="richardson", n={"start": 50, "factor": 2, "levels": 2}),
     "group[1].target"),
    ("approx-target-exact", _set(("group", 2, "target"), "exact"), "group[2].target"),
    ("reference-target-without-resolution", _set(("group", 0, "target"), "reference"), "group[0].reference"),
    ("reference-coarser-than-runs",
     lambda d: d["group"][0].update(target="reference", reference={"n": 800, "tau": 0.001}), "group[0].reference"),
    ("metric-of-absent-kind", _set(("study", "metrics"), ["L1", "mmd"]),
     None),  # filled below: a study with reference groups only
    ("unknown-metric", _set(("study", "metrics"), ["L1", "Linf"]), "study.metrics[1]"),
    ("empty-metrics", _set(("study", "metrics"), []), "study.metrics"),
    ("group-metric-of-other-kind", _set(("group", 2, "metrics"), ["L1"]), "group[2].metrics[0]"),
    ("fit-range-out-of-range", _set(("study", "fit_range"), [0, 4]), "study.fit_range"),
    ("fit-range-one-level", _set(("study", "fit_range"), [2, 2]), "study.fit_range"),
    ("fit-range-bad-type", _set(("study", "fit_range"), [0.5, -1]), "study.fit_range"),
    ("bad-T", _set(("study", "T"), -1.0), "study.T"),
    ("bool-T", _set(("group", 0, "T"), False), "group[0].T"),
    ("group-not-a-table", _set(("group", 1), 3), "group[1]"),
]


def _metric_of_absent_kind(data):
    data["group"] = data["group"][:2]
    data["study"]["metrics"] = ["L1", "mmd"]


MALFORMED = [(i, _metric_of_absent_kind, "study.metrics[1]") if i == "metric-of-absent-kind" else (i, e, k)
             for i, e, k in MALFORMED]


def _assert_one_line_naming(exc: SpecError, key: str):
    message = str(exc)
    assert "\n" not in message and message.strip() == message
    assert message.startswith(key + ":"), message


@pytest.mark.parametrize("edit,key", [pytest.param(e, k, id=i) for i, e, k in MALFORMED])
def test_malformed_dict_specs_raise_one_line_naming_the_key(edit, key):
    parse_spec(_base())  # the unedited base is valid
    with pytest.raises(SpecError) as info:
        parse_spec(_with(edit))
    _assert_one_line_naming(info.value, key)


BAD_TOML = [
    ("invalid-toml", '[study]\nname = "x\n', None),
    ("duplicate-toml-key", '[study]\nname = "a"\nname = "b"\n', None),
    ("tau-factor-coarsens", EXAMPLE.replace("factor = 0.5, levels = 4", "factor = 3, levels = 4"),
     "group[0].tau.factor"),
    ("unknown-group-key", EXAMPLE.replace('seeds = 5', 'seeds = 5\nseed = 1'), "group[2].seed"),
    ("empty-n-particles", EXAMPLE.replace("n_particles = [100, 300, 1000]", "n_particles = []"),
     "group[2].n_particles"),
]


@pytest.mark.parametrize("text,key", [pytest.param(t, k, id=i) for i, t, k in BAD_TOML])
def test_malformed_toml_specs_raise_one_line_naming_the_key(tmp_path, text, key):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    if key is None:  # TOML syntax: the message names the file
        _assert_one_line_naming(info.value, str(path))
        assert "invalid TOML" in str(info.value)
    else:
        _assert_one_line_naming(info.value, key)


def test_the_tau_factor_message_of_the_issue():
    with pytest.raises(SpecError, match=r"^group\[0\]\.tau\.factor: expected a number in \(0, 1\) for a refining "
                                        r"time step, got 3$"):
        parse_spec(_with(_set(("group", 0, "tau"), {"start": 0.05, "factor": 3, "levels": 4})))


def test_missing_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "absent.toml")


@pytest.fixture()
def example(tmp_path):
    path = tmp_path / "example.toml"
    path.write_text(EXAMPLE)
    return load_spec(path)


def test_example_expands_to_the_right_runs(example):
    assert example.name == "quickstart" and example.target == "exact"
    assert [g.label for g in example.groups] == ["tau", "h", "svgd-N"]
    tau, h, svgd = example.groups
    assert len(tau.runs) == 4 and len(h.runs) == 4 and len(svgd.runs) == 3 * 5
    assert len(example.runs()) == 23

    assert [r["params"]["tau"] for r in tau.runs] == [0.05, 0.025, 0.0125, 0.00625]
    assert all(r["params"]["n"] == 1600 for r in tau.runs)
    assert tau.swept == ("tau",)
    assert [r["sweep"] for r in tau.runs][0] == {"h": 12 / 1600, "tau": 0.05}

    assert [r["params"]["n"] for r in h.runs] == [50, 100, 200, 400]
    for r in h.runs:
        n = r["params"]["n"]
        assert r["params"]["tau"] == pytest.approx((12 / n) ** 2, rel=1e-12)
        assert r["sweep"]["h"] == pytest.approx(12 / n, rel=1e-12)
        assert r["sweep"]["tau"] == r["params"]["tau"]
    assert h.swept == ("h", "tau") and h.target == "exact"

    assert svgd.kind == "approx" and svgd.method == "svgd" and svgd.case == "wfr-kl-mixture-1d"
    assert svgd.target == "reference" and svgd.swept == ("n_particles",)
    assert sorted({(r["params"]["n_particles"], r["seed"]) for r in svgd.runs}) == [
        (n, s) for n in (100, 300, 1000) for s in range(5)]
    run = svgd.runs[0]
    assert run["params"]["reference"] == {"n": 400, "tau": 0.005}
    assert run["params"]["dt"] == 0.01 and run["params"]["lam"] == 1e-3 and run["params"]["sigma"] is None
    assert run["sweep"] == {"n_particles": 100}
    assert run["cost"] == pytest.approx(100**2 * 1.0 / 0.01)
    assert h.runs[0]["cost"] == pytest.approx(51 * 1.0 / (12 / 50) ** 2)

    for r in example.runs():
        assert set(r) == {"run_id", "group", "kind", "case", "method", "params", "seed", "sweep", "cost"}
        assert len(r["run_id"]) == 16 and int(r["run_id"], 16) >= 0
        assert "T" not in r["params"]  # T = 1.0 is the cases' own final time


def test_runs_are_sorted_by_decreasing_cost(example):
    runs = example.runs()
    keys = [(-r["cost"], r["run_id"]) for r in runs]
    assert keys == sorted(keys)
    assert runs[0]["cost"] >= runs[-1]["cost"]
    assert runs[0]["params"].get("n_particles") == 1000


def test_run_ids_are_stable_and_shared_between_groups(example):
    again = parse_spec(_base())
    assert [r["run_id"] for g in again.groups[:2] for r in g.runs] == \
           [r["run_id"] for g in example.groups[:2] for r in g.runs]
    ids = [r["run_id"] for g in example.groups for r in g.runs]
    assert len(set(ids)) == len(ids) == 23

    # a third group that lists runs of the first two (n = 1600, tau = 0.05 explicitly; n = 100 at
    # tau = (12/100)^2 written through a ladder) shares their ids: the runs are computed once
    data = _base()
    data["group"].append({"label": "overlap", "kind": "reference", "n": [1600], "tau": [0.05, 0.0144]})
    data["group"].append({"label": "tied-h", "kind": "reference", "n": [100, 200], "tau": {"tied": "h^2"}})
    spec = parse_spec(data)
    by_label = {g.label: {r["run_id"] for r in g.runs} for g in spec.groups}
    assert len(by_label["overlap"] & by_label["tau"]) == 1
    assert by_label["tied-h"] <= by_label["h"]
    assert len(spec.runs()) == 23 + 1  # only (1600, 0.0144) is new
    assert len({r["run_id"] for r in spec.runs()}) == len(spec.runs())


def test_t_override_enters_params_and_changes_the_ids(example):
    data = _base()
    data["study"]["T"] = 0.5
    spec = parse_spec(data)
    assert spec.T == 0.5
    assert all(r["params"]["T"] == 0.5 for r in spec.runs())
    assert not {r["run_id"] for r in spec.runs()} & {r["run_id"] for r in example.runs()}
    assert spec.groups[0].runs[0]["cost"] == pytest.approx(1601 * 0.5 / 0.05)


def test_seeds_list_and_swept_method_parameters():
    data = _base()
    g = data["group"][2]
    g.update(seeds=[3, 7], n_particles={"start": 50, "factor": 2, "levels": 3}, sigma=[0.5, 0.25],
             extra={"integrator": ["euler", "ivp"]})  # (svgd has no lam: a lam sweep is refused)
    spec = parse_spec(data)
    group = spec.groups[2]
    assert {r["seed"] for r in group.runs} == {3, 7}
    assert len(group.runs) == 3 * 2 * 2 * 2
    assert group.swept == ("n_particles", "sigma", "extra.integrator")
    assert {r["params"]["n_particles"] for r in group.runs} == {50, 100, 200}
    assert {r["params"]["extra"]["integrator"] for r in group.runs} == {"euler", "ivp"}
    assert group.runs[0]["sweep"] == {"n_particles": 50, "sigma": 0.5, "extra.integrator": "euler"}
    # runs do not share mutable params
    group.runs[0]["params"]["extra"]["integrator"] = "changed"
    assert group.runs[1]["params"]["extra"]["integrator"] == "euler"


def test_method_refusing_the_case_fails_at_load():
    data = _base()
    del data["group"][2]["beta"]  # svgd on the WFR case would ignore beta = 1
    with pytest.raises(SpecError, match=r"group\[2\].method: svgd approximates a Wasserstein-type flow"):
        parse_spec(data)


def test_external_method_in_a_spec(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def run(problem, params):\n    raise RuntimeError('not run at load')\n")
    data = _base()
    data["group"][2].update(method=f"{path}:run", extra={"gamma": [0.5, 1.0]})
    group = parse_spec(data).groups[2]
    assert group.method == f"{path}:run" and {r["params"]["extra"]["gamma"] for r in group.runs} == {0.5, 1.0}
    data["group"][2]["method"] = f"{path}:nope"
    with pytest.raises(SpecError, match="has no attribute 'nope'"):
        parse_spec(data)


def test_method_keys_are_the_methods_own():
    data = _base()
    data["group"][2]["extra"] = {"variant": "weighted"}  # a birth-death key, not an svgd one
    with pytest.raises(SpecError, match="extra.variant: unknown key; allowed: integrator"):
        parse_spec(data)


def test_default_targets_and_metrics():
    data = _base()
    del data["study"]["target"]
    data["study"]["metrics"] = ["L1", "mmd"]
    data["group"].append({"label": "mix-h", "kind": "reference", "case": "wfr-kl-mixture-1d",
                          "n": {"start": 50, "factor": 2, "levels": 3}, "tau": {"tied": "h"}})
    spec = parse_spec(data)
    targets = {g.label: g.target for g in spec.groups}
    assert targets == {"tau": "exact", "h": "exact", "svgd-N": "reference", "mix-h": "richardson"}
    assert spec.target == "exact"
    assert spec.groups[0].metrics == ("L1",) and spec.groups[2].metrics == ("mmd",)
    assert spec.groups[3].runs[0]["params"]["tau"] == pytest.approx(12 / 50)
    # a tau ladder on a case without exact solution defaults to richardson, which it cannot be
    data["group"][3]["n"] = 400
    data["group"][3]["tau"] = {"start": 0.1, "factor": 0.5, "levels": 3}
    with pytest.raises(SpecError, match=r"^group\[3\]\.target: 'richardson' \(the default"):
        parse_spec(data)


def test_fit_range_and_fit_slice(example):
    assert example.fit_range == (0, -1)
    assert fit_slice((0, -1), 4) == slice(0, 4)
    assert fit_slice((1, -2), 4) == slice(1, 3)
    assert fit_slice(None, 3) == slice(0, 3)


def test_spec_module_does_not_import_the_fe_stack():
    import subprocess
    import sys

    code = ("import sys; import pdeflow.study.spec; "
            "assert 'dolfinx' not in sys.modules and 'pdeflow.fem' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_quickstart_study_loads():
    spec = load_spec(ROOT / "studies" / "quickstart.toml")
    assert spec.name == "quickstart"
    labels = {g.label: g for g in spec.groups}
    assert labels["gauss-tau"].target == "exact" and labels["gauss-h"].target == "exact"
    assert labels["mixture-h"].target == "richardson"
    approx = [g for g in spec.groups if g.kind == "approx"]
    assert {g.method for g in approx} == {"lambda-fr", "svgd", "birth-death"}
    for g in approx:
        assert len(g.runs) == 4 * 3
        assert g.reference == {"n": 200, "tau": 0.005}
    assert len(spec.runs()) == 4 + 4 + 4 + 3 * 12
    assert math.isclose(max(r["params"]["n"] for r in labels["mixture-h"].runs), 400)


def test_parse_spec_does_not_modify_its_input():
    data = _base()
    before = copy.deepcopy(data)
    parse_spec(data)
    assert data == before


def test_spec_beyond_the_resource_budget_is_refused_unless_allowed():
    data = _base()
    data["group"][0]["n"] = 10**8
    with pytest.raises(SpecError, match="allow_large = true in"):
        parse_spec(data)
    data["study"]["allow_large"] = True
    parse_spec(data)
    data["study"]["allow_large"] = "yes"
    with pytest.raises(SpecError, match="study.allow_large"):
        parse_spec(data)
