"""pdeflow: verification suite for Fisher-Rao, Wasserstein and WFR gradient flows.

The public API is imported lazily so that ``import pdeflow`` (and the particle methods) never
pulls in dolfinx: only ``solve_reference`` needs it.
"""
__version__ = "0.1.0"

__all__ = ["load_case", "solve_reference", "exact_solution", "case_names", "run_approximation", "initial_particles",
           "get_method", "verify_method", "check_particles", "Reference"]


def __getattr__(name):
    if name == "solve_reference":
        from .fem import solve_reference

        return solve_reference
    if name == "load_case":
        from .cases import get_case

        return get_case
    if name == "case_names":
        from .cases import case_names

        return case_names
    if name == "exact_solution":
        from .exact import exact_solution

        return exact_solution
    if name in ("run_approximation", "initial_particles", "get_method"):
        from . import approx

        return getattr(approx, name)
    if name == "verify_method":
        from .assess.verify import verify_method

        return verify_method
    if name == "Reference":  # numpy/scipy only: loads an exported reference file without dolfinx
        from .reference import Reference

        return Reference
    if name == "check_particles":
        from .assess.check import check_particles_against

        return check_particles_against
    raise AttributeError(name)
