"""The continuum PDEs that particle methods approximate at fixed parameters (MATH §5, 'General
rule', limit 1) — names, parameters and the dispatch to their mesh solvers.

A method declares its continuum (``MethodDecl.continuum``); a user may override it with
``--continuum NAME[:key=value,...]``.  The error of a particle run then splits into
(particles vs own continuum: N and time step) and (own continuum vs the true flow: bandwidth,
λ, step bias).

========================  ==========================================================================
``flow``                  the case's own W / FR / WFR flow of KL (the FE reference, :mod:`pdeflow.fem`)
``stein``                 SVGD's mean-field limit at fixed kernel: ∂ρ = α∇·(ρ K_ρ∇log(ρ/π))
``lambda-stein``          regularized SVGD: ∂ρ = α∇·(ρ (K_ρ+λ)⁻¹K_ρ∇log(ρ/π))
``lambda-fr``             λ-FRk: ∂ρ = −βρ(r − ⟨r⟩), r = (K_ρ+λ)⁻¹K_ρ log(ρ/π)
``lambda-wfr``            λ-WFR with the KDE first variation: the λ-Stein transport plus the λ-FRk reaction
``mmd-flow``              W flow of ½MMD²(·, π̄) with the method's kernel
``kde-wfr``               WFR flow with the KDE plug-in first variation log(K_σ*ρ/π) in the reaction
``lie-split``             SMC-WFR at fixed step h: Markov move M_h, then the exact FR substep
========================  ==========================================================================

The mesh solvers of all but ``flow`` live in :mod:`pdeflow.fem.continua` (dense kernel operators on
the vertices; at most ``DENSE_VERTEX_LIMIT`` vertices).  This module imports no dolfinx.
"""
from __future__ import annotations

from .approx.external import parse_literal

CONTINUUM_NAMES = ("flow", "stein", "lambda-stein", "lambda-fr", "lambda-wfr", "mmd-flow", "kde-wfr", "lie-split")


class ContinuumError(ValueError):
    """Bad continuum name or parameters (one line)."""


def parse_continuum(text: str) -> tuple:
    """``"stein:sigma=0.5,kernel=gaussian"`` → ``("stein", {"sigma": 0.5, "kernel": "gaussian"})``."""
    if not isinstance(text, str) or not text.strip():
        raise ContinuumError("--continuum: expected NAME[:key=value,...]")
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in CONTINUUM_NAMES:
        raise ContinuumError(f"--continuum: unknown continuum {name!r}; choose from {', '.join(CONTINUUM_NAMES)}")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ContinuumError(f"--continuum {text!r}: expected key=value, got {item!r}")
        try:
            params[key.strip()] = parse_literal(raw)
        except ValueError as exc:
            raise ContinuumError(f"--continuum {text!r}: {key.strip()}: {exc}") from None
    return name, params


# the continuum parameters that a method's own parameters fill in where the continuum was named
# without them ("stein" from an external method's declaration, or --continuum stein)
FROM_METHOD_PARAMS = {
    "flow": (),
    "stein": ("kernel", "sigma"),
    "lambda-stein": ("kernel", "sigma", "lam", "kde_bandwidth"),
    "lambda-fr": ("kernel", "sigma", "lam"),
    "lambda-wfr": ("kernel", "sigma", "lam", "kde_bandwidth"),
    "mmd-flow": ("kernel", "sigma"),
    "kde-wfr": ("sigma",),
    "lie-split": ("h",),
}


def fill_from_params(name: str, cparams: dict, params) -> dict:
    """cparams with the keys of FROM_METHOD_PARAMS[name] it lacks taken from the method parameters
    (h from dt, kde_bandwidth from params.extra); None values are left out."""
    out = dict(cparams)
    source = {"kernel": params.kernel, "sigma": params.sigma, "lam": params.lam, "h": params.dt,
              "kde_bandwidth": params.extra.get("kde_bandwidth")}
    for key in FROM_METHOD_PARAMS.get(name, ()):
        if key not in out and source.get(key) is not None:
            out[key] = source[key]
    return out


def describe(name: str, params: dict) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")


def solve(problem, name: str, params: dict, n: int, comm=None, tau: float = None) -> dict:
    """The continuum's mesh solution: dict with t, x, m, rho (n_snap × N_v), params, wall (all ranks)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    if name == "flow":
        if params:
            raise ContinuumError(f"continuum flow: no parameters (got {sorted(params)}); the case sets them")
        from .verify import solve_reference_for

        tau = tau if tau is not None else (0.5 * (problem.domain.diameter_box / n) ** 2 if problem.dim == 1 else 0.01)
        ref = solve_reference_for(problem, n, tau, comm)
        data = comm.bcast({k: ref[k] for k in ("t", "x", "rho", "m")} if comm.rank == 0 else None, root=0)
        data["params"] = {"n": n, "tau": tau, "solver": "fe-frozen-mobility"}
        data["wall"] = ref["trajectory"].wall_time
        return data
    from .fem.continua import solve_continuum

    try:
        return solve_continuum(problem, name, dict(params), n, comm=comm)
    except ValueError as exc:
        text = str(exc)
        raise ContinuumError(text if text.startswith(name) else f"continuum {name}: {text}") from None
