"""`pdeflow check`: particle files from any code against a reference — the test's false-alarm rate,
its power, and the one-line refusal of every malformed file."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdeflow.approx import initial_particles
from pdeflow.assess.check import (ParticleFileError, check_particles_against, load_particle_file,
                                  prepare_reference)
from pdeflow.cases import get_case
from pdeflow.cli import main
from pdeflow.compare import sample_p1_1d
from pdeflow.exact import exact_solution
from pdeflow.verify import metric_scales

ROOT = Path(__file__).resolve().parents[2]
CASE = "fr-kl-gauss-1d"


def exact_reference(problem, n: int = 400) -> dict:
    """The exact FR solution at the vertices of a uniform 1-D grid with trapezoid masses (no dolfinx)."""
    lo, hi = problem.domain.lower[0], problem.domain.upper[0]
    x = np.linspace(lo, hi, n + 1)
    m = np.full(n + 1, (hi - lo) / n)
    m[[0, -1]] /= 2
    ex = exact_solution(problem)
    rho = np.array([ex.density(float(t), x[None, :]) for t in problem.snapshot_times()])
    return {"t": np.array(problem.snapshot_times()), "x": x[:, None], "m": m, "rho": rho}


@pytest.fixture(scope="module")
def setting():
    problem = get_case(CASE)
    ref = exact_reference(problem)
    scales = metric_scales(problem)
    return problem, ref, scales, prepare_reference(ref, scales)


def _iid(ref, n, rng, shift=0.0):
    t = ref["t"]
    x = np.array([sample_p1_1d(ref["x"][:, 0], ref["rho"][k], n, rng) + shift for k in range(t.size)])
    mass = float(ref["m"] @ ref["rho"][0])
    return t, np.clip(x, -6, 6), np.full((t.size, n), mass / n)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_false_alarm_rate_on_correct_iid_samples_is_within_alpha(setting, alpha):
    """300 files of i.i.d. draws from the reference itself: the fraction rejected must not exceed α
    beyond binomial noise (3 sd), and must not be 0 at α = 0.05 (a test that never rejects is dead)."""
    problem, ref, scales, prepared = setting
    rng = np.random.default_rng(7)
    seeds = 300
    rejected = 0
    for _ in range(seeds):
        t, x, w = _iid(ref, 150, rng)
        res = check_particles_against(problem, t, x, w, ref, scales, alpha=alpha, prepared=prepared)
        rejected += res["status"] == "inconsistent"
    rate = rejected / seeds
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / seeds), rate
    if alpha == 0.05:
        assert rejected >= 2, rejected


def test_power_against_a_shifted_sample(setting):
    problem, ref, scales, prepared = setting
    rng = np.random.default_rng(3)
    hits = sum(check_particles_against(problem, *_iid(ref, 400, rng, shift=0.2), ref, scales,
                                       prepared=prepared)["status"] == "inconsistent" for _ in range(20))
    assert hits >= 18


def test_wrong_mass_is_rejected(setting):
    problem, ref, scales, prepared = setting
    t, x, w = _iid(ref, 400, np.random.default_rng(4))
    assert check_particles_against(problem, t, x, 1.1 * w, ref, scales, prepared=prepared)["status"] == "inconsistent"


def test_weighted_fisher_rao_particles_pass(setting):
    """The exact FR reweighting of i.i.d. draws from ρ0 (the template method): weighted particles,
    tested with Kish's n_eff — an approximate null, so the rate is only required to stay near α."""
    problem, ref, scales, prepared = setting
    from pdeflow.approx.methods import MethodParams, run_approximation

    rejected = 0
    for seed in range(40):
        traj = run_approximation(problem, "template-fr", MethodParams(n_particles=300, seed=seed))
        rejected += check_particles_against(problem, traj.times, traj.x, traj.w, ref, scales, alpha=0.05,
                                            prepared=prepared)["status"] == "inconsistent"
    assert rejected <= 6, rejected


def test_reference_too_coarse_is_inconclusive(setting):
    problem, ref, scales, prepared = setting
    t, x, w = _iid(ref, 2000, np.random.default_rng(5))
    res = check_particles_against(problem, t, x, w, ref, scales, prepared=prepared, reference_error=[0, 0.05, 0.05, 0.05])
    assert res["status"] == "inconclusive" and "refine the reference" in res["summary"]


# --- files -------------------------------------------------------------------------------------------

def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(problem, n=50):
    x, w = initial_particles(problem, n, seed=0)
    t = np.array(problem.snapshot_times())
    return t, np.repeat(x[None], t.size, 0), np.repeat(w[None], t.size, 0)


def _malformed(tmp_path, problem):
    t, x, w = _good(problem)
    bad_x = x.copy()
    bad_x[1, 3, 0] = np.nan
    out_x = x.copy()
    out_x[2, 0, 0] = 7.5
    neg_w = w.copy()
    neg_w[0, 1] = -0.1
    cases = {
        "missing t": (dict(x=x, w=w), "missing array(s) t"),
        "missing x": (dict(t=t, w=w), "missing array(s) x"),
        "unknown array": (dict(t=t, x=x, w=w, v=w), "unknown array(s) v"),
        "x 4-D": (dict(t=t, x=x[..., None], w=w), "x of shape"),
        "x wrong d": (dict(t=t, x=np.concatenate([x, x], axis=2), w=w), "expected (n_snap, N, 1)"),
        "w wrong shape": (dict(t=t, x=x, w=w[:, :10]), "w of shape"),
        "t too short": (dict(t=t[:2], x=x, w=w), "times but"),
        "t wrong": (dict(t=t * 2, x=x, w=w), "snapshot times"),
        "nan": (dict(t=t, x=bad_x, w=w), "non-finite"),
        "outside": (dict(t=t, x=out_x, w=w), "outside the domain"),
        "negative w": (dict(t=t, x=x, w=neg_w), "negative weight"),
        "zero w": (dict(t=t, x=x, w=np.zeros_like(w)), "sum to 0"),
        "strings": (dict(t=np.array(["a", "b", "c", "d"]), x=x, w=w), "numeric"),
        "one particle": (dict(t=t, x=x[:, :1], w=w[:, :1]), "at least 2"),
    }
    paths = {}
    for name, (arrays, needle) in cases.items():
        paths[name] = (_write(tmp_path / (name.replace(" ", "_") + ".npz"), **arrays), needle)
    text = tmp_path / "not.npz"
    text.write_text("hello")
    paths["not npz"] = (text, "not a readable npz")
    npy = tmp_path / "single.npy"
    np.save(npy, x)
    paths["npy"] = (npy, "single .npy array")
    paths["missing file"] = (tmp_path / "nope.npz", "no such file")
    paths["directory"] = (tmp_path, "is a directory")
    return paths


def test_malformed_files_exit_2_with_one_line(tmp_path, capsys):
    problem = get_case(CASE)
    for name, (path, needle) in _malformed(tmp_path, problem).items():
        with pytest.raises(ParticleFileError, match=None) as info:
            load_particle_file(path, problem)
        assert needle in str(info.value) and "\n" not in str(info.value), (name, str(info.value))
        assert main(["check", CASE, str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, (name, err)


def test_one_d_files_may_omit_the_last_axis_and_the_weights(tmp_path):
    problem = get_case(CASE)
    t, x, _ = _good(problem)
    path = _write(tmp_path / "p.npz", t=t, x=x[..., 0])
    _, x2, w2 = load_particle_file(path, problem)
    assert x2.shape == x.shape and np.allclose(w2.sum(1), 1.0)


def test_example_script_file_checks_consistent(tmp_path):
    """docs/examples/particle_file: a script that does not import pdeflow writes the file; check passes."""
    script = ROOT / "docs" / "examples" / "particle_file" / "write_particles.py"
    assert "import pdeflow" not in script.read_text() and "from pdeflow" not in script.read_text()
    out = tmp_path / "particles.npz"
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rc = main(["check", CASE, str(out), "--out", str(tmp_path / "res"), "--json"])
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert rc == 0 and summary["verdict"]["status"] == "consistent", summary["verdict"]["summary"]
    assert (tmp_path / "res" / "particles.png").stat().st_size > 1000
    # the same particles shifted by 0.3 come out inconsistent, exit 4
    data = dict(np.load(out))
    data["x"] = np.clip(data["x"] + 0.3, -6, 6)
    shifted = _write(tmp_path / "shifted.npz", **data)
    assert main(["check", CASE, str(shifted), "--out", str(tmp_path / "res2"), "--quiet"]) == 4
