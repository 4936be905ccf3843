"""Issue #10 part 3, references as data: `pdeflow export` → `pdeflow.Reference` (numpy only).

Shown here: the exported file reproduces the solve's nodal values at the snapshots and at every
accepted step to round-off (1-D and 2-D, npz and HDF5); the time interpolation has the scheme's
order; `sample` passes two-sample tests against the P1 density (and a wrong sampler fails them);
the doc example runs where dolfinx, petsc4py and mpi4py cannot be imported; malformed files are
one-line errors; `check --reference FILE` gives the verdict of the solved check."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import pdeflow
from pdeflow.cases import get_case
from pdeflow.cli import main
from pdeflow.fem.export import reference_data, write_atomic, write_reference
from pdeflow.reference import Reference, ReferenceFileError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "reference_file" / "use_reference.py"
try:
    from pdeflow.reference import import_h5py

    import_h5py()
    HAVE_H5PY = True
except ReferenceFileError:
    HAVE_H5PY = False


def _solve(case, n, tau, scheme):
    from pdeflow.fem import solve_reference

    return solve_reference(get_case(case), n=n, tau=tau, scheme=scheme, keep_steps=True, progress=False)


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """(trajectory, {suffix: path}) in 1-D (bdf2, quadratic in time) and 2-D (frozen mobility, linear)."""
    d = tmp_path_factory.mktemp("refs")
    out = {}
    for key, (case, n, tau, scheme) in {"1d": ("fr-kl-gauss-1d", 16, 0.05, "bdf2"),
                                        "2d": ("wfr-kl-gauss-2d", 6, 0.1, "frozen-mobility")}.items():
        traj = _solve(case, n, tau, scheme)
        paths = {".npz": write_reference(d / f"{key}.npz", traj, provenance={"test": key})}
        if HAVE_H5PY:
            paths[".h5"] = write_reference(d / f"{key}.h5", traj)
        out[key] = (traj, paths)
    return out


def test_public_api_names_resolve_and_reference_is_exported():
    assert "Reference" in pdeflow.__all__
    for name in pdeflow.__all__:
        assert getattr(pdeflow, name) is not None, name
    assert pdeflow.Reference is Reference


# --- (a) reproduction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["1d", "2d"])
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_export_reproduces_the_nodal_values_to_round_off(solved, key, suffix):
    if suffix == ".h5" and not HAVE_H5PY:
        pytest.skip("h5py not importable")
    traj, paths = solved[key]
    ref = Reference.load(paths[suffix])
    assert np.array_equal(ref.x, traj.x) and np.array_equal(ref.rho, traj.rho)
    assert np.array_equal(ref.step_times, traj.step_times) and np.array_equal(ref.step_rho, traj.step_rho)
    scale = float(np.max(traj.step_rho))
    err_snap = max(np.max(np.abs(ref.density(t, traj.x) - traj.rho[k])) for k, t in enumerate(traj.times))
    err_step = max(np.max(np.abs(ref.density(t, traj.x) - traj.step_rho[k])) for k, t in enumerate(traj.step_times))
    assert err_snap <= 1e-14 * scale and err_step <= 1e-14 * scale, (err_snap, err_step)
    masses = traj.space.gather(traj.space.lumped_mass)
    assert np.array_equal(ref.m, masses)
    for k, t in enumerate(traj.times):  # ∫ρ_h by the lumped masses, by the quadrature of expect, and the solver's mass
        m_solver = traj.initial["mass"] if k == 0 else next(s["mass"] for s in traj.steps if abs(s["t"] - t) < 1e-12)
        assert ref.mass(t) == pytest.approx(m_solver, rel=1e-13)
        assert ref.expect(t, lambda x: np.ones(len(x))) == pytest.approx(m_solver, rel=1e-13)
    assert ref.scheme == traj.params["scheme"] and ref.time_order == (2 if ref.scheme == "bdf2" else 1)
    assert ref.case == json.loads(json.dumps(traj.problem.describe())) and ref.params["n"] == traj.params["n"]
    assert ref.estimates is None and ref.error_estimate(0.5) is None
    assert "dolfinx" in ref.versions and "pdeflow" in ref.versions


def test_expect_is_exact_for_affine_integrands(solved):
    """∫ x ρ_h per cell is vol/((d+1)(d+2)) (Σ x_k ρ_k + Σ x_k Σ ρ_k) for linear ρ_h: the rule is exact."""
    for key in ("1d", "2d"):
        traj, paths = solved[key]
        ref = Reference(paths[".npz"])
        t = 0.43
        u = ref.nodal(t)[ref.cells]  # M × (d+1)
        v = ref.x[ref.cells]  # M × (d+1) × d
        d = ref.dim
        exact = ((ref.mesh.volumes / ((d + 1) * (d + 2)))[:, None]
                 * (np.einsum("mk,mkd->md", u, v) + u.sum(1)[:, None] * v.sum(1))).sum(0)
        got = ref.expect(t, lambda x: x)
        assert np.allclose(got, exact, rtol=1e-12, atol=1e-14), (got, exact)


def test_points_outside_the_domain_and_times_outside_0_T(solved):
    ref = Reference(solved["2d"][1][".npz"])
    assert np.all(ref.density(0.5, np.array([[9.0, 0.0], [0.0, -7.0]])) == 0.0)
    assert ref.density(0.5, np.array([0.0, 0.0])).shape == (1,)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="outside"):
            ref.density(bad, ref.x)
    with pytest.raises(ValueError, match="expected"):
        ref.density(0.5, np.zeros((4, 3)))


# --- (b) time interpolation ---------------------------------------------------------------------------

def _mesh_1d(n):
    x = np.linspace(-1.0, 1.0, n + 1)
    cells = np.column_stack([np.arange(n), np.arange(1, n + 1)])
    m = np.full(n + 1, 2.0 / n)
    m[[0, -1]] /= 2
    return x[:, None], cells, m


def _synthetic(path, step_times, rho_fn, order, scheme=None, estimates=None, **changes):
    """A reference file from a given ρ(t, x) sampled at step_times (snapshots: 0, 0.5, 1)."""
    x, cells, m = _mesh_1d(8)
    times = np.array([0.0, 0.5, 1.0])
    step_rho = np.array([rho_fn(t, x[:, 0]) for t in step_times])
    data = {"format": "pdeflow-reference", "format_version": np.int64(1), "x": x, "cells": cells, "m": m,
            "times": times, "rho": np.array([rho_fn(t, x[:, 0]) for t in times]), "step_times": np.asarray(step_times),
            "step_rho": step_rho, "scheme": scheme or ("bdf2" if order == 2 else "frozen-mobility"),
            "time_order": np.int64(order), "case": json.dumps({"name": "synthetic", "T": 1.0}), "params": "{}",
            "versions": "{}", "estimates": json.dumps(estimates), "provenance": "{}", "solve": "null"}
    data.update(changes)
    return write_atomic(path, {k: v for k, v in data.items() if v is not None})


def _steps(k):
    """Uneven steps landing on 0.5 and 1 (like the solver's shortened steps before a snapshot)."""
    a = np.linspace(0, 0.5, 3 * k + 1)
    b = np.linspace(0.5, 1.0, 2 * k + 1)[1:]
    return np.concatenate([a, b])


@pytest.mark.parametrize("order", [1, 2])
def test_time_interpolation_has_the_order_of_the_scheme(tmp_path, order):
    """ρ(t, x) = e^{-2t} (2 + sin(3t + x)): between the steps the interpolation error shrinks like τ²
    (linear, order 1) or τ³ (quadratic through the nearest three steps, bdf2); it is 0 at the steps."""
    def rho(t, x):
        return np.exp(-2 * t) * (2 + np.sin(3 * t + x))

    errs = []
    for k in (4, 8, 16):
        ref = Reference(_synthetic(tmp_path / f"s{order}_{k}.npz", _steps(k), rho, order))
        for t in ref.step_times:
            assert np.array_equal(ref.nodal(t), rho(t, ref.x[:, 0]))
        tq = np.linspace(0, 1, 397)[1:-1]
        errs.append(max(np.max(np.abs(ref.nodal(t) - rho(t, ref.x[:, 0]))) for t in tq))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    expected = order + 1
    assert np.all(np.abs(rates - expected) < 0.35), (errs, rates)


def test_bdf2_reference_interpolates_a_finer_solve_at_second_order(solved):
    """Against the real solver: between the steps of a bdf2 solve at τ, the quadratic interpolant
    is as close to a solve at τ/4 as the stored steps themselves are (no loss of order in time)."""
    traj, paths = solved["1d"]
    ref = Reference(paths[".npz"])
    fine = _solve("fr-kl-gauss-1d", 16, 0.0125, "bdf2")
    at_steps = max(np.max(np.abs(ref.nodal(t) - fine.step_rho[np.argmin(np.abs(fine.step_times - t))]))
                   for t in ref.step_times)
    mid = [(a + b) / 2 for a, b in zip(ref.step_times[:-1], ref.step_times[1:])]
    between = max(np.max(np.abs(ref.nodal(t) - fine.step_rho[np.argmin(np.abs(fine.step_times - t))])) for t in mid)
    assert np.min(np.abs(fine.step_times[:, None] - np.array(mid)[None, :]), axis=0).max() < 1e-12
    assert between <= 1.5 * at_steps, (between, at_steps)


# --- (c) sampling ---------------------------------------------------------------------------------------

def _p1_cdf(x, u):
    h = np.diff(x)
    cum = np.concatenate([[0.0], np.cumsum(h * (u[1:] + u[:-1]) / 2)])

    def cdf(z):
        z = np.asarray(z, float)
        i = np.clip(np.searchsorted(x, z) - 1, 0, len(x) - 2)
        s = np.clip(z - x[i], 0, h[i])
        return (cum[i] + u[i] * s + 0.5 * (u[i + 1] - u[i]) / h[i] * s * s) / cum[-1]

    return cdf


def _uniform_in_cells(ref, t, n, rng):
    """A wrong sampler: cells by mass, but uniform inside each."""
    cm = ref.mesh.cell_masses(ref.nodal(t))
    c = rng.choice(len(cm), n, p=cm / cm.sum())
    lam = rng.dirichlet(np.ones(ref.dim + 1), n)
    return np.einsum("nk,nkd->nd", lam, ref.x[ref.cells[c]])


def test_samples_pass_ks_against_the_p1_density_in_1d(solved):
    """20 000 draws at t = 0.37 (between two bdf2 steps) against the exact CDF of the P1 density,
    computed here independently (piecewise quadratic); the uniform-in-cell sampler fails."""
    ref = Reference(solved["1d"][1][".npz"])
    t = 0.37
    cdf = _p1_cdf(ref.x[:, 0], ref.nodal(t))
    good = stats.kstest(ref.sample(t, 20_000, seed=1)[:, 0], cdf)
    bad = stats.kstest(_uniform_in_cells(ref, t, 20_000, np.random.default_rng(1))[:, 0], cdf)
    print(f"KS 1-D: P1 sampler D = {good.statistic:.4f}, p = {good.pvalue:.3f}; uniform-in-cell D = "
          f"{bad.statistic:.4f}, p = {bad.pvalue:.2e}")
    assert good.pvalue > 0.01 and bad.pvalue < 1e-4, (good, bad)
    assert np.array_equal(ref.sample(t, 100, seed=5), ref.sample(t, 100, seed=5))


def _chi2_subtriangles(ref, t, pts):
    """χ² of the counts in the 4 midpoint sub-triangles of every cell against their exact P1 masses
    (bins with expected count < 5 pooled): tests the law inside the cells, not only the cell masses."""
    u = ref.nodal(t)
    cell, lam, out = ref.mesh.locate(pts)
    assert not out.any()
    sub = np.where(lam.max(1) > 0.5, lam.argmax(1), 3)
    obs = np.bincount(cell * 4 + sub, minlength=4 * len(ref.cells))
    V = u[ref.cells]
    m01, m12, m02 = (V[:, 0] + V[:, 1]) / 2, (V[:, 1] + V[:, 2]) / 2, (V[:, 0] + V[:, 2]) / 2
    mass = np.stack([(V[:, 0] + m01 + m02) / 3, (V[:, 1] + m01 + m12) / 3, (V[:, 2] + m12 + m02) / 3,
                     (m01 + m12 + m02) / 3], 1) * (ref.mesh.volumes / 4)[:, None]
    exp = mass.ravel() / mass.sum() * len(pts)
    keep = exp >= 5
    return stats.chisquare(np.append(obs[keep], obs[~keep].sum()), np.append(exp[keep], exp[~keep].sum()))


def test_samples_pass_chi_square_over_subcells_in_2d(solved):
    ref = Reference(solved["2d"][1][".npz"])
    t = 0.55
    good = _chi2_subtriangles(ref, t, ref.sample(t, 20_000, seed=2))
    bad = _chi2_subtriangles(ref, t, _uniform_in_cells(ref, t, 20_000, np.random.default_rng(2)))
    print(f"chi2 2-D: P1 sampler {good.statistic:.1f}, p = {good.pvalue:.3f}; uniform-in-cell {bad.statistic:.1f}, "
          f"p = {bad.pvalue:.1e}")
    assert good.pvalue > 0.01 and bad.pvalue < 1e-6, (good, bad)


# --- (d) the doc example without dolfinx -------------------------------------------------------------------

def test_doc_example_runs_where_dolfinx_cannot_be_imported(solved, tmp_path):
    fake = tmp_path / "fake"
    for mod in ("dolfinx", "petsc4py", "mpi4py", "ufl"):
        (fake / mod).mkdir(parents=True)
        (fake / mod / "__init__.py").write_text(f"raise ImportError('{mod} is not available here (test)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    probe = subprocess.run([sys.executable, "-c", "import dolfinx"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not available here" in probe.stderr
    for suffix, path in solved["1d"][1].items():
        proc = subprocess.run([sys.executable, str(EXAMPLE), str(path), "--n", "2000"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "2000 samples" in proc.stdout and "dolfinx imported: False" in proc.stdout, proc.stdout


# --- (e) malformed files ----------------------------------------------------------------------------------

def _good_data(traj):
    return reference_data(traj, traj.space.gathered_cells(), traj.space.gather(traj.space.lumped_mass))


def test_malformed_files_are_one_line_errors(solved, tmp_path, capsys):
    traj, _ = solved["1d"]
    good = _good_data(traj)

    def variant(name, **changes):
        data = {**good, **changes}
        return write_atomic(tmp_path / f"{name}.npz", {k: v for k, v in data.items() if v is not None})

    neg = good["rho"].copy()
    neg[1, 3] = -1e-3
    nan = good["step_rho"].copy()
    nan[2, 0] = np.nan
    wrong_steps = good["step_rho"].copy()
    wrong_steps[-1] *= 1.01
    swapped = good["cells"].copy()
    swapped[[0, 5]] = swapped[[5, 0]][:, ::-1]
    swapped[0, 0] = 9
    cases = {
        "missing arrays": (variant("missing", step_rho=None, m=None), "missing entries m, step_rho"),
        "version": (variant("version", format_version=np.int64(7)), "format version 7 is not supported"),
        "not a reference": (None, "not a pdeflow reference file"),
        "shape": (variant("shape", rho=good["rho"][:, :-1]), "does not fit"),
        "nan": (variant("nan", step_rho=nan), "non-finite values in step_rho"),
        "negative": (variant("negative", rho=neg), "negative densities in rho"),
        "steps disagree": (variant("disagree", step_rho=wrong_steps), "differ from the stored steps"),
        "cells": (variant("cells", cells=swapped), "do not match the cells"),
        "order": (variant("order", time_order=np.int64(3)), "time_order 3"),
        "json": (variant("json", case="{oops"), "not valid JSON"),
        "strings": (variant("strings", x=np.array(["a", "b"])), "expected real numbers"),
        "text file": (None, "not a readable npz file"),
        "missing file": (tmp_path / "nope.npz", "no such file"),
        "suffix": (tmp_path / "ref.txt", "unknown reference format"),
        "directory": (None, "is a directory"),
    }
    plain = tmp_path / "plain.npz"
    np.savez(plain, t=np.zeros(3))
    cases["not a reference"] = (plain, cases["not a reference"][1])
    text = tmp_path / "text.npz"
    text.write_text("hello")
    cases["text file"] = (text, cases["text file"][1])
    (tmp_path / "dir.npz").mkdir()
    cases["directory"] = (tmp_path / "dir.npz", cases["directory"][1])
    particles = _particle_file(tmp_path)
    for name, (path, needle) in cases.items():
        with pytest.raises(ReferenceFileError) as info:
            Reference(path)
        assert needle in str(info.value) and "\n" not in str(info.value), (name, str(info.value))
        rc = main(["check", "fr-kl-gauss-1d", str(particles), "--reference", str(path), "--out",
                   str(tmp_path / "o"), "--quiet", "--no-plots"])
        err = capsys.readouterr().err.strip()
        if name == "directory":  # a directory goes to the loader of `pdeflow solve` outputs
            assert rc == 2 and "\n" not in err, err
            continue
        assert rc == 2 and err.startswith("pdeflow: error:") and "\n" not in err and needle in err, (name, err)


def test_error_estimates_between_snapshots_are_the_larger_neighbour(tmp_path):
    est = [{"t": t, "L1": l1, "L1_time": l1 / 2, "L1_space": l1 / 2, "mmd": {"0.3": l1 / 10, "0.9": l1 / 20}}
           for t, l1 in ((0.0, 0.0), (0.5, 2e-3), (1.0, 1e-3))]
    ref = Reference(_synthetic(tmp_path / "e.npz", _steps(2), lambda t, x: 1 + 0 * x, 1, estimates=est))
    assert ref.error_estimate(0.5) == est[1]
    mid = ref.error_estimate(0.7)
    assert mid["t"] == 0.7 and mid["L1"] == 2e-3 and mid["mmd"] == {"0.3": 2e-4, "0.9": 1e-4}
    assert ref.mmd_estimates([0.9, 0.3])[1].tolist() == [1e-4, 2e-4]
    with pytest.raises(ReferenceFileError, match="no valid MMD estimate at scale 3"):
        ref.mmd_estimates([3.0])
    with pytest.raises(ValueError, match="outside"):
        ref.error_estimate(1.2)


# --- CLI: export, check, approx, verify ----------------------------------------------------------------------

def _particle_file(tmp_path):
    out = tmp_path / "particles.npz"
    if not out.exists():
        script = ROOT / "docs" / "examples" / "particle_file" / "write_particles.py"
        proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    return out


def test_export_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    bad = {
        "directory": (["--out", str(tmp_path)], "is a directory"),
        "suffix": (["--out", str(tmp_path / "r.txt")], "unknown reference format"),
        "tol 0": (["--out", str(tmp_path / "r.npz"), "--tol", "0"], "--tol: expected a positive number"),
        "tol nan": (["--out", str(tmp_path / "r.npz"), "--tol", "nan"], "--tol: expected a positive number"),
        "tol inf": (["--out", str(tmp_path / "r.npz"), "--tol", "inf"], "--tol: expected a positive number"),
        "tol with n": (["--out", str(tmp_path / "r.npz"), "--tol", "1e-3", "--set", "n=40"], "--set n: with --tol"),
        "key": (["--out", str(tmp_path / "r.npz"), "--set", "lam=1"], "unknown key"),
        "budget": (["--out", str(tmp_path / "r.npz"), "--set", "n=3000000"], "exceed the budget"),
    }
    for name, (extra, needle) in bad.items():
        assert main(["export", "fr-kl-gauss-1d", *extra, "--quiet"]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, (name, err)
    assert not list(tmp_path.iterdir())
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anyway
            assert main(["export", "fr-kl-gauss-1d", "--set", "n=8", "--out", str(locked / "r.npz"), "--quiet"]) == 1
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and "Permission denied" in err, err
    finally:
        locked.chmod(0o700)
    assert main(["export", "fr-kl-gauss-1d", "--set", "n=8", "--out", "/proc/no/r.npz", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pdeflow: error: --out") and "\n" not in err, err
    assert not list(Path("/proc").glob(".r.npz.*"))


def test_export_cli_without_tol_writes_a_file_without_estimates(tmp_path, capsys):
    out = tmp_path / "sub" / "ref.npz"
    assert main(["export", "fr-kl-gauss-1d", "--set", "n=20", "--set", "tau=0.05", "--set", "scheme=bdf2",
                 "--out", str(out)]) == 0
    assert "exported 21 vertices" in capsys.readouterr().out
    ref = Reference(out)
    assert ref.params["n"] == 20 and ref.time_order == 2 and ref.estimates is None
    assert ref.provenance["command"].startswith("pdeflow export") and ref.provenance["tol"] is None
    assert [p.name for p in out.parent.iterdir()] == ["ref.npz"]  # no temporary file left behind
    # a file without estimates cannot serve check (its error is unknown): one line, exit 2
    assert main(["check", "fr-kl-gauss-1d", str(_particle_file(tmp_path)), "--reference", str(out),
                 "--quiet", "--no-plots", "--out", str(tmp_path / "c")]) == 2
    assert "no error estimates (export it with --tol)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def certified_file(tmp_path_factory):
    """`pdeflow export --tol` with the real certified solve (pdeflow.fem.certified)."""
    pytest.importorskip("pdeflow.fem.certified")
    out = tmp_path_factory.mktemp("cert") / "fr.npz"
    assert main(["export", "fr-kl-gauss-1d", "--tol", "1e-3", "--out", str(out), "--quiet"]) == 0
    return out


def test_export_with_tol_stores_the_certified_estimates(certified_file):
    ref = Reference(certified_file)
    assert ref.scheme == "bdf2" and ref.time_order == 2 and len(ref.estimates) == ref.times.size
    assert ref.provenance["tol"] == 1e-3 and "certified" in ref.provenance
    assert all(e["L1"] <= 1e-3 for e in ref.estimates)
    assert set(ref.estimates[1]["mmd"]) == {"0.3", "0.9", "3.0"}


def test_export_with_tol_calls_solve_certified(monkeypatch, tmp_path):
    """A stand-in for pdeflow.fem.certified.solve_certified: the CLI passes tol, comm, scheme='bdf2' and
    writes its trajectory, estimates and provenance."""
    import types

    from pdeflow.fem import certified

    calls = {}

    def fake(problem, tol, comm, scheme, progress, allow_large):
        calls.update(tol=tol, scheme=scheme, name=problem.name, allow_large=allow_large)
        traj = _solve(problem.name, 10, 0.1, "bdf2")
        est = [{"t": float(t), "L1": 1e-4, "L1_time": 5e-5, "L1_space": 5e-5,
                "mmd": {"0.3": 1e-5, "0.9": 1e-5, "3.0": 1e-5}} for t in traj.times]
        return types.SimpleNamespace(trajectory=traj, estimates=est, provenance={"stand-in": True})

    monkeypatch.setattr(certified, "solve_certified", fake)
    out = tmp_path / "r.npz"
    assert main(["export", "fr-kl-gauss-1d", "--tol", "2e-3", "--out", str(out), "--quiet"]) == 0
    assert calls == {"tol": 2e-3, "scheme": "bdf2", "name": "fr-kl-gauss-1d", "allow_large": False}
    ref = Reference(out)
    assert ref.provenance["certified"] == {"stand-in": True} and ref.error_estimate(0.3)["L1"] == 1e-4


def test_check_with_a_reference_file_gives_the_solved_verdict(certified_file, tmp_path, capsys):
    """The example particle file (exact FR reweighting) is consistent, shifted by 0.3 inconsistent — the
    same verdicts as the check that solves its own continuum (tests/unit/test_check.py)."""
    good = _particle_file(tmp_path)
    data = dict(np.load(good))
    data["x"] = np.clip(data["x"] + 0.3, -6, 6)
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, **data)
    verdicts = {}
    for label, path in (("good", good), ("shifted", shifted)):
        for how, extra in (("solved", []), ("file", ["--reference", str(certified_file)])):
            out = tmp_path / f"{label}-{how}"
            rc = main(["check", "fr-kl-gauss-1d", str(path), "--out", str(out), "--quiet", "--no-plots", *extra])
            summary = json.loads((out / "summary.json").read_text())
            verdicts[label, how] = (rc, summary["verdict"]["status"])
            if how == "file":
                assert summary["continuum"]["reference_file"] == str(certified_file)
                eps = [r["reference_error"] for r in summary["verdict"]["evidence"]["snapshots"]]
                ref = Reference(certified_file)
                assert np.allclose(eps, np.sqrt((ref.mmd_estimates([0.3, 0.9, 3.0]) ** 2).sum(1)))
    assert verdicts["good", "solved"] == verdicts["good", "file"] == (0, "consistent"), verdicts
    assert verdicts["shifted", "solved"] == verdicts["shifted", "file"] == (4, "inconsistent"), verdicts
    # another case, another continuum, --set n: one line, exit 2
    for extra, needle in ((["--set", "alpha=0.5"], "another case definition"),
                          (["--continuum", "stein:sigma=0.5"], "cannot stand for the continuum"),
                          (["--set", "n=50"], "--set n: the reference file fixes the mesh")):
        rc = main(["check", "fr-kl-gauss-1d", str(good), "--reference", str(certified_file), "--quiet", "--no-plots",
                   "--out", str(tmp_path / "x"), *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and needle in err, (extra, err)
    rc = main(["check", "wfr-kl-gauss-1d", str(good), "--reference", str(certified_file), "--quiet", "--no-plots",
               "--out", str(tmp_path / "x")])
    assert rc == 2 and "another case definition" in capsys.readouterr().err


def test_approx_accepts_a_reference_file(certified_file, tmp_path):
    out = tmp_path / "a"
    assert main(["approx", "fr-kl-gauss-1d", "--method", "template-fr", "--set", "n_particles=200",
                 "--reference", str(certified_file), "--out", str(out), "--quiet", "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"] == str(certified_file) and len(summary["snapshots"]) == 4


def test_verify_accepts_a_reference_file_as_the_flow_continuum(certified_file, tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["verify", "fr-kl-gauss-1d", "--method", "template-fr", "--plan", "quick", "--reference",
                 str(certified_file), "--out", str(out), "--quiet", "--no-plots"]) == 0
    ev = json.loads((out / "summary.json").read_text())["verdict"]["evidence"]
    assert ev["continuum"]["n"] == Reference(certified_file).params["n"] and ev["continuum"]["n_coarse"] is None
    assert "certified MMD estimates" in ev["reference_error"]["how"]
    rc = main(["verify", "fr-kl-gauss-1d", "--method", "template-fr", "--plan", "quick", "--reference",
               str(certified_file), "--continuum", "stein:sigma=0.5", "--out", str(tmp_path / "w"), "--quiet"])
    assert rc == 2 and "cannot stand for the continuum 'stein'" in capsys.readouterr().err
