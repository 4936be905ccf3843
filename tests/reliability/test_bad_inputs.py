"""Fault-injection corpus of malformed inputs (issue #14: no hangs, no tracebacks, nothing half-written).

Every entry is a genuinely malformed input.  Each must end with exit code 2 and exactly one stderr line
``pdeflow: error: ...`` that names the offending key or file, with no traceback; where the command
takes ``--out``, nothing may be written there.  The entries run in-process (``pdeflow.cli.main``)
except a few subprocess ones (non-UTF-8 bytes in argv).  Categories and their sizes (asserted by
``test_corpus_size`` so that the corpus cannot silently shrink):

1. ``CLI``: argv of every subcommand (cases, solve, approx, check, verify, methods, study, report,
   mesh): unknown cases/keys/methods/flags, wrong types, nan/inf/-inf/1e400, booleans for numbers,
   zero/negative values, the resource budget, keys a method does not use, malformed
   ``module:function`` / ``file.py:function`` specs and method files, invalid method results,
   ``--continuum``/``--alpha``/``--plan``/``--rtol``, ``--out`` that is a file, corrupt study stores — 169
2. ``SPEC``: study spec TOML files: syntax, encoding, unknown keys/tables, wrong types, non-finite
   and bool numbers, empty/huge sweeps and ladders, unknown case/method, keys the method lacks,
   duplicate labels, the resource budget — 63
3. ``INLINE``: ``[cases.NAME]`` tables: masses, means, variances, covariances (non-SPD), domains,
   flows, T, snapshots (unsorted, beyond T, negative), densities outside the domain, names — 54
4. ``PARTICLES``: particle files of ``pdeflow check``: not a zip, truncated, missing/unknown
   arrays, shapes, dtypes (complex, bool, strings, pickled objects — never unpickled), NaN/inf,
   weights, points outside the domain, times, empty file, a directory, a missing file — 43
5. ``REFERENCE``: ``--reference DIR`` of ``pdeflow approx``: a file, missing/corrupt/truncated
   files, missing arrays, shapes, dtypes, non-finite values, another case/flow/T — 44
6. ``SUBPROCESS``: non-UTF-8 bytes in argv, in a spec path and in an ``--out`` path that reaches
   the dolfinx import (whose logging init used to raise a TypeError on them) — 5

378 entries in all.

    .venv/bin/python -m pytest -q tests/reliability/test_bad_inputs.py --durations=10
"""
import copy
import json
import math
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pdeflow.cli import main

CASE = "fr-kl-gauss-1d"  # the case of the shared reference and particle file
TIMES = np.array([0.0, 0.25, 0.5, 1.0])
N = 60  # particles of the shared particle file


# ------------------------------------------------------------------------------------------
# shared inputs (one session: a coarse reference, method files, a particle file, study stores)
# ------------------------------------------------------------------------------------------
def _method(body: str, attrs: str = "") -> str:
    return (f"import numpy as np\n\n\ndef run(problem, params):\n" + "".join(f"    {line}\n" for line in body.splitlines())
            + attrs)


_T = "t = np.array(problem.snapshot_times())\nx = np.zeros((t.size, params.n_particles, 1))\n" \
     "w = np.full((t.size, params.n_particles), 1.0 / params.n_particles)\n"
METHOD_FILES = {
    "syntax.py": "def run(problem, params:\n    return None\n",
    "noncallable.py": "run = 3\n",
    "raises.py": "raise RuntimeError('boom at import')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "other.py": _method("return None").replace("def run(", "def other("),
    "notes.txt": "def run(problem, params):\n    return None\n",
    "badenc.py": b"NAME = '\xff\xfe not UTF-8'\n\n\ndef run(problem, params):\n    return None\n",
    "baduses.py": _method("return None", "run.uses = 'dt'\n"),
    "badusesfield.py": _method("return None", "run.uses = ('n_particles', 'colour')\n"),
    "refuseattr.py": _method("return None", "run.refuse = 3\n"),
    "refuseraises.py": _method("return None", "run.refuse = lambda problem, params: 1 / 0\n"),
    "refusenumber.py": _method("return None", "run.refuse = lambda problem, params: 42\n"),
    "contnum.py": _method("return None", "run.continuum = 5\n"),
    "contbogus.py": _method("return None", "run.continuum = 'bogus'\n"),
    "none.py": _method("return None"),
    "now.py": _method(_T + "return {'times': t, 'x': x}"),
    "nanx.py": _method(_T + "x[1, 0, 0] = np.nan\nreturn {'times': t, 'x': x, 'w': w}"),
    "wrongn.py": _method(_T + "return {'times': t, 'x': x[:, :-1], 'w': w[:, :-1]}"),
    "wrongtimes.py": _method(_T + "return {'times': 2 * t, 'x': x, 'w': w}"),
    "outside.py": _method(_T + "return {'times': t, 'x': x + 100.0, 'w': w}"),
    "negw.py": _method(_T + "w[2, 3] = -1.0\nreturn {'times': t, 'x': x, 'w': w}"),
}

VALID_SPEC = {
    "study": {"name": "bad", "case": CASE, "T": 0.5},
    "group": [
        {"label": "h", "kind": "reference", "n": [8, 16], "tau": 0.1},
        {"label": "N", "kind": "approx", "method": "template-fr", "n_particles": [20, 40],
         "reference": {"n": 16, "tau": 0.1}},
    ],
}
INLINE_CASE = {"domain": {"lower": [-6.0], "upper": [6.0]}, "target": {"mean": [0.0], "variance": 1.0},
               "initial": {"mean": [1.0], "variance": 0.5}, "flow": {"alpha": 0.0, "beta": 1.0}, "T": 0.5,
               "snapshots": [0.25, 0.5]}
VALID_INLINE = {"study": {"name": "inline", "case": "mine"}, "cases": {"mine": INLINE_CASE},
                "group": [{"label": "h", "kind": "reference", "n": [8, 16], "tau": 0.1}]}


def _particles():
    rng = np.random.default_rng(0)
    x0 = np.clip(rng.normal(1.0, 0.7, N), -5.9, 5.9)
    return TIMES.copy(), np.repeat(x0[None, :, None], TIMES.size, axis=0), np.full((TIMES.size, N), 1.0 / N)


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    ref = root / "ref"
    assert main(["solve", CASE, "--set", "n=40", "--set", "tau=0.05", "--out", str(ref), "--quiet", "--no-xdmf",
                 "--no-plots"]) == 0
    methods = root / "methods"
    methods.mkdir()
    for name, text in METHOD_FILES.items():
        (methods / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    t, x, w = _particles()
    np.savez(root / "particles.npz", t=t, x=x, w=w)
    (root / "a-file").write_text("not a directory\n")
    spec = root / "valid.toml"
    spec.write_text(_toml(VALID_SPEC))
    stores = {}
    for name, make in (("garbage", lambda p: p.write_text("not a database\n")), ("empty", lambda p: p.write_bytes(b"")),
                       ("dir", lambda p: p.mkdir()), ("notables", _sqlite_without_tables)):
        (root / f"store-{name}").mkdir()
        make(root / f"store-{name}" / "study.sqlite")
        stores[f"store_{name}"] = root / f"store-{name}"
    return {"root": root, "ref": ref, "m": methods, "pf": root / "particles.npz", "file": root / "a-file",
            "spec": spec, **stores}


def _sqlite_without_tables(path):
    con = sqlite3.connect(str(path))
    con.execute("CREATE TABLE colours (name TEXT)")
    con.commit()
    con.close()


@pytest.fixture(autouse=True)
def _restore_case_registry():
    """Inline [cases.NAME] tables register their case in the process: leave the registry as found."""
    from pdeflow import cases

    saved = dict(cases._REGISTRY)
    yield
    cases._REGISTRY.clear()
    cases._REGISTRY.update(saved)


def _listing(path: Path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


QUIET_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _refused(capsys, argv, needle, out=None, watch=()):
    """Run ``pdeflow argv`` in-process and assert the contract of a refused input."""
    capsys.readouterr()
    before = {p: _listing(p) for p in watch}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main([str(a) for a in argv])
    # outside pytest these would be more lines on stderr (the categories Python shows by default)
    shown = [w for w in caught if not issubclass(w.category, QUIET_WARNINGS)]
    assert not shown, [f"{w.category.__name__}: {w.message}" for w in shown]
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err, captured.err
    assert rc == 2, f"exit {rc}, stderr: {captured.err!r}"
    assert err.startswith("pdeflow: error:") and "\n" not in err, captured.err
    assert needle in err, f"{needle!r} not in {err!r}"
    if out is not None:
        assert not Path(out).exists(), f"{out} written for a refused input: {_listing(Path(out))}"
    for p, listing in before.items():
        assert _listing(p) == listing, f"{p} changed for a refused input"


# ------------------------------------------------------------------------------------------
# 1. CLI argv
# ------------------------------------------------------------------------------------------
OUT_COMMANDS = {"solve": ["--quiet", "--no-plots", "--no-xdmf"], "approx": ["--quiet", "--no-plots"],
                "check": ["--quiet", "--no-plots"], "verify": ["--quiet", "--no-plots"], "study": ["--quiet"]}


def C(id_, args, needle):
    return pytest.param(args, needle, id=id_)


W1 = "approx w-kl-gauss-1d"
WFR1 = "approx wfr-kl-gauss-1d"
FR1 = f"approx {CASE}"
EXT = f"{FR1} --method {{m}}"
RES = "--reference {ref} --set n_particles=20"
CLI = [
    # solve
    C("solve-unknown-case", "solve fr-kl-gauss-9d", "unknown case 'fr-kl-gauss-9d'"),
    C("solve-empty-case", ["solve", ""], "unknown case ''"),
    C("solve-tau-nan", "solve wfr-kl-gauss-1d --set tau=nan", "tau:"),
    C("solve-tau-inf", "solve wfr-kl-gauss-1d --set tau=inf", "tau:"),
    C("solve-tau-minus-inf", "solve wfr-kl-gauss-1d --set tau=-inf", "tau:"),
    C("solve-tau-1e400", "solve wfr-kl-gauss-1d --set tau=1e400", "tau:"),
    C("solve-tau-bool", "solve wfr-kl-gauss-1d --set tau=true", "tau:"),
    C("solve-n-bool", "solve wfr-kl-gauss-1d --set n=false", "n:"),
    C("solve-n-zero", "solve wfr-kl-gauss-1d --set n=0", "n:"),
    C("solve-n-negative", "solve wfr-kl-gauss-1d --set n=-3", "n:"),
    C("solve-n-1e400", "solve wfr-kl-gauss-1d --set n=1e400", "n:"),
    C("solve-n-nan", "solve wfr-kl-gauss-1d --set n=nan", "n:"),
    C("solve-T-zero", "solve wfr-kl-gauss-1d --set T=0", "T:"),
    C("solve-T-minus-inf", "solve wfr-kl-gauss-1d --set T=-inf", "T:"),
    C("solve-beta-nan", "solve wfr-kl-gauss-1d --set beta=nan", "beta:"),
    C("solve-alpha-1e400", "solve wfr-kl-gauss-1d --set alpha=1e400", "alpha:"),
    C("solve-newton-tol-zero", "solve wfr-kl-gauss-1d --set newton_tol=0", "newton_tol:"),
    C("solve-newton-tol-one", "solve wfr-kl-gauss-1d --set newton_tol=1", "newton_tol:"),
    C("solve-newton-max-it-zero", "solve wfr-kl-gauss-1d --set newton_max_it=0", "newton_max_it:"),
    C("solve-newton-max-it-fraction", "solve wfr-kl-gauss-1d --set newton_max_it=2.5", "newton_max_it:"),
    C("solve-tau-min-negative", "solve wfr-kl-gauss-1d --set tau_min=-1", "tau_min:"),
    C("solve-tau-min-zero", "solve wfr-kl-gauss-1d --set tau_min=0", "tau_min:"),
    C("solve-tau-min-inf", "solve wfr-kl-gauss-1d --set tau_min=inf", "tau_min"),
    C("solve-solver-unknown", "solve wfr-kl-gauss-1d --set solver=lu", "solver:"),
    C("solve-scheme-empty", "solve wfr-kl-gauss-1d --set scheme=", "scheme:"),
    C("solve-method-key", "solve wfr-kl-gauss-1d --set lam=0.1", "unknown key 'lam'"),
    C("solve-empty-key", "solve wfr-kl-gauss-1d --set ==", "unknown key ''"),
    C("solve-budget-2d", "solve wfr-kl-gauss-2d --set n=3000", "mesh vertices"),
    C("solve-budget-3d", "solve wfr-kl-gauss-3d --set n=130", "mesh vertices"),
    C("solve-budget-steps", "solve wfr-kl-gauss-1d --set tau=1e-7", "time steps"),
    C("solve-out-is-a-file", "solve wfr-kl-gauss-1d --set n=8 --out {file}", "--out"),
    C("solve-unknown-flag", "solve wfr-kl-gauss-1d --fast", "unrecognized arguments: --fast"),
    C("solve-allow-large-bad-n", "solve wfr-kl-gauss-1d --allow-large --set n=1", "n:"),
    # approx: keys the method does not use (they used to be accepted and ignored)
    C("approx-svgd-lam", f"{W1} --method svgd --set lam=0.1", "--set lam: method svgd does not use lam"),
    C("approx-svgd-xi", f"{W1} --method svgd --set xi=b", "--set xi"),
    C("approx-template-sigma", f"{FR1} --method template-fr --set sigma=0.3", "--set sigma"),
    C("approx-template-bandwidth", f"{FR1} --method template-fr --set bandwidth=0.3", "--set bandwidth"),
    C("approx-template-dt", f"{FR1} --method template-fr --set dt=0.1", "--set dt"),
    C("approx-template-kernel", f"{FR1} --method template-fr --set kernel=imq", "--set kernel"),
    C("approx-smc-kernel", f"{WFR1} --method smc-wfr --set kernel=imq", "--set kernel"),
    C("approx-birth-death-lam", f"{WFR1} --method birth-death --set lam=1e-3", "--set lam"),
    C("approx-mmd-xi", f"{W1} --method mmd-flow --set xi=c", "--set xi"),
    C("approx-key-of-another-method", f"{W1} --method svgd --set variant=weighted", "unknown key 'variant'"),
    # approx: values
    C("approx-lambda-fr-integrator", f"{FR1} --method lambda-fr --set integrator=euler", "integrator:"),
    C("approx-lambda-fr-kde-negative", f"{FR1} --method lambda-fr --set kde_bandwidth=-1", "kde_bandwidth:"),
    C("approx-bd-ess-zero", f"{WFR1} --method birth-death --set ess_threshold=0", "ess_threshold:"),
    C("approx-bd-ess-nan", f"{WFR1} --method birth-death --set ess_threshold=nan", "ess_threshold:"),
    C("approx-mmd-n-target-one", f"{W1} --method mmd-flow --set n_target=1", "n_target:"),
    C("approx-mmd-noise-inf", f"{W1} --method mmd-flow --set noise=inf", "noise:"),
    C("approx-svgd-rtol-tiny", f"{W1} --method svgd --set rtol=1e-20", "rtol:"),
    C("approx-svgd-atol-bool", f"{W1} --method svgd --set atol=true", "atol:"),
    C("approx-svgd-median-number", f"{W1} --method svgd --set median=2", "median:"),
    C("approx-n-particles-fraction", f"{FR1} --method template-fr --set n_particles=2.5", "n_particles:"),
    C("approx-n-particles-negative", f"{FR1} --method template-fr --set n_particles=-5", "n_particles:"),
    C("approx-n-particles-bool", f"{FR1} --method template-fr --set n_particles=false", "n_particles:"),
    C("approx-sigma-zero", f"{FR1} --method lambda-fr --set sigma=0", "sigma:"),
    C("approx-sigma-minus-inf", f"{FR1} --method lambda-fr --set sigma=-inf", "sigma:"),
    C("approx-lam-nan", f"{FR1} --method lambda-fr --set lam=nan", "lam:"),
    C("approx-lam-inf", f"{FR1} --method lambda-fr --set lam=inf", "lam:"),
    C("approx-dt-bool", f"{FR1} --method lambda-fr --set dt=true", "dt:"),
    C("approx-dt-negative", f"{FR1} --method lambda-fr --set dt=-0.01", "dt:"),
    C("approx-seed-fraction", f"{FR1} --method template-fr --set seed=1.5", "seed:"),
    C("approx-seed-inf", f"{FR1} --method template-fr --set seed=inf", "seed:"),
    C("approx-kernel-empty", f"{FR1} --method lambda-fr --set kernel=", "kernel:"),
    C("approx-sigma-and-bandwidth", f"{FR1} --method lambda-fr --set sigma=1 --set bandwidth=1", "sigma/bandwidth"),
    C("approx-unknown-method", f"{W1} --method svgd2", "unknown method 'svgd2'"),
    C("approx-method-case-sensitive", f"{W1} --method SVGD", "unknown method 'SVGD'"),
    C("approx-budget-particles", f"{FR1} --method lambda-fr --set n_particles=2000000", "particles"),
    C("approx-budget-dt", f"{W1} --method svgd --set dt=1e-7", "particle steps"),
    C("approx-budget-reference-mesh", f"{FR1} --method template-fr --set n=10000000", "mesh vertices"),
    C("approx-reference-tau-zero", f"{FR1} --method template-fr --set tau=0", "tau:"),
    C("approx-refused-geometry-lambda-fr", f"{W1} --method lambda-fr", "beta = 0"),
    C("approx-refused-geometry-template", f"{W1} --method template-fr", "template-fr"),
    C("approx-out-is-a-file", f"{FR1} --method template-fr --out {{file}}", "--out"),
    C("approx-missing-method", f"{FR1}", "--method"),
    # approx: external method specs and files
    C("ext-syntax-error", f"{EXT}/syntax.py:run", "SyntaxError"),
    C("ext-not-callable", f"{EXT}/noncallable.py:run", "'run' is not callable"),
    C("ext-raises-on-import", f"{EXT}/raises.py:run", "boom at import"),
    C("ext-exits-on-import", f"{EXT}/exits.py:run", "SystemExit"),
    C("ext-missing-function", f"{EXT}/other.py:run", "no attribute 'run'"),
    C("ext-missing-file", f"{EXT}/missing.py:run", "no file"),
    C("ext-directory", f"{EXT}:run", "no file"),
    C("ext-empty-module", f"{FR1} --method :run", "expected package.module:function"),
    C("ext-empty-function", f"{EXT}/none.py:", "expected package.module:function"),
    C("ext-bad-function-name", f"{EXT}/none.py:1run", "expected package.module:function"),
    C("ext-module-attribute-not-callable", f"{FR1} --method math:pi", "'pi' is not callable"),
    C("ext-no-module", f"{FR1} --method no_such_module_pdeflow:run", "not found"),
    C("ext-not-python", f"{EXT}/notes.txt:run", "not a Python file"),
    C("ext-bad-encoding", f"{EXT}/badenc.py:run", "importing it failed"),
    C("ext-uses-string", f"{EXT}/baduses.py:run", "'uses'"),
    C("ext-uses-unknown-field", f"{EXT}/badusesfield.py:run", "'uses'"),
    C("ext-refuse-not-callable", f"{EXT}/refuseattr.py:run", "'refuse'"),
    C("ext-refuse-raises", f"{EXT}/refuseraises.py:run", "refuse() raised ZeroDivisionError"),
    C("ext-refuse-returns-number", f"{EXT}/refusenumber.py:run", "refuse() returned int"),
    C("ext-continuum-number", f"{EXT}/contnum.py:run", "continuum"),
    C("ext-continuum-unknown", f"{EXT}/contbogus.py:run", "unknown continuum 'bogus'"),
    C("ext-key-not-identifier", f"{EXT}/none.py:run --set 1abc=3", "'1abc' is not a valid key name"),
    C("ext-key-nan", f"{EXT}/none.py:run --set foo=nan", "foo: value 'nan' is not finite"),
    C("ext-key-minus-inf", f"{EXT}/none.py:run --set foo=-inf", "foo:"),
    C("ext-key-1e400", f"{EXT}/none.py:run --set foo=1e400", "foo:"),
    C("ext-key-inf-in-list", ["approx", CASE, "--method", "{m}/none.py:run", "--set", "foo=[1, 1e400]"], "foo:"),
    C("ext-budget-particles", f"{EXT}/none.py:run --set n_particles=5000000", "particles"),
    # approx: an external method's result, refused at the edge (with a reused reference: no FE solve)
    C("ext-returns-none", f"{EXT}/none.py:run {RES}", "returned NoneType"),
    C("ext-returns-dict-without-w", f"{EXT}/now.py:run {RES}", "without 'w'"),
    C("ext-returns-nan-positions", f"{EXT}/nanx.py:run {RES}", "non-finite value(s) in x"),
    C("ext-returns-wrong-n", f"{EXT}/wrongn.py:run {RES}", "expected n_particles = 20"),
    C("ext-returns-wrong-times", f"{EXT}/wrongtimes.py:run {RES}", "snapshot times"),
    C("ext-returns-outside", f"{EXT}/outside.py:run {RES}", "outside the domain"),
    C("ext-returns-negative-weights", f"{EXT}/negw.py:run {RES}", "negative weight"),
    C("ext-returns-none-solved-reference", f"{EXT}/none.py:run --set n=20 --set tau=0.1 --set n_particles=20",
      "returned NoneType"),
    # check
    C("check-alpha-zero", f"check {CASE} {{pf}} --alpha 0", "--alpha"),
    C("check-alpha-negative", f"check {CASE} {{pf}} --alpha -0.5", "--alpha"),
    C("check-alpha-1e400", f"check {CASE} {{pf}} --alpha 1e400", "--alpha"),
    C("check-alpha-text", f"check {CASE} {{pf}} --alpha abc", "--alpha"),
    C("check-continuum-nan", f"check {CASE} {{pf}} --continuum stein:sigma=nan", "sigma: value 'nan' is not finite"),
    C("check-continuum-negative-sigma", f"check {CASE} {{pf}} --continuum stein:sigma=-1", "sigma"),
    C("check-continuum-flow-params", f"check {CASE} {{pf}} --continuum flow:n=3", "no parameters"),
    C("check-continuum-unknown-param", f"check {CASE} {{pf}} --continuum lambda-fr:colour=red", "colour"),
    C("check-continuum-empty-name", f"check {CASE} {{pf}} --continuum :", "unknown continuum ''"),
    C("check-continuum-bad-kernel", f"check {CASE} {{pf}} --continuum stein:kernel=rbf,sigma=0.5", "kernel"),
    C("check-continuum-empty", ["check", CASE, "{pf}", "--continuum", ""], "--continuum"),
    C("check-set-n-one", f"check {CASE} {{pf}} --set n=1", "n:"),
    C("check-set-budget", f"check {CASE} {{pf}} --set n=5000000", "mesh vertices"),
    C("check-set-scheme", f"check {CASE} {{pf}} --set scheme=hellinger-jko", "check takes only n"),
    C("check-set-T-nan", f"check {CASE} {{pf}} --set T=nan", "T:"),
    C("check-set-method-key", f"check {CASE} {{pf}} --set sigma=0.5", "unknown key 'sigma'"),
    C("check-out-is-a-file", f"check {CASE} {{pf}} --out {{file}}", "--out"),
    C("check-unknown-case", "check no-such-case {pf}", "unknown case"),
    C("check-missing-file-argument", f"check {CASE}", "particles"),
    # verify
    C("verify-plan-empty", ["verify", "w-kl-gauss-1d", "--method", "svgd", "--plan", ""], "--plan"),
    C("verify-plan-uppercase", "verify w-kl-gauss-1d --method svgd --plan QUICK", "--plan"),
    C("verify-rtol-one", "verify w-kl-gauss-1d --method svgd --rtol 1", "--rtol"),
    C("verify-rtol-negative", "verify w-kl-gauss-1d --method svgd --rtol -0.1", "--rtol"),
    C("verify-rtol-inf", "verify w-kl-gauss-1d --method svgd --rtol inf", "--rtol"),
    C("verify-n-particles", f"verify {CASE} --method template-fr --set n_particles=50 --plan quick", "n_particles"),
    C("verify-svgd-lam", "verify w-kl-gauss-1d --method svgd --set lam=0.1 --plan quick", "--set lam"),
    C("verify-template-dt", f"verify {CASE} --method template-fr --set dt=0.1", "--set dt"),
    C("verify-continuum-zero-sigma",
      "verify w-kl-gauss-1d --method svgd --set sigma=0.5 --plan quick --continuum stein:sigma=0", "sigma"),
    C("verify-continuum-unknown", f"verify {CASE} --method template-fr --continuum bogus:x=1", "unknown continuum"),
    C("verify-set-n-one", f"verify {CASE} --method template-fr --set n=1", "n:"),
    C("verify-out-is-a-file", f"verify {CASE} --method template-fr --plan quick --out {{file}}", "--out"),
    C("verify-unknown-method", f"verify {CASE} --method nope", "unknown method 'nope'"),
    C("verify-refused-geometry", "verify hk-kl-gauss-1d --method svgd", "beta"),
    C("verify-ext-refuse-raises", f"verify {CASE} --method {{m}}/refuseraises.py:run", "refuse() raised"),
    # study
    C("study-missing-spec", "study {root}/no-such-spec.toml", "no-such-spec.toml"),
    C("study-spec-is-a-directory", "study {root}", "Is a directory"),
    C("study-ranks-per-run-negative", "study {spec} --ranks-per-run -3", "--ranks-per-run"),
    C("study-ranks-per-run-fraction", "study {spec} --ranks-per-run 1.5", "--ranks-per-run"),
    C("study-out-is-a-file", "study {spec} --out {file}", "--out"),
    C("study-resume-corrupt-store", "study {spec} --out {store_garbage} --resume", "study.sqlite"),
    C("study-existing-store", "study {spec} --out {store_garbage}", "already holds a study"),
    # report
    C("report-missing-dir", "report {root}/no-such-study", "no study.sqlite"),
    C("report-a-file", "report {file}", "no study.sqlite"),
    C("report-garbage-store", "report {store_garbage}", "not an SQLite database"),
    C("report-empty-store", "report {store_empty}", "empty file"),
    C("report-store-is-a-directory", "report {store_dir}", "not a file"),
    C("report-sqlite-without-tables", "report {store_notables}", "without the tables"),
    # mesh
    C("mesh-unknown", "mesh torus", "unknown mesh 'torus'"),
    C("mesh-n-zero", "mesh disk --n 0", "resolution n"),
    C("mesh-n0-one", "mesh disk --n0 1", "--n0"),
    C("mesh-levels-negative", "mesh disk --levels -2", "--levels"),
    C("mesh-n-text", "mesh disk --n abc", "--n"),
    C("mesh-budget", "mesh disk --n 100000", "budget"),
    C("mesh-levels-huge", "mesh disk --levels 1000000000", "--levels"),
    C("mesh-levels-beyond-budget", "mesh disk --levels 20", "budget"),
    # cases, methods, no command
    C("cases-unknown-flag", "cases --yaml", "unrecognized arguments"),
    C("methods-positional", "methods svgd", "unrecognized arguments"),
    C("no-command", [], "required"),
    C("unknown-command", "simulate", "invalid choice"),
]


@pytest.mark.parametrize("args,needle", CLI)
def test_cli(capsys, tmp_path, inputs, args, needle):
    paths = {k: str(v) for k, v in inputs.items()}
    out = tmp_path / "out"
    argv = [a.format(**paths) for a in (shlex.split(args) if isinstance(args, str) else args)]
    command = argv[0] if argv else None
    given_out = "--out" in argv
    if command in OUT_COMMANDS:
        argv += OUT_COMMANDS[command] + ([] if given_out else ["--out", str(out)])
    watch = [inputs["store_garbage"]] if "{store_garbage}" in str(args) else []
    _refused(capsys, argv, needle, out=None if given_out else out, watch=watch)


# ------------------------------------------------------------------------------------------
# 2. study specs (TOML) and 3. inline cases
# ------------------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k) -> str:
    return k if _BARE.fullmatch(k) else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _toml(data: dict) -> str:
    """A spec dict as TOML: [study], [[group]] and [cases.NAME] tables, inline tables below them."""
    head, body = [], []
    for top, val in data.items():
        rows = lambda d: [f"{_key(k)} = {_value(x)}" for k, x in d.items()]  # noqa: E731
        if top == "group" and isinstance(val, list) and val and all(isinstance(g, dict) for g in val):
            for g in val:
                body += ["[[group]]", *rows(g), ""]
        elif top == "cases" and isinstance(val, dict) and val and all(isinstance(c, dict) for c in val.values()):
            for name, c in val.items():
                body += [f"[cases.{_key(name)}]", *rows(c), ""]
        elif isinstance(val, dict):
            body += [f"[{_key(top)}]", *rows(val), ""]
        else:
            head.append(f"{_key(top)} = {_value(val)}")
    return "\n".join(head + [""] + body)


def _set(*path_value):
    *path, value = path_value

    def edit(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _del(*path):
    def edit(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return edit


def _both(*edits):
    def edit(data):
        for e in edits:
            e(data)
    return edit


def S(id_, edit, needle):
    """An edit of VALID_SPEC (a callable), or the raw file content (str or bytes)."""
    return pytest.param(edit, needle, id=id_)


NAN, INF = float("nan"), float("inf")
G0, G1 = ("group", 0), ("group", 1)
SPEC = [
    # syntax and encoding (the message names the file)
    S("syntax-unterminated-string", '[study]\nname = "bad\n', "invalid TOML"),
    S("syntax-duplicate-key", '[study]\nname = "a"\nname = "b"\n', "invalid TOML"),
    S("syntax-duplicate-table", '[study]\nname = "a"\n[study]\ncase = "x"\n', "invalid TOML"),
    S("syntax-bad-escape", '[study]\nname = "a\\q"\n', "invalid TOML"),
    S("syntax-missing-value", "[study]\nname =\n", "invalid TOML"),
    S("syntax-json", '{"study": {"name": "x"}}', "invalid TOML"),
    S("not-utf8", b'[study]\nname = "\xff"\n', "cannot read the spec"),
    S("binary-garbage", bytes(range(256)), "cannot read the spec"),
    S("empty-file", "", "study: missing"),
    S("only-comments", "# nothing here\n", "study: missing"),
    S("study-is-an-array", '[[study]]\nname = "x"\n', "study: expected"),
    # unknown keys and tables
    S("unknown-top-key", _set("groups", {"label": "x"}), "groups: unknown key"),
    S("unknown-study-key", _set("study", "allow-large", True), "study.allow-large"),
    S("ranks-per-run-in-spec", _set("study", "ranks_per_run", 2), "study.ranks_per_run"),
    S("reference-group-sigma", _set(*G0, "sigma", 0.5), "group[0].sigma"),
    S("reference-group-extra", _set(*G0, "extra", {"variant": "weighted"}), "group[0].extra"),
    S("extra-of-method-without-keys", _set(*G1, "extra", {"variant": "weighted"}), "group[1].extra.variant"),
    S("extra-not-a-table", _set(*G1, "extra", 5), "group[1].extra"),
    # types
    S("name-number", _set("study", "name", 3), "study.name"),
    S("name-empty", _set("study", "name", ""), "study.name"),
    S("name-with-slash", _set("study", "name", "a/b"), "study.name"),
    S("case-number", _set("study", "case", 1), "study.case"),
    S("metrics-string", _set("study", "metrics", "L1"), "study.metrics"),
    S("fit-range-one-index", _set("study", "fit_range", [0]), "study.fit_range"),
    S("T-string", _set("study", "T", "1"), "study.T"),
    S("T-nan", _set("study", "T", NAN), "study.T"),
    S("T-inf", _set("study", "T", INF), "study.T"),
    S("T-bool", _set("study", "T", True), "study.T"),
    S("reference-not-a-table", _set("study", "reference", 5), "study.reference"),
    S("reference-tau-nan", _set("study", "reference", {"n": 16, "tau": NAN}), "study.reference.tau"),
    S("reference-n-bool", _set("study", "reference", {"n": True, "tau": 0.1}), "study.reference.n"),
    S("allow-large-string", _set("study", "allow_large", "yes"), "study.allow_large"),
    S("allow-large-integer", _set("study", "allow_large", 1), "study.allow_large"),
    S("group-table-not-array", _set("group", {"label": "h", "kind": "reference", "n": 8, "tau": 0.1}), "group"),
    S("n-nan", _set(*G0, "n", NAN), "group[0].n"),
    S("n-inf", _set(*G0, "n", INF), "group[0].n"),
    S("n-empty-list", _set(*G0, "n", []), "group[0].n"),
    S("n-string-in-list", _set(*G0, "n", [8, "16"]), "group[0].n[1]"),
    S("tau-nan-in-list", _set(*G0, "tau", [0.1, NAN]), "group[0].tau[1]"),
    S("tau-ladder-start-nan", _set(*G0, "tau", {"start": NAN, "factor": 0.5, "levels": 3}), "group[0].tau.start"),
    S("tau-ladder-levels-bool", _set(*G0, "tau", {"start": 0.1, "factor": 0.5, "levels": True}),
      "group[0].tau.levels"),
    S("alpha-nan", _set(*G0, "alpha", NAN), "group[0].alpha"),
    S("beta-bool", _set(*G0, "beta", True), "group[0].beta"),
    S("flow-would-not-move", _set(*G0, "beta", 0.0), "group[0].beta"),
    S("seeds-bool", _set(*G1, "seeds", True), "group[1].seeds"),
    S("seeds-fraction", _set(*G1, "seeds", 2.5), "group[1].seeds"),
    # huge sweeps: they used to hang for minutes, overflow or start a study of 2e5 runs
    S("tau-ladder-huge-levels", _set(*G0, "tau", {"start": 0.1, "factor": 0.5, "levels": 1000000000}),
      "group[0].tau.levels"),
    S("n-ladder-huge-levels", _set(*G0, "n", {"start": 8, "factor": 2, "levels": 1000000000}), "group[0].n.levels"),
    S("n-ladder-overflow", _set(*G0, "n", {"start": 8, "factor": 1e10, "levels": 40}), "group[0].n"),
    S("lam-ladder-huge-levels", _both(_set(*G1, "method", "lambda-fr"),
                                      _set(*G1, "lam", {"start": 0.1, "factor": 0.5, "levels": 1000000000})),
      "group[1].lam.levels"),
    S("seeds-huge", _set(*G1, "seeds", 1000000000), "group[1]"),
    S("seeds-beyond-run-budget", _set(*G1, "seeds", 100000), "runs exceed the budget"),
    S("budget-mesh", _set(*G0, "n", [8, 3000000]), "mesh vertices"),
    S("budget-particles", _set(*G1, "n_particles", [20, 2000000]), "particles"),
    S("budget-steps", _set(*G0, "tau", 1e-8), "time steps"),
    # cases, methods, keys the method lacks, labels
    S("unknown-case", _set(*G0, "case", "fr-kl-gauss-9d"), "group[0].case"),
    S("unknown-method", _set(*G1, "method", "langevin"), "group[1].method"),
    S("method-file-missing", _set(*G1, "method", "no/such/file.py:run"), "group[1].method"),
    S("sweep-over-unused-sigma", _set(*G1, "sigma", [0.1, 0.2]), "group[1].sigma: method template-fr does not use"),
    S("svgd-lam-sweep", _both(_set(*G1, "case", "w-kl-gauss-1d"), _set(*G1, "method", "svgd"),
                              _set(*G1, "lam", [0.1, 0.01])), "group[1].lam"),
    S("duplicate-label", _set(*G1, "label", "h"), "group[1].label"),
    S("blank-label", _set(*G1, "label", "   "), "group[1].label"),
    S("label-number", _set(*G1, "label", 7), "group[1].label"),
]


def _case_edit(key, value=...):
    def edit(data):
        case = data["cases"]["mine"]
        if value is ...:
            del case[key]
        else:
            case[key] = value
    return edit


def I(id_, key, value, needle):  # noqa: E743
    edit = key if callable(key) else _case_edit(key, value)
    return pytest.param(edit, needle, id=id_)


D2 = {"lower": [-3.0, -3.0], "upper": [3.0, 3.0]}


def _two_d(target):
    def edit(data):
        data["cases"]["mine"].update(domain=D2, target=target, initial={"mean": [0.0, 0.0], "variance": 1.0})
    return edit


def _cases(value):
    def edit(data):
        data["cases"] = value(data["cases"]["mine"]) if callable(value) else value
    return edit


INLINE = [
    I("target-mass-inf", "target", {"mean": [0.0], "variance": 1.0, "mass": INF}, "cases.mine.target.mass"),
    I("target-mass-nan", "target", {"mean": [0.0], "variance": 1.0, "mass": NAN}, "cases.mine.target.mass"),
    I("target-mass-bool", "target", {"mean": [0.0], "variance": 1.0, "mass": True}, "cases.mine.target.mass"),
    I("target-mass-zero", "target", {"mean": [0.0], "variance": 1.0, "mass": 0.0}, "cases.mine.target.mass"),
    I("initial-mass-negative", "initial", {"mean": [1.0], "variance": 0.5, "mass": -1.0}, "cases.mine.initial.mass"),
    I("mean-inf", "initial", {"mean": [INF], "variance": 0.5}, "cases.mine.initial.mean"),
    I("mean-string", "target", {"mean": "0", "variance": 1.0}, "cases.mine.target.mean"),
    I("mean-wrong-length", "target", {"mean": [0.0, 1.0], "variance": 1.0}, "cases.mine.target.mean"),
    I("mean-missing", "target", {"variance": 1.0}, "cases.mine.target"),
    I("variance-zero", "target", {"mean": [0.0], "variance": 0.0}, "cases.mine.target.variance"),
    I("variance-nan", "target", {"mean": [0.0], "variance": NAN}, "cases.mine.target.variance"),
    I("variance-bool", "initial", {"mean": [1.0], "variance": False}, "cases.mine.initial.variance"),
    I("variance-denormal", "target", {"mean": [0.0], "variance": 1e-320}, "cases.mine.target"),
    I("variance-and-cov", "target", {"mean": [0.0], "variance": 1.0, "cov": [[1.0]]}, "cases.mine.target"),
    I("cov-negative", "target", {"mean": [0.0], "cov": [[-1.0]]}, "cases.mine.target.cov"),
    I("cov-inf", "target", {"mean": [0.0], "cov": [[INF]]}, "cases.mine.target.cov"),
    I("cov-string", "target", {"mean": [0.0], "cov": "1"}, "cases.mine.target.cov"),
    I("cov-wrong-shape", "target", {"mean": [0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]}, "cases.mine.target.cov"),
    I("cov-non-symmetric", _two_d({"mean": [0.0, 0.0], "cov": [[1.0, 0.5], [0.0, 1.0]]}), None,
      "cases.mine.target.cov"),
    I("cov-singular", _two_d({"mean": [0.0, 0.0], "cov": [[1.0, 1.0], [1.0, 1.0]]}), None, "cases.mine.target.cov"),
    I("cov-indefinite", _two_d({"mean": [0.0, 0.0], "cov": [[1.0, 2.0], [2.0, 1.0]]}), None,
      "cases.mine.target.cov"),
    I("cov-ragged", _two_d({"mean": [0.0, 0.0], "cov": [[1.0], [0.0, 1.0]]}), None, "cases.mine.target.cov"),
    I("components-empty", "target", {"components": []}, "cases.mine.target"),
    I("component-not-a-table", "target", {"components": [{"mean": [0.0], "variance": 1.0}, "x"]},
      "cases.mine.target.components[1]"),
    I("component-unknown-key", "initial", {"components": [{"mean": [1.0], "variance": 0.5, "weight": 1.0}]},
      "cases.mine.initial.components[0]"),
    I("target-not-a-table", "target", "gauss", "cases.mine.target"),
    I("initial-far-outside-domain", "initial", {"mean": [1000.0], "variance": 1.0}, "cases.mine.initial"),
    I("target-far-outside-domain", "target", {"mean": [1.0e6], "variance": 0.01}, "cases.mine.target"),
    I("domain-inverted", "domain", {"lower": [6.0], "upper": [-6.0]}, "cases.mine.domain"),
    I("domain-empty-interval", "domain", {"lower": [1.0], "upper": [1.0]}, "cases.mine.domain"),
    I("domain-no-dimensions", "domain", {"lower": [], "upper": []}, "cases.mine.domain"),
    I("domain-4d", "domain", {"lower": [0.0] * 4, "upper": [1.0] * 4}, "cases.mine.domain"),
    I("domain-length-mismatch", "domain", {"lower": [0.0], "upper": [1.0, 1.0]}, "cases.mine.domain"),
    I("domain-nan", "domain", {"lower": [NAN], "upper": [6.0]}, "cases.mine.domain"),
    I("domain-width-overflows", "domain", {"lower": [-1e308], "upper": [1e308]}, "cases.mine.domain"),
    I("domain-unknown-mesh", "domain", {"mesh": "torus"}, "cases.mine.domain.mesh"),
    I("domain-string", "domain", "box", "cases.mine.domain"),
    I("flow-alpha-and-beta-zero", "flow", {"alpha": 0.0, "beta": 0.0}, "cases.mine.flow"),
    I("flow-negative", "flow", {"alpha": -1.0, "beta": 1.0}, "cases.mine.flow.alpha"),
    I("flow-spherical-string", "flow", {"alpha": 0.0, "beta": 1.0, "spherical": "yes"}, "cases.mine.flow.spherical"),
    I("flow-unknown-key", "flow", {"alpha": 0.0, "beta": 1.0, "gamma": 1.0}, "cases.mine.flow"),
    I("T-string", "T", "0.5", "cases.mine.T"),
    I("T-zero", "T", 0.0, "cases.mine.T"),
    I("snapshots-unsorted", "snapshots", [0.5, 0.25], "cases.mine.snapshots"),
    I("snapshots-beyond-T", "snapshots", [0.25, 2.0], "cases.mine.snapshots"),
    I("snapshots-negative", "snapshots", [-0.1, 0.5], "cases.mine.snapshots"),
    I("snapshots-duplicate", "snapshots", [0.25, 0.25, 0.5], "cases.mine.snapshots"),
    I("snapshots-beyond-default-T", _both(_case_edit("T"), _case_edit("snapshots", [0.5, 3.0])), None,
      "cases.mine.snapshots"),
    I("description-number", "description", 5, "cases.mine.description"),
    I("unknown-case-key", "colour", "red", "cases.mine: unknown key 'colour'"),
    I("missing-flow", "flow", ..., "cases.mine.flow"),
    I("name-with-space", _both(_cases(lambda c: {"my case": c}), _set("study", "case", "my case")), None,
      "cases.my case"),
    I("name-of-a-builtin", _both(_cases(lambda c: {CASE: c}), _set("study", "case", CASE)), None,
      f"cases.{CASE}"),
    I("case-not-a-table", _cases({"mine": 5}), None, "cases.mine"),
]


def _run_spec(capsys, tmp_path, content, needle):
    path = tmp_path / "spec.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    _refused(capsys, ["study", path, "--out", out, "--quiet"], needle, out=out)


@pytest.mark.parametrize("edit,needle", SPEC)
def test_spec(capsys, tmp_path, edit, needle):
    if callable(edit):
        data = copy.deepcopy(VALID_SPEC)
        edit(data)
        edit = _toml(data)
    _run_spec(capsys, tmp_path, edit, needle)


@pytest.mark.parametrize("edit,needle", INLINE)
def test_inline_case(capsys, tmp_path, edit, needle):
    data = copy.deepcopy(VALID_INLINE)
    edit(data)
    _run_spec(capsys, tmp_path, _toml(data), needle)


# ------------------------------------------------------------------------------------------
# 4. particle files for `pdeflow check`
# ------------------------------------------------------------------------------------------
def _npz(**changes):
    """Write the valid particle arrays with ``changes`` (None drops an array)."""
    def make(path):
        t, x, w = _particles()
        arrays = {"t": t, "x": x, "w": w}
        for k, v in changes.items():
            if v is None:
                arrays.pop(k)
            else:
                arrays[k] = v(arrays) if callable(v) else v
        np.savez(path, **arrays)
    return make


def _valid_bytes():
    import io

    buf = io.BytesIO()
    t, x, w = _particles()
    np.savez(buf, t=t, x=x, w=w)
    return buf.getvalue()


def _bytes(data):
    def make(path):
        path.write_bytes(data() if callable(data) else data)
    return make


def _zip(members: dict):
    def make(path):
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    return make


def _at(arr, index, value):
    out = np.array(arr, dtype=float)
    out[index] = value
    return out


def _object_npy():
    import io
    import pickle

    buf = io.BytesIO()
    # a hand-made .npy header for an object array whose payload is a pickle (numpy writes the same)
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (4,), }"
    header = header + " " * (63 - len(header) % 64) + "\n"
    buf.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    buf.write(pickle.dumps([os.system, "echo pwned", None, None]))  # unpickling would import os.system
    return buf.getvalue()


def P(id_, make, needle, name="particles.npz"):
    return pytest.param(make, needle, name, id=id_)


PARTICLES = [
    P("empty-file", _bytes(b""), "not a readable npz file"),
    P("text-file", _bytes(b"t,x,w\n0,1,1\n"), "not a readable npz file"),
    P("truncated-half", _bytes(lambda: _valid_bytes()[: len(_valid_bytes()) // 2]), "not a readable npz file"),
    P("truncated-tail", _bytes(lambda: _valid_bytes()[:-10]), "not a readable npz file"),
    P("corrupt-member", _bytes(lambda: _valid_bytes().replace(b"NUMPY", b"NUMPZ", 1)), "particles.npz"),
    P("zip-of-text-members", _zip({"t.npy": b"hello", "x.npy": b"world"}), "particles.npz"),
    P("single-npy", lambda p: np.save(p, _particles()[1]), "single .npy array", name="particles.npy"),
    P("raw-pickle", _bytes(lambda: __import__("pickle").dumps({"t": TIMES})), "not a readable npz file"),
    P("pickled-object-array", _zip({"t.npy": _object_npy(), "x.npy": _object_npy()}), "particles.npz"),
    P("object-array-by-numpy", _npz(x=lambda a: np.array([None] * 4, dtype=object)), "particles.npz"),
    P("missing-x", _npz(x=None), "missing array(s) x"),
    P("missing-t", _npz(t=None), "missing array(s) t"),
    P("missing-all", _npz(t=None, x=None, w=None), "missing array(s) t, x"),
    P("unknown-array", _npz(v=lambda a: a["w"]), "unknown array(s) v"),
    P("string-positions", _npz(x=np.array(["a"] * 4)), "dtype"),
    P("complex-positions", _npz(x=lambda a: a["x"] + 1j), "dtype complex128"),
    P("bool-positions", _npz(x=lambda a: a["x"] > 0), "dtype bool"),
    P("complex-weights", _npz(w=lambda a: a["w"] * (1 + 1j)), "dtype complex128"),
    P("x-4d", _npz(x=lambda a: a["x"][..., None]), "x of shape (4, 60, 1, 1)"),
    P("x-1d", _npz(x=lambda a: a["x"][0, :, 0]), "x of shape (60,)"),
    P("x-two-coordinates", _npz(x=lambda a: np.concatenate([a["x"], a["x"]], axis=2)), "x of shape (4, 60, 2)"),
    P("x-no-coordinates", _npz(x=np.zeros((4, 60, 0))), "x of shape (4, 60, 0)"),
    P("w-fewer-particles", _npz(w=lambda a: a["w"][:, :30]), "w of shape (4, 30)"),
    P("w-3d", _npz(w=lambda a: a["w"][..., None]), "w of shape (4, 60, 1)"),
    P("t-2d", _npz(t=lambda a: a["t"][None]), "times of shape (1, 4)"),
    P("t-too-short", _npz(t=lambda a: a["t"][:3]), "3 times but 4 snapshots"),
    P("t-other-times", _npz(t=lambda a: 2 * a["t"]), "snapshot times"),
    P("t-unsorted", _npz(t=lambda a: a["t"][[0, 2, 1, 3]]), "snapshot times"),
    P("t-nan", _npz(t=lambda a: _at(a["t"], 1, np.nan)), "snapshot times"),
    P("t-integers", _npz(t=np.arange(4)), "snapshot times"),
    P("no-snapshots", _npz(t=lambda a: a["t"][:0], x=lambda a: a["x"][:0], w=lambda a: a["w"][:0]), "times []"),
    P("x-nan", _npz(x=lambda a: _at(a["x"], (1, 3, 0), np.nan)), "non-finite value(s) in x"),
    P("x-inf", _npz(x=lambda a: _at(a["x"], (2, 0, 0), -np.inf)), "non-finite value(s) in x"),
    P("w-nan", _npz(w=lambda a: _at(a["w"], (0, 5), np.nan)), "non-finite value(s) in w"),
    P("w-inf", _npz(w=lambda a: _at(a["w"], (3, 5), np.inf)), "non-finite value(s) in w"),
    P("w-negative", _npz(w=lambda a: _at(a["w"], (1, 7), -0.1)), "negative weight"),
    P("w-all-zero", _npz(w=lambda a: 0 * a["w"]), "sum to 0"),
    P("w-sum-overflows", _npz(w=lambda a: np.full_like(a["w"], 1e307)), "sum overflows"),
    P("outside-the-domain", _npz(x=lambda a: a["x"] + 10.0), "outside the domain"),
    P("one-particle", _npz(x=lambda a: a["x"][:, :1], w=lambda a: a["w"][:, :1]), "need at least 2"),
    P("directory", lambda p: p.mkdir(), "is a directory"),
]


@pytest.mark.parametrize("make,needle,name", PARTICLES)
def test_particle_file(capsys, tmp_path, make, needle, name):
    path = tmp_path / name
    make(path)
    out = tmp_path / "out"
    _refused(capsys, ["check", CASE, path, "--set", "n=20", "--out", out, "--quiet", "--no-plots"], needle, out=out)


def test_missing_particle_file_and_dangling_link(capsys, tmp_path):
    """(counted with the particle files: two more entries)"""
    (tmp_path / "link.npz").symlink_to(tmp_path / "gone.npz")
    for name in ("nope.npz", "link.npz"):
        out = tmp_path / f"out-{name}"
        _refused(capsys, ["check", CASE, tmp_path / name, "--out", out, "--quiet"], "no such file", out=out)


# ------------------------------------------------------------------------------------------
# 5. --reference DIR
# ------------------------------------------------------------------------------------------
def _ref(arrays=None, summary=None, npz=None, json_text=None, drop=()):
    """A copy of the shared reference with its arrays/summary changed (callables of the originals)."""
    def make(src: Path, dst: Path):
        dst.mkdir()
        good = dict(np.load(src / "snapshots.npz"))
        summ = json.loads((src / "summary.json").read_text())
        if "npz" not in drop:
            if npz is not None:
                (dst / "snapshots.npz").write_bytes(npz((src / "snapshots.npz").read_bytes()))
            else:
                new = dict(good)
                for k, v in (arrays or {}).items():
                    if v is None:
                        new.pop(k)
                    else:
                        new[k] = v(good) if callable(v) else v
                np.savez(dst / "snapshots.npz", **new)
        if "json" not in drop:
            if json_text is not None:
                data = json_text(summ) if callable(json_text) else json_text
                (dst / "summary.json").write_bytes(data if isinstance(data, bytes) else data.encode())
            else:
                (dst / "summary.json").write_text(json.dumps(summary(summ) if summary else summ))
    return make


def _with_problem(**changes):
    def edit(s):
        return {**s, "problem": {**s["problem"], **changes}}
    return edit


def _with_flow(**changes):
    def edit(s):
        return {**s, "problem": {**s["problem"], "flow": {**s["problem"]["flow"], **changes}}}
    return edit


def R(id_, make, needle, case=CASE, extra=()):
    return pytest.param(make, needle, case, list(extra), id=id_)


REFERENCE = [
    R("a-file", lambda src, dst: dst.write_text("x"), "not a directory"),
    R("missing", lambda src, dst: None, "No such file or directory"),
    R("empty-directory", lambda src, dst: dst.mkdir(), "No such file or directory"),
    R("no-summary", _ref(drop=("json",)), "summary.json"),
    R("no-snapshots", _ref(drop=("npz",)), "snapshots.npz"),
    R("summary-corrupt", _ref(json_text="{not json"), "JSONDecodeError"),
    R("summary-empty", _ref(json_text=""), "JSONDecodeError"),
    R("summary-a-list", _ref(json_text="[1, 2]"), "not a JSON object"),
    R("summary-null", _ref(json_text="null"), "not a JSON object"),
    R("summary-not-utf8", _ref(json_text=b'{"case": "\xff"}'), "UnicodeDecodeError"),
    R("summary-truncated", _ref(json_text=lambda s: json.dumps(s)[:100]), "JSONDecodeError"),
    R("summary-is-a-directory", lambda src, dst: (_ref(drop=("json",))(src, dst), (dst / "summary.json").mkdir()),
      "summary.json"),
    R("snapshots-is-a-directory", lambda src, dst: (_ref(drop=("npz",))(src, dst), (dst / "snapshots.npz").mkdir()),
      "snapshots.npz"),
    R("npz-truncated", _ref(npz=lambda b: b[: len(b) // 2]), "BadZipFile"),
    R("npz-truncated-tail", _ref(npz=lambda b: b[:-20]), "BadZipFile"),
    R("npz-empty", _ref(npz=lambda b: b""), "unreadable snapshots.npz"),
    R("npz-text", _ref(npz=lambda b: b"garbage"), "unreadable snapshots.npz"),
    R("lacks-t", _ref(arrays={"t": None}), "lacks t"),
    R("lacks-x", _ref(arrays={"x": None}), "lacks x"),
    R("lacks-rho", _ref(arrays={"rho": None}), "lacks rho"),
    R("lacks-m", _ref(arrays={"m": None}), "lumped masses 'm'"),
    R("rho-wrong-shape", _ref(arrays={"rho": lambda a: a["rho"][:, :-1]}), "inconsistent shapes"),
    R("x-wrong-shape", _ref(arrays={"x": lambda a: a["x"][:, 0]}), "inconsistent shapes"),
    R("x-two-coordinates", _ref(arrays={"x": lambda a: np.hstack([a["x"], a["x"]])}), "inconsistent shapes"),
    R("m-wrong-shape", _ref(arrays={"m": lambda a: a["m"][:-1]}), "inconsistent shapes"),
    R("t-other-times", _ref(arrays={"t": lambda a: 2 * a["t"]}), "snapshot times"),
    R("t-nan", _ref(arrays={"t": lambda a: _at(a["t"], 1, np.nan)}), "snapshot times"),
    R("rho-nan", _ref(arrays={"rho": lambda a: _at(a["rho"], (2, 5), np.nan)}), "non-finite"),
    R("rho-inf", _ref(arrays={"rho": lambda a: _at(a["rho"], (1, 5), np.inf)}), "non-finite"),
    R("x-nan", _ref(arrays={"x": lambda a: _at(a["x"], (3, 0), np.nan)}), "non-finite"),
    R("rho-negative", _ref(arrays={"rho": lambda a: -a["rho"]}), "negative densities"),
    R("m-zero", _ref(arrays={"m": lambda a: 0 * a["m"]}), "non-positive masses"),
    R("rho-all-zero", _ref(arrays={"rho": lambda a: 0 * a["rho"]}), "zero mass"),
    R("rho-object", _ref(arrays={"rho": lambda a: np.array([None] * 4, dtype=object)}), "unreadable snapshots.npz"),
    R("rho-strings", _ref(arrays={"rho": np.array(["a"] * 4)}), "dtype"),
    R("rho-complex", _ref(arrays={"rho": lambda a: a["rho"] + 1j}), "dtype complex128"),
    R("vertices-outside-domain", _ref(arrays={"x": lambda a: 10 * a["x"]}), "outside the domain"),
    R("another-case", _ref(summary=lambda s: {**s, "case": "wfr-kl-gauss-1d"}), "not 'fr-kl-gauss-1d'"),
    R("no-case-key", _ref(summary=lambda s: {k: v for k, v in s.items() if k != "case"}), "a solve of None"),
    R("other-flow-in-summary", _ref(summary=_with_flow(beta=2.0)), "alpha/beta differ"),
    R("other-T-in-summary", _ref(summary=_with_problem(T=2.0)), "T = 2"),
    R("run-with-other-beta", _ref(), "alpha/beta differ", extra=["--set", "beta=2"]),
    R("run-with-other-T", _ref(), "T = 1", extra=["--set", "T=0.5"]),
    R("solve-of-another-case", _ref(), "not 'wfr-kl-gauss-1d'", case="wfr-kl-gauss-1d"),
]


@pytest.mark.parametrize("make,needle,case,extra", REFERENCE)
def test_reference_dir(capsys, tmp_path, inputs, make, needle, case, extra):
    ref = tmp_path / "reference"
    make(inputs["ref"], ref)
    out = tmp_path / "out"
    method = "template-fr" if case == CASE else "birth-death"
    _refused(capsys, ["approx", case, "--method", method, "--reference", ref, "--set", "n_particles=20", *extra,
                      "--out", out, "--quiet", "--no-plots"], needle, out=out)


# ------------------------------------------------------------------------------------------
# 6. subprocess: non-UTF-8 bytes in argv (dolfinx's logging init took them as a TypeError)
# ------------------------------------------------------------------------------------------
def X(id_, argv, needle):
    return pytest.param(argv, needle, id=id_)


SUBPROCESS = [
    X("case-name-with-ff", [b"solve", b"fr-kl-gauss-\xff"], "unknown case"),
    X("set-value-with-ff", [b"solve", CASE, b"--set", b"n=\xff"], "n:"),
    X("spec-path-with-ff", [b"study", b"{root}/spec-\xff.toml"], "cannot read the spec"),
    X("out-with-ff-reaching-dolfinx", [b"check", CASE, b"{pf}", b"--continuum", b"stein:sigma=-1", b"--out",
                                       b"{root}/out-\xff"], "sigma"),
    X("method-path-with-ff-reaching-dolfinx", [b"approx", CASE, b"--method", b"{m}/none.py:run", b"--set", b"n=20",
                                               b"--set", b"tau=0.1", b"--set", b"n_particles=20", b"--out",
                                               b"{root}/approx-\xff", b"--quiet"], "returned NoneType"),
]


@pytest.mark.parametrize("argv,needle", SUBPROCESS)
def test_subprocess(inputs, tmp_path, argv, needle):
    root = tmp_path / "root"
    root.mkdir()
    paths = {"root": os.fsencode(root), "pf": os.fsencode(inputs["pf"]), "m": os.fsencode(inputs["m"])}
    args = []
    for a in argv:
        a = a if isinstance(a, bytes) else a.encode()
        for k, v in paths.items():
            a = a.replace(b"{" + k.encode() + b"}", v)
        args.append(a)
    proc = subprocess.run([sys.executable.encode(), b"-m", b"pdeflow.cli", *args], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    err = proc.stderr.decode("utf-8", "backslashreplace").strip()
    assert "Traceback" not in err, err
    assert proc.returncode == 2, (proc.returncode, err)
    assert err.startswith("pdeflow: error:") and "\n" not in err and needle in err, err
    assert os.listdir(root) == [], f"written for a refused input: {os.listdir(root)}"


# ------------------------------------------------------------------------------------------
# the corpus itself
# ------------------------------------------------------------------------------------------
COUNTS = {"CLI": len(CLI), "SPEC": len(SPEC), "INLINE": len(INLINE), "PARTICLES": len(PARTICLES) + 2,
          "REFERENCE": len(REFERENCE), "SUBPROCESS": len(SUBPROCESS)}


def test_corpus_size():
    """The corpus may grow, never shrink below what issue #14 re-measured (module docstring)."""
    assert sum(COUNTS.values()) >= 220, COUNTS
    minimum = {"CLI": 169, "SPEC": 63, "INLINE": 54, "PARTICLES": 43, "REFERENCE": 44, "SUBPROCESS": 5}
    assert all(COUNTS[k] >= v for k, v in minimum.items()), COUNTS
    for group in (CLI, SPEC, INLINE, PARTICLES, REFERENCE, SUBPROCESS):
        ids = [p.id for p in group]
        assert len(ids) == len(set(ids)), f"duplicate ids in {ids}"


def test_the_unedited_inputs_are_valid(inputs):
    """The corpus edits valid inputs: the bases themselves must be accepted (else an entry could pass
    for the wrong reason)."""
    from pdeflow.assess.check import load_particle_file
    from pdeflow.cases import get_case
    from pdeflow.study.spec import parse_spec
    from pdeflow.verify import load_reference

    parse_spec(copy.deepcopy(VALID_SPEC))
    parse_spec(copy.deepcopy(VALID_INLINE))
    import tomllib

    assert tomllib.loads(_toml(VALID_SPEC)) == VALID_SPEC and tomllib.loads(_toml(VALID_INLINE)) == VALID_INLINE
    load_particle_file(inputs["pf"], get_case(CASE))
    load_reference(inputs["ref"], get_case(CASE))
