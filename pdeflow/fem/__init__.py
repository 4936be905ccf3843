"""The reference solver: the only package of pdeflow that imports dolfinx and petsc4py."""
import sys as _sys

# dolfinx's import hands sys.argv to C++ (init_logging), which refuses the lone surrogates that stand
# for non-UTF-8 bytes of the command line (a case name or a path with \xff): a TypeError there instead
# of the one-line error.  The C++ side only looks for logging options, so it is given a UTF-8 copy.
_argv = _sys.argv
_sys.argv = [a.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(a, str) else a
             for a in _argv]
try:
    from .reference import SolverError, Trajectory, solve_reference  # noqa: F401
finally:
    _sys.argv = _argv
    del _argv
