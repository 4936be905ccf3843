"""wfr-kl-mixture-1d has no closed form: self-convergence on nested meshes (τ = h²) must show
the order 2 of the scheme, and Richardson extrapolation gives the error of the finest run."""
from pdeflow.cases import get_case
from pdeflow.compare import p1_distances_1d
from pdeflow.study.orders import richardson


def test_mixture_self_convergence(solve):
    problem = get_case("wfr-kl-mixture-1d")
    sols = []
    for n in (100, 200, 400, 800):
        h = 12.0 / n
        traj = solve(problem, n=n, tau=h * h)
        assert not traj.rejected
        sols.append((traj.x, traj.rho))
    for snap in range(1, 4):  # t = 0.25, 0.5, 1
        for metric in ("L1", "L2"):
            d = [p1_distances_1d(sols[k][0], sols[k][1][snap], sols[k + 1][0], sols[k + 1][1][snap])[metric] for k in range(3)]
            assert d[0] > d[1] > d[2] > 0
            for k in range(2):
                r = richardson(d[k], d[k + 1], 2.0)
                assert abs(r.order - 2.0) <= 0.1, (snap, metric, d)
            assert richardson(d[1], d[2], 2.0).finest_error < 1e-3
