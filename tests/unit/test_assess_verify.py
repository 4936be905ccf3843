"""`pdeflow verify`: the estimator behind the verdict (unbiased bias products, dt extrapolation),
the verdict on built-in methods, and the command's exit codes and outputs."""
import json
from pathlib import Path

import numpy as np
import pytest

from pdeflow.approx.methods import MethodParams
from pdeflow.assess import verify as V
from pdeflow.cases import get_case
from pdeflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_extrapolation_weights_cancel_a_first_order_bias():
    N = np.array([100, 200, 400, 800, 400, 400], float)
    dt = np.array([0.02, 0.02, 0.02, 0.02, 0.01, 0.005])
    a = V.extrapolation_weights(N, dt, True)
    assert a.sum() == pytest.approx(1.0, abs=1e-12) and a @ dt == pytest.approx(0.0, abs=1e-12)
    b = V.extrapolation_weights(N, dt, False)
    assert b.sum() == pytest.approx(1.0) and np.all(b > 0) and b[3] > b[0]  # weights ∝ N


def test_bias_gram_is_unbiased_and_drops_the_variance_term():
    """D = b_c + noise (var σ²/N per coordinate): E Γ̂_cc' = ⟨b_c, b_c'⟩ although E‖D‖² = ‖b‖² + σ²F/N."""
    rng = np.random.default_rng(0)
    C, S, F = 3, 5, 40
    b = rng.standard_normal((C, F)) * 0.1
    est, naive = [], []
    for _ in range(400):
        D = b[:, None, :] + rng.standard_normal((C, S, F)) * 0.5
        est.append(V.bias_gram(D))
        naive.append(np.einsum("csf,csf->cs", D, D).mean(axis=1))
    mean = np.mean(est, axis=0)
    truth = b @ b.T
    se = np.std(est, axis=0) / np.sqrt(len(est))
    assert np.all(np.abs(mean - truth) < 4 * se + 1e-12)
    assert np.mean(naive, axis=0)[0] > truth[0, 0] + 5  # the per-run squared error carries F σ² = 10


def test_bias_gram_drops_ties_of_a_bootstrap_resample():
    D = np.random.default_rng(1).standard_normal((2, 4, 6))
    G = V.bias_gram(D, idx=[0, 0, 1, 1])
    pair = float(D[0, 0] @ D[0, 1])
    assert G[0, 0] == pytest.approx(pair)  # only the (0, 1) pairs of distinct seeds count
    assert np.isnan(V.bias_gram(D, idx=[2, 2, 2, 2])[0, 0])


@pytest.mark.parametrize("lo,hi,tol,status", [(0.2, 0.3, 0.1, "inconsistent"), (0.0, 0.05, 0.1, "consistent"),
                                              (0.05, 0.2, 0.1, "inconclusive"), (0.0, 0.1, 0.1, "consistent")])
def test_decide(lo, hi, tol, status):
    assert V.decide(lo, hi, tol) == status


def test_svgd_is_consistent_with_its_stein_continuum():
    out = V.verify_method(get_case("w-kl-gauss-1d"), "svgd", MethodParams(sigma=0.5, dt=0.02), plan="quick")
    verdict = out["verdict"]
    assert verdict["status"] == "consistent", verdict["summary"]
    ev = verdict["evidence"]
    assert ev["continuum"]["name"] == "stein" and ev["continuum"]["params"] == {"kernel": "gaussian", "sigma": 0.5}
    assert ev["dt_ladder"] and len(ev["configs"]) == 6
    assert ev["reference_error"]["total"] < 0.1 * ev["tolerance"]
    # the fluctuation decays with N (SVGD may beat the i.i.d. rate -0.5)
    assert ev["rate_N"]["rate"] < -0.3
    json.dumps(out["verdict"])


def test_svgd_against_the_wrong_continuum_is_inconsistent():
    """At σ = 0.5 the Stein PDE is not the Fokker-Planck flow: checked against `flow`, SVGD must fail
    (the model bias the issue measured as 14x the Monte-Carlo floor)."""
    out = V.verify_method(get_case("w-kl-gauss-1d"), "svgd", MethodParams(sigma=0.5, dt=0.02), continuum="flow",
                          plan="quick")
    assert out["verdict"]["status"] == "inconsistent", out["verdict"]["summary"]


def test_median_bandwidth_is_fixed_before_the_sweep():
    decl, params, (name, cparams), notes = V.resolve(get_case("w-kl-gauss-1d"), "svgd", MethodParams())
    assert params.sigma is not None and cparams["sigma"] == params.sigma and "median heuristic" in notes[0]


def test_refusal_and_missing_continuum_are_one_line_errors():
    with pytest.raises(V.VerifyError, match="beta = 1"):
        V.resolve(get_case("wfr-kl-gauss-1d"), "svgd", MethodParams(sigma=0.5))
    with pytest.raises(V.VerifyError, match="unknown continuum"):
        V.resolve(get_case("w-kl-gauss-1d"), "svgd", MethodParams(sigma=0.5), continuum="nope")


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    out = tmp_path / "v"
    rc = main(["verify", "fr-kl-gauss-1d", "--method", "template-fr", "--plan", "quick", "--out", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert rc == {"consistent": 0, "inconsistent": 4, "inconclusive": 5}[summary["verdict"]["status"]]
    assert summary["verdict"]["status"] == "consistent", summary["verdict"]["summary"]
    assert set(summary["verdict"]["evidence"]) >= {"fit", "rate_N", "configs", "reference_error", "tolerance"}
    for png in ("verify_errors.png", "particles.png"):
        assert (out / png).stat().st_size > 1000
    # bad input: one line, exit 2, before any solve
    for args, needle in ((["--method", "nope"], "unknown method"), (["--method", "template-fr", "--plan", "huge"], "--plan"),
                         (["--method", "template-fr", "--continuum", "stein:sigma"], "key=value"),
                         (["--method", "template-fr", "--rtol", "2"], "--rtol"),
                         (["--method", "svgd"], "transport method")):
        assert main(["verify", "fr-kl-gauss-1d", *args, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, err


def test_cli_inconsistent_external_method_exits_4(tmp_path):
    defect = ROOT / "tests" / "defects" / "fr_linear_exponent.py"
    rc = main(["verify", "fr-kl-gauss-1d", "--method", f"{defect}:run", "--plan", "quick", "--out", str(tmp_path / "d"),
               "--quiet", "--no-plots"])
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert rc == 4 and summary["verdict"]["status"] == "inconsistent"
    assert summary["method_source"].startswith("file ")


def test_cli_inconclusive_exits_5(tmp_path, monkeypatch):
    real = V.verify_method

    def fake(*args, **kw):
        out = real(*args, **kw)
        out["verdict"]["status"] = "inconclusive"
        return out

    monkeypatch.setattr(V, "verify_method", fake)
    rc = main(["verify", "fr-kl-gauss-1d", "--method", "template-fr", "--plan", "quick", "--out", str(tmp_path / "i"),
               "--quiet", "--no-plots"])
    assert rc == 5


def test_docs_example_external_svgd_is_consistent(tmp_path):
    """docs/examples/external_svgd, run as its README says (with the quick plan): consistent, exit 0."""
    example = ROOT / "docs" / "examples" / "external_svgd" / "svgd.py"
    rc = main(["verify", "w-kl-gauss-1d", "--method", f"{example}:run", "--set", "sigma=0.5", "--set", "dt=0.02",
               "--plan", "quick", "--out", str(tmp_path / "ex"), "--quiet", "--no-plots"])
    summary = json.loads((tmp_path / "ex" / "summary.json").read_text())
    assert rc == 0 and summary["verdict"]["status"] == "consistent", summary["verdict"]["summary"]
    assert summary["verdict"]["evidence"]["continuum"]["name"] == "stein"


def test_entry_point_plugin_is_found(monkeypatch, tmp_path):
    """An installed package registers `my-svgd = "module:function"` under the group pdeflow.methods."""
    from importlib.metadata import EntryPoint

    from pdeflow.approx import external
    from pdeflow.approx.methods import get_method

    (tmp_path / "my_plugin_mod.py").write_text(
        "import numpy as np\n"
        "def run(problem, params):\n"
        "    from pdeflow.approx import initial_particles\n"
        "    x, w = initial_particles(problem, params.n_particles, params.seed)\n"
        "    t = np.array(problem.snapshot_times())\n"
        "    return {'times': t, 'x': np.repeat(x[None], t.size, 0), 'w': np.repeat(w[None], t.size, 0),\n"
        "            'info': {'gamma': params.extra.get('gamma')}}\n"
        "run.continuum = 'flow'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="my-plugin", value="my_plugin_mod:run", group=external.ENTRY_POINT_GROUP)
    monkeypatch.setattr(external, "_entry_points", lambda: {"my-plugin": ep})
    decl = get_method("my-plugin")
    assert decl.source == "entry point my_plugin_mod:run"
    assert decl.continuum(get_case("fr-kl-gauss-1d"), MethodParams())[0] == "flow"
    assert "my-plugin" in external.plugin_names()


def test_unknown_set_keys_reach_an_external_method_typed(tmp_path):
    path = tmp_path / "echo.py"
    path.write_text(
        "import numpy as np\n"
        "SEEN = {}\n"
        "def run(problem, params):\n"
        "    from pdeflow.approx import initial_particles\n"
        "    SEEN.update(params.extra)\n"
        "    x, w = initial_particles(problem, params.n_particles, params.seed)\n"
        "    t = np.array(problem.snapshot_times())\n"
        "    return {'times': t, 'x': np.repeat(x[None], t.size, 0), 'w': np.repeat(w[None], t.size, 0)}\n"
        "run.continuum = 'flow'\n")
    from pdeflow.cases import parse_method_overrides
    from pdeflow.approx.methods import get_method

    decl = get_method(f"{path}:run")
    values, extra = parse_method_overrides(["gamma=0.5", "steps=3", "flag=True", "name=abc", "ladder=[1, 2]",
                                            "n_particles=40"], decl)
    assert values == {"n_particles": 40}
    assert extra == {"gamma": 0.5, "steps": 3, "flag": True, "name": "abc", "ladder": [1, 2]}
    rc = main(["approx", "fr-kl-gauss-1d", "--method", f"{path}:run", "--set", "n_particles=30", "--set", "gamma=0.25",
               "--set", "n=60", "--set", "tau=0.05", "--out", str(tmp_path / "o"), "--quiet", "--no-plots"])
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert rc == 0 and summary["parameters"]["extra.gamma"] == 0.25 and summary["method_source"].startswith("file ")
    # a built-in method keeps refusing keys it does not declare
    with pytest.raises(ValueError, match="unknown key 'gamma'"):
        parse_method_overrides(["gamma=0.5"], get_method("svgd"))


def test_boundary_layer_is_not_measurable_when_the_reference_leaves_it_empty():
    from pdeflow.compare import BOUNDARY_LAYER_THRESHOLD, boundary_layer_mass

    x = np.linspace(-6, 6, 401)[:, None]
    m = np.full(401, 0.03)
    rho = np.exp(-0.5 * x[:, 0] ** 2) / np.sqrt(2 * np.pi)  # ~1e-7 of the mass within 0.5 of ±6
    dist = lambda p: 6 - np.abs(p[:, 0])
    out = boundary_layer_mass(np.zeros((5, 1)), np.full(5, 0.2), x, rho, m, dist, 0.5)
    assert out["reference_fraction"] < BOUNDARY_LAYER_THRESHOLD
    assert out["measurable"] is False and out["relative_error"] is None  # not -1
    wide = boundary_layer_mass(np.zeros((5, 1)), np.full(5, 0.2), x, np.full(401, 1 / 12), m, dist, 0.5)
    assert wide["measurable"] and wide["relative_error"] == pytest.approx(-1.0)


def test_methods_command_lists_keys_defaults_and_continua(capsys):
    assert main(["methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["methods"]}
    assert rows["svgd"]["continuum"] == "stein" and rows["smc-wfr"]["continuum"].startswith("lie-split")
    assert rows["birth-death"]["defaults"]["variant"] == "stochastic" and "variant" in rows["birth-death"]["keys"]
