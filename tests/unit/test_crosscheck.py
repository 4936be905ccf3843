"""`pdeflow crosscheck` (issue #11): FE and FV agree within their error estimates, and two seeded FE
defects that self-convergence cannot see — the FE ladder still converges at order 2, to a wrong
solution — are caught by the cross-check.

The defects are injected into the FE code only, by a fixture (monkeypatch):

* ``reaction-weight``: the reaction term β diag(m ρⁿ) of the FE Newton matrix 𝖪 is assembled with
  1.1 β (pdeflow/fem/scheme.py, ``FrozenMobilityScheme._assemble``);
* ``multiplier-weights``: the spherical multiplier's mass constraint is evaluated with the
  weights m∘ρⁿ instead of the lumped quadrature weights m (``FrozenMobilityScheme._newton``: the
  constraint G and its derivative w), so the FE solve conserves Σ m ρⁿ ρ instead of Σ m ρ.
"""
import inspect
import textwrap

import numpy as np
import pytest
from petsc4py import PETSc

from pdeflow.cases import get_case
from pdeflow.cli import main
from pdeflow.compare import p1_distances_1d
from pdeflow.crosscheck import crosscheck

CASE = "wfr-kl-mixture-1d"  # no closed form: self-convergence is the only other evidence


def _inject(monkeypatch, which):
    from pdeflow.fem import scheme

    cls = scheme.FrozenMobilityScheme
    if which == "reaction-weight":
        orig = cls._assemble

        def assemble(self, rho_n):
            orig(self, rho_n)
            if self.beta > 0:
                d = self.K.createVecLeft()
                d.setArray(0.1 * self.beta * self.m * rho_n)
                self.K.setDiagonal(d, addv=PETSc.InsertMode.ADD_VALUES)
                d.destroy()
                self.K_diag = self.K.getDiagonal().getArray().copy()

        monkeypatch.setattr(cls, "_assemble", assemble)
    else:
        # the Newton loop shared by the steps (σ = ρⁿ in the frozen-mobility step)
        src = textwrap.dedent(inspect.getsource(cls._newton))
        for old, new in (("w = m * e", "w = m * sigma * e"),
                         ("G = space.dot(m, e) - mass_n", "G = space.dot(m * sigma, e - sigma)")):
            assert src.count(old) == 1, f"the seeded defect no longer applies to scheme.py: {old!r}"
            src = src.replace(old, new)
        namespace = dict(vars(scheme))
        exec(compile(src, scheme.__file__, "exec"), namespace)
        monkeypatch.setattr(cls, "_newton", namespace["_newton"])


@pytest.fixture(params=["reaction-weight", "multiplier-weights"])
def seeded_defect(request, monkeypatch):
    _inject(monkeypatch, request.param)
    return request.param


def _fe_self_convergence_order(solve, problem, ns=(64, 128, 256), tau_factor=0.5):
    runs = []
    for n in ns:
        h = problem.domain.diameter_box / n
        runs.append(solve(problem, n=n, tau=tau_factor * h * h))
    d = [p1_distances_1d(a.x[:, 0], a.rho[-1], b.x[:, 0], b.rho[-1])["L1"] for a, b in zip(runs, runs[1:])]
    return np.log2(d[0] / d[1])


def test_fe_and_fv_agree_on_the_mixture(solve):
    r = crosscheck(get_case(CASE), n=128, tol=1e-8)
    assert r["verdict"] == "agree", r["snapshots"]
    # and the difference is of the size of the estimates, not far below them (a real check)
    ratios = [row["L1"]["ratio"] for row in r["snapshots"][1:]]
    assert max(ratios) > 0.2


def test_seeded_fe_defect_is_caught_by_the_crosscheck_not_by_self_convergence(solve, seeded_defect):
    problem = get_case(CASE)
    order = _fe_self_convergence_order(solve, problem)
    assert 1.8 < order < 2.3, order  # the defective FE ladder converges at order 2 ...
    r = crosscheck(problem, n=128, tol=1e-8)
    assert r["verdict"] == "disagree"  # ... to a solution the FV discretization disagrees with
    final = r["snapshots"][-1]["L1"]
    assert final["difference"] > 1.5 * 1.25 * (final["fe_estimate"] + final["fv_estimate"]), final


def test_cli_crosscheck_exit_codes(tmp_path, capsys, monkeypatch):
    args = ["crosscheck", "w-kl-gauss-1d", "--set", "n=32", "--set", "T=0.5", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    assert (tmp_path / "crosscheck.json").is_file()
    assert main(["crosscheck", "w-kl-gauss-1d", "--set", "tau=0.1"]) == 2
    assert "tau: a key of the finite-element" in capsys.readouterr().err
    assert main(["crosscheck", "w-kl-gauss-1d", "--set", "n=3"]) == 2
    _inject(monkeypatch, "multiplier-weights")
    assert main(["crosscheck", "wfr-kl-gauss-1d", "--set", "n=64", "--set", "T=0.5", "--out", str(tmp_path), "--quiet"]) == 4
