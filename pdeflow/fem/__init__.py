"""The reference solver: the only package of pdeflow that imports dolfinx and petsc4py."""
from .reference import SolverError, Trajectory, solve_reference  # noqa: F401
