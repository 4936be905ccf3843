"""The finite-volume reference (issue #11): an independent discretization of the KL flows on the
same meshes as the FE reference, time-integrated by PETSc TS.  See :mod:`pdeflow.fv.solver` for
the equation and the scheme, :mod:`pdeflow.fv.mesh` for the supported meshes, docs/fv.md.

This package uses the case definitions (pdeflow.problem, pdeflow.cases), pdeflow.exact, the mesh
files of pdeflow.fem.meshfiles and numpy/scipy/petsc4py/mpi4py — never the FE assembly, scheme or
Newton code.  The names below are imported lazily (petsc4py is loaded on first use).
"""
__all__ = ["solve_fv", "FVTrajectory", "FVSolverError", "FVMesh", "MeshNotAdmissible"]

_WHERE = {"solve_fv": "solver", "FVTrajectory": "solver", "FVSolverError": "solver",
          "FVMesh": "mesh", "MeshNotAdmissible": "mesh"}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
