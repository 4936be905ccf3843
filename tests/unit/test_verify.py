"""pdeflow.verify helpers: the energy–dissipation residual of particle runs and reference loading."""
import json

import numpy as np
import pytest

from pdeflow.approx import MethodParams, run_approximation
from pdeflow.cases import get_case
from pdeflow.study.orders import fit_order
from pdeflow.verify import ReferenceMismatch, energy_dissipation_residual, load_reference, metric_scales


def test_particle_edb_residual_is_first_order_in_dt():
    problem = get_case("fr-kl-gauss-1d")
    dts = (0.02, 0.01, 0.005)
    res = []
    for dt in dts:
        traj = run_approximation(problem, "lambda-fr", MethodParams(n_particles=400, lam=1e-3, sigma=0.5, dt=dt))
        edb = energy_dissipation_residual(traj)
        assert edb["energy_change"] < 0 < edb["dissipated"]
        res.append(abs(edb["residual"]))
    assert abs(fit_order(dts, res).order - 1.0) <= 0.1, res
    assert res[-1] < 3e-3


def test_no_edb_without_an_energy():
    traj = run_approximation(get_case("fr-kl-gauss-1d"), "lambda-fr", MethodParams(n_particles=50, xi="b", dt=0.1))
    assert energy_dissipation_residual(traj) is None


def test_metric_scales_follow_the_domain():
    assert metric_scales(get_case("wfr-kl-gauss-1d")) == (0.3, 0.9, 3.0)
    assert metric_scales(get_case("wfr-kl-gauss-2d")) == (0.25, 0.75, 2.5)


def test_reference_without_masses_or_of_another_case_is_refused(tmp_path):
    problem = get_case("fr-kl-gauss-1d")
    np.savez(tmp_path / "snapshots.npz", t=np.array([0.0, 0.25, 0.5, 1.0]), x=np.zeros((3, 1)), rho=np.ones((4, 3)))
    (tmp_path / "summary.json").write_text(json.dumps({"case": "fr-kl-gauss-1d"}))
    with pytest.raises(ReferenceMismatch, match="lumped masses"):
        load_reference(tmp_path, problem)
    np.savez(tmp_path / "snapshots.npz", t=np.array([0.0, 0.25, 0.5, 1.0]), x=np.zeros((3, 1)), rho=np.ones((4, 3)),
             m=np.ones(3))
    (tmp_path / "summary.json").write_text(json.dumps({"case": "w-kl-gauss-1d"}))
    with pytest.raises(ReferenceMismatch, match="not 'fr-kl-gauss-1d'"):
        load_reference(tmp_path, problem)
    with pytest.raises(ReferenceMismatch, match="No such file"):
        load_reference(tmp_path / "missing", problem)
