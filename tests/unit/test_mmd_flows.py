"""pdeflow.fem.mmd_flows: the FR and MMD-geometry flows of ½MMD² on mesh vertices (the case wiring,
refusals and bookkeeping; the identities themselves are in test_paper_identities.py)."""
import numpy as np
import pytest

from pdeflow.cases import get_case
from pdeflow.fem.mmd_flows import MmdVertexFlow, mmd_vertex_flow, solve_mmd_flow
from pdeflow.geometry import Flow


def _mmd_case(spherical=False, sigma=0.5):
    return get_case("fr-kl-gauss-1d").with_changes(
        energy=f"mmd:sigma={sigma}", flow=Flow(0.0, 1.0, spherical=spherical), exact_kind=None, T=2.0)


@pytest.mark.parametrize("spherical", [False, True], ids=["M+", "spherical"])
def test_solve_mmd_flow_both_geometries(spherical):
    """On the 1-D case's vertices: the output dict, EDB to the ODE tolerance, decreasing energy,
    spherical mass conservation; the MMD geometry relaxes as ρ_t − π = e^{−t}(ρ_0 − π) (IFT Thm 3.6),
    so ½MMD²(ρ_t, π) = e^{−2t}·½MMD²(ρ_0, π) (IFT Thm 3.7 with equality), up to the ε-regularization."""
    problem = _mmd_case(spherical)
    outs = {g: solve_mmd_flow(problem, 100, geometry=g) for g in ("fr", "mmd")}
    for g, out in outs.items():
        assert set(out) >= {"t", "x", "m", "rho", "energy", "dissipation", "edb_residual", "mass", "params", "wall"}
        assert np.allclose(out["t"], problem.snapshot_times())
        assert out["rho"].shape == (len(out["t"]), 101) and out["x"].shape == (101, 1)
        assert np.all(np.diff(out["energy"]) < 0)
        assert np.max(np.abs(out["edb_residual"])) <= 1e-8 * out["energy"][0]
        assert out["params"]["continuum"] == f"mmd-{g}" and out["params"]["energy"] == "mmd:kernel=gaussian,sigma=0.5"
        if spherical:
            assert np.ptp(out["mass"]) <= 1e-9 * out["mass"][0]
    mmd, t = outs["mmd"], outs["mmd"]["t"]
    pi = np.exp(mmd["x"][:, 0] ** 2 * -0.5) / np.sqrt(2 * np.pi)
    if not spherical:  # on P the masses of ρ0 and π|Ω differ slightly, and c ≠ 0
        exact = pi + np.exp(-t)[:, None] * (mmd["rho"][0] - pi)
        assert np.max(np.abs(mmd["rho"] - exact)) <= 1e-6 * np.max(np.abs(mmd["rho"][0] - pi))
        assert np.allclose(mmd["energy"], np.exp(-2 * t) * mmd["energy"][0], rtol=1e-5)
    # the FR flow is slower than e^{-2t} here (its dissipation ∫ρξ² is below ‖ξ‖²_H near ρ ≈ π)
    assert outs["fr"]["energy"][-1] > mmd["energy"][-1]


def test_refusals():
    with pytest.raises(ValueError, match="needs mmd:sigma"):
        solve_mmd_flow(get_case("fr-kl-gauss-1d"), 50)
    with pytest.raises(ValueError, match="alpha"):
        solve_mmd_flow(_mmd_case().with_changes(flow=Flow(1.0, 1.0)), 50)
    with pytest.raises(ValueError, match="geometry"):
        solve_mmd_flow(_mmd_case(), 50, geometry="w")
    with pytest.raises(ValueError, match="DENSE_VERTEX_LIMIT"):
        solve_mmd_flow(_mmd_case(), 6000)
    x = np.linspace(-1, 1, 11)
    m = np.full(11, 0.2)
    with pytest.raises(ValueError, match="positive-definite"):
        MmdVertexFlow(x, m, np.ones(11), "mmd:sigma=1,kernel=energy", "mmd")
    with pytest.raises(ValueError, match="eps"):
        MmdVertexFlow(x, m, np.ones(11), "mmd:sigma=1", "mmd", eps=0.0)
    with pytest.raises(ValueError, match="mmd:sigma"):
        MmdVertexFlow(x, m, np.ones(11), "kl", "fr")
    with pytest.raises(ValueError, match="rho0"):
        mmd_vertex_flow(x, m, np.ones(11), -np.ones(11), [0.0, 1.0])
