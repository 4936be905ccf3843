"""pdeflow: verification suite for Fisher-Rao, Wasserstein and WFR gradient flows.

The public API is imported lazily so that ``import pdeflow`` (and the particle methods) never
pulls in dolfinx: only ``solve_reference`` needs it.
"""
__version__ = "0.1.0"

__all__ = ["load_case", "solve_reference", "exact_solution", "case_names"]


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
    raise AttributeError(name)
