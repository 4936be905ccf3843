"""Small study specifications shared by the study tests (run in seconds)."""

TINY = """
[study]
name = "tiny"
case = "wfr-kl-gauss-1d"
target = "exact"
metrics = ["L1", "L2", "hellinger"]

[[group]]
label = "tau"
kind = "reference"
n = 400
tau = {start = 0.1, factor = 0.5, levels = 3}

[[group]]
label = "h"
kind = "reference"
n = {start = 25, factor = 2, levels = 3}
tau = {tied = "h^2", coefficient = 1.0}

[[group]]
label = "bd-N"
kind = "approx"
method = "birth-death"
case = "wfr-kl-mixture-1d"
target = "reference"
metrics = ["mmd"]
n_particles = [30, 60]
seeds = 2
dt = 0.05
reference = {n = 100, tau = 0.02}
"""

# Long enough (about 10 s on 2 ranks) to be killed in the middle.
SLOW = """
[study]
name = "slow"
case = "wfr-kl-gauss-2d"
target = "exact"
metrics = ["L1", "L2"]

[[group]]
label = "tau"
kind = "reference"
n = 40
tau = {start = 0.1, factor = 0.5, levels = 5}

[[group]]
label = "h"
kind = "reference"
n = {start = 12, factor = 2, levels = 3}
tau = {tied = "h^2", coefficient = 0.5}
"""


def assert_same_results(a: dict, b: dict, rel: float = 1e-9) -> None:
    """Same runs, same statuses, metrics equal to round-off (AMG eigenvalue estimates use PETSc's
    random stream, whose state depends on what ran before in the process: last-bit differences)."""
    import math

    assert a.keys() == b.keys()
    for key in a:
        sa, ma = a[key][0], a[key][1]
        sb, mb = b[key][0], b[key][1]
        assert sa == sb, key
        if ma is None or mb is None:
            assert ma is None and mb is None, key
            continue
        assert ma.keys() == mb.keys(), key
        for name in ma:
            va, vb = ma[name], mb[name]
            va, vb = (va if isinstance(va, list) else [va]), (vb if isinstance(vb, list) else [vb])
            for x, y in zip(va, vb):
                if x != x and y != y:
                    continue
                assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-14), (key, name, x, y)

# The reference ladders of the quickstart on the Gaussian WFR case (exact solution).
ORDERS = """
[study]
name = "orders"
case = "wfr-kl-gauss-1d"
target = "exact"
metrics = ["L1", "L2", "hellinger"]

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
"""
