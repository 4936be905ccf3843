import logging

import pytest

# dolfinx's JIT logs each compiler line at INFO; keep test output readable
logging.getLogger().setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def solve():
    """solve_reference without a progress bar (imported lazily: unit tests of numpy-only modules
    must not need dolfinx)."""
    from pdeflow.fem import solve_reference

    def run(problem, **kw):
        kw.setdefault("progress", False)
        return solve_reference(problem, **kw)

    return run
