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
        if kind not in ("direct", "cg-gamg"):
            raise ValueError(f"unknown linear solver {kind!r}")
        self.kind = kind
        self.comm = comm
        self.ksp_rtol = rtol
        self.ksp = self._make_ksp(rtol)
        self.iterations = 0
        self.rebuilds = 0  # fresh preconditioners after a failed CG solve

    def _make_ksp(self, rtol: float):
        ksp = PETSc.KSP().create(self.comm)
        pc = ksp.getPC()
        if self.kind == "direct":
            ksp.setType("preonly")
            pc.setType("lu")
            if self.comm.size > 1 and PETSc.Sys.hasExternalPackage("mumps"):
                pc.setFactorSolverType("mumps")
            elif self.comm.size > 1:
                pc.setFactorSolverType("superlu_dist")
        else:
            ksp.setType("cg")
            pc.setType("gamg")
            ksp.setTolerances(rtol=rtol, atol=1e-300, max_it=1000)
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        return ksp

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
        if reason < 0 and self.kind == "cg-gamg":
            # A kept AMG hierarchy, or a Chebyshev smoother built on a (random) eigenvalue estimate
            # that came out low, can make the preconditioner indefinite for the new matrix (reason
            # -8, seen with PETSc 3.22 on gmsh meshes).  Rebuild it once before giving up the step.
            self.iterations += self.ksp.getIterationNumber()
            J, rtol = self.ksp.getOperators()[0], self.ksp.getTolerances()[0]
            self.ksp.destroy()
            self.ksp = self._make_ksp(rtol)
            self.ksp.setOperators(J)
            x.set(0.0)
            self.ksp.solve(b, x)
            reason = self.ksp.getConvergedReason()
            self.rebuilds += 1
        if reason < 0:
            if self.kind == "direct":
                # a failed parallel factorization (MUMPS/SuperLU_dist, e.g. after a NaN on one rank)
                # stays failed on this KSP however the matrix changes: the retry with τ/2 needs a
                # fresh one (every retry failed with reason -11 before)
                self.ksp.destroy()
                self.ksp = self._make_ksp(self.ksp_rtol)
            raise FloatingPointError(f"linear solver diverged (KSP reason {reason})")
        self.iterations += max(1, self.ksp.getIterationNumber())

    def destroy(self) -> None:
        self.ksp.destroy()
