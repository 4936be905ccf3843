"""Linear solves for the Newton matrices of the reference schemes (petsc4py KSP).

The Newton matrix J = diag(m e^φ/τ) + α A(ρⁿ) + β diag(m ρⁿ) is SPD.  Two strategies:

* ``direct``: LU — PETSc's own serially, MUMPS (or SuperLU_dist) in parallel — factorized anew
  at every Newton iteration and used for both right-hand sides of the bordered spherical step;
* ``cg-gamg``: conjugate gradients with smoothed-aggregation AMG, solved inexactly (the scheme
  sets the tolerance per Newton iteration).  The AMG hierarchy is kept across Newton iterations
  and time steps (only the diagonal of J changes within a step, and J changes by O(τ) per step)
  and rebuilt by the scheme when it ages, which is what makes a step cost about two Poisson solves.

``auto`` picks ``direct`` in 1-D (tridiagonal: a direct solve is optimal) and ``cg-gamg`` otherwise.
"""
from __future__ import annotations

from petsc4py import PETSc


def choose(solver: str, dim: int) -> str:
    if solver == "auto":
        return "direct" if dim == 1 else "cg-gamg"
    return solver


class LinearSolver:
    def __init__(self, comm, kind: str, rtol: float = 1e-10):
        self.kind = kind
        self.ksp = PETSc.KSP().create(comm)
        pc = self.ksp.getPC()
        if kind == "direct":
            self.ksp.setType("preonly")
            pc.setType("lu")
            if comm.size > 1 and PETSc.Sys.hasExternalPackage("mumps"):
                pc.setFactorSolverType("mumps")
            elif comm.size > 1:
                pc.setFactorSolverType("superlu_dist")
        elif kind == "cg-gamg":
            self.ksp.setType("cg")
            pc.setType("gamg")
            self.ksp.setTolerances(rtol=rtol, atol=1e-300, max_it=1000)
            self.ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        else:
            raise ValueError(f"unknown linear solver {kind!r}")
        self.iterations = 0

    def set_operator(self, J, reuse_preconditioner: bool = False) -> None:
        """New matrix values; an AMG preconditioner may be kept, a factorization never is
        (a stale LU would turn Newton into a linearly converging chord method)."""
        self.ksp.setOperators(J)
        self.ksp.getPC().setReusePreconditioner(reuse_preconditioner and self.kind != "direct")

    def set_rtol(self, rtol: float) -> None:
        if self.kind != "direct":
            self.ksp.setTolerances(rtol=rtol)

    def solve(self, b, x) -> None:
        self.ksp.solve(b, x)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise FloatingPointError(f"linear solver diverged (KSP reason {reason})")
        self.iterations += max(1, self.ksp.getIterationNumber())

    def destroy(self) -> None:
        self.ksp.destroy()
