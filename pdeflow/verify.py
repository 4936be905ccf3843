"""Run a particle method against the finite-element reference and measure the distance (MATH §6),
with the error split into its sources (MATH §5, 'General rule'):

* particles vs the FE reference of the true flow, at every snapshot: Gaussian MMD at several scales
  (by vertex quadrature of ρ_h; primary), energy distance of the normalized shapes, the mass
  error, and W2 of the normalized measures (exact quantiles in 1-D, EMD on the vertex cloud in 2-D);
* the same distances to the exact solution (evaluated at the reference's vertices with the same
  quadrature weights) when the case has one;
* the Monte-Carlo floor: MMD of N i.i.d. draws from the reference at T — no method with N
  particles can do better on average;
* the two-stage split, where a mesh version of the method exists (λ-FRk on a pure FR case):
  particles vs the mesh λ-FRk solution at the same (k, λ) — the N and time-step error — and the
  mesh λ-FRk solution vs the reference — the λ/σ bias.

The reference may be reused from a directory written by ``pdeflow solve`` (snapshots.npz with
the lumped masses ``m``).  Solving it needs dolfinx; everything else here is numpy.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from . import compare
from .approx import MethodParams, run_approximation
from .approx.kernels import Kernel, median_bandwidth


class ReferenceMismatch(ValueError):
    """A reused reference does not belong to this case or lacks the needed arrays."""


def metric_scales(problem) -> tuple:
    """Gaussian MMD scales (0.1, 0.3, 1) × L/4, L the largest side of (the bounding box of) Ω (MATH §6 (a))."""
    L = problem.domain.diameter_box
    return tuple(round(f * L / 4, 6) for f in (0.1, 0.3, 1.0))


def load_reference(path, problem) -> dict:
    """The snapshots of a `pdeflow solve` directory, checked against ``problem``; every defect of the
    directory (not one, a file, a corrupt or incomplete npz/json, other case, flow or times, non-finite
    or negative values) is a one-line ReferenceMismatch."""
    path = Path(path)
    prefix = f"--reference {path}:"
    if path.suffix.lower() in (".npz", ".h5", ".hdf5") and not path.is_dir():
        return load_reference_file(path, problem)
    if not path.is_dir():
        raise ReferenceMismatch(f"{prefix} {'not a directory' if path.exists() else 'No such file or directory'} "
                                "(give the --out directory of pdeflow solve)")
    try:
        with np.load(path / "snapshots.npz", allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
        summary = json.loads((path / "summary.json").read_text())
    except FileNotFoundError as exc:
        raise ReferenceMismatch(f"{prefix} {exc.strerror}: {exc.filename}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # JSON errors are ValueErrors
        detail = str(exc).splitlines()[0][:80] if str(exc) else ""
        raise ReferenceMismatch(f"{prefix} unreadable snapshots.npz or summary.json ({type(exc).__name__}: "
                                f"{detail})") from None
    missing = [k for k in ("t", "x", "rho", "m") if k not in arrays]
    if "m" in missing and len(missing) == 1:
        raise ReferenceMismatch(f"{prefix} snapshots.npz has no lumped masses 'm' (rerun pdeflow solve)")
    if missing:
        raise ReferenceMismatch(f"{prefix} snapshots.npz lacks {', '.join(missing)} (rerun pdeflow solve)")
    if not isinstance(summary, dict):
        raise ReferenceMismatch(f"{prefix} summary.json is not a JSON object")
    if summary.get("case") != problem.name:
        raise ReferenceMismatch(f"{prefix} it is a solve of {summary.get('case')!r}, not {problem.name!r}")
    described = summary.get("problem")
    if isinstance(described, dict) and described.get("flow") is not None and described.get("flow") != problem.describe().get("flow"):
        raise ReferenceMismatch(f"{prefix} it was solved with flow {described['flow']}, not "
                                f"{problem.describe()['flow']} (alpha/beta differ)")
    if isinstance(described, dict) and _number(described.get("T")) and described["T"] != problem.T:
        raise ReferenceMismatch(f"{prefix} it was solved up to T = {described['T']:g}, not {problem.T:g}")
    for k in ("t", "x", "rho", "m"):  # complex would lose its imaginary part in astype(float), strings fail there
        if arrays[k].dtype.kind not in "iuf":
            raise ReferenceMismatch(f"{prefix} snapshots.npz array {k} has dtype {arrays[k].dtype}; expected real numbers")
    t, x, rho, m = (arrays[k].astype(float) for k in ("t", "x", "rho", "m"))
    times = np.asarray(problem.snapshot_times())
    if t.shape != times.shape or not np.max(np.abs(t - times)) <= 1e-12:  # `not <=`: NaN times must not pass
        raise ReferenceMismatch(f"{prefix} snapshot times {list(t)} differ from {list(times)}")
    if x.ndim != 2 or x.shape[1] != problem.dim or m.shape != (x.shape[0],) or rho.shape != (t.size, x.shape[0]):
        raise ReferenceMismatch(f"{prefix} inconsistent shapes in snapshots.npz (x {x.shape}, rho {rho.shape}, "
                                f"m {m.shape})")
    if not (np.all(np.isfinite(rho)) and np.all(np.isfinite(m)) and np.all(np.isfinite(x))):
        raise ReferenceMismatch(f"{prefix} non-finite values in snapshots.npz")
    if np.any(rho < 0) or np.any(m <= 0):
        raise ReferenceMismatch(f"{prefix} negative densities or non-positive masses in snapshots.npz")
    if not np.all(rho @ m > 0):  # every distance normalizes by the reference's mass
        raise ReferenceMismatch(f"{prefix} a snapshot of zero mass in snapshots.npz")
    lo, hi = np.array(problem.domain.lower), np.array(problem.domain.upper)
    slack = 1e-9 * problem.domain.diameter_box
    if np.any(x < lo - slack) or np.any(x > hi + slack):
        raise ReferenceMismatch(f"{prefix} mesh vertices outside the domain of {problem.name!r} in snapshots.npz")
    return {"t": t, "x": x, "rho": rho, "m": m, "summary": summary}


def load_reference_file(path, problem) -> dict:
    """The snapshots of a reference file written by `pdeflow export` (:class:`pdeflow.Reference`), in
    the dict shape of :func:`load_reference`, checked against ``problem`` (its stored case definition
    must be ``problem.describe()``); ``reference`` holds the Reference itself (its error estimates).
    Every defect is a one-line ReferenceMismatch."""
    from .reference import Reference, ReferenceFileError

    prefix = f"--reference {path}:"
    try:
        ref = Reference(path)
    except ReferenceFileError as exc:
        raise ReferenceMismatch(f"--reference {exc}") from None
    diff = ref.case_matches(problem.describe())
    if diff is not None:
        raise ReferenceMismatch(f"{prefix} it is a reference of another case definition than {problem.name!r} ({diff})")
    times = np.asarray(problem.snapshot_times())
    if ref.times.shape != times.shape or not np.max(np.abs(ref.times - times)) <= 1e-12:
        raise ReferenceMismatch(f"{prefix} snapshot times {list(ref.times)} differ from {list(times)}")
    if ref.dim != problem.dim:
        raise ReferenceMismatch(f"{prefix} a {ref.dim}-D mesh for a {problem.dim}-D case")
    summary = {"case": ref.case.get("name"), "problem": ref.case, "parameters": ref.params, "versions": ref.versions,
               "reference_file": str(path)}
    return {"t": ref.times.copy(), "x": ref.x, "rho": ref.rho, "m": ref.m, "summary": summary, "reference": ref}


def reference_file_errors(ref, scales) -> np.ndarray:
    """Per snapshot, the stored MMD error estimate of an exported reference in the RKHS norm of the
    sum kernel of ``scales`` (√Σ_ℓ MMD_ℓ², the ε_ref of a check); ReferenceMismatch without them."""
    from .reference import ReferenceFileError

    try:
        per_scale = ref.mmd_estimates(scales)
    except ReferenceFileError as exc:
        raise ReferenceMismatch(f"--reference {exc}") from None
    return np.sqrt(np.sum(per_scale**2, axis=1))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def solve_reference_for(problem, n: int, tau: float, comm=None) -> dict:
    from mpi4py import MPI

    from .fem import solve_reference
    from .fem.space import P1Space  # noqa: F401  (dolfinx is needed from here on)

    comm = MPI.COMM_WORLD if comm is None else comm
    traj = solve_reference(problem, n=n, tau=tau, comm=comm, progress=False)
    m = traj.space.gather(traj.space.lumped_mass)
    return {"t": traj.times, "x": traj.x, "rho": traj.rho, "m": m, "summary": traj.summary() if comm.rank == 0 else None,
            "trajectory": traj}


def boundary_layer_width(domain) -> float:
    """Width of the boundary layer of :func:`pdeflow.compare.boundary_layer_mass`: L/12, L the
    largest side of (the bounding box of) Ω — 0.5 on the [-3, 3]^d domains, 4 cells at n = 48."""
    return round(domain.diameter_box / 12, 6)


# Beyond these sizes in d >= 2 the energy distance (an O(N^2) double sum of a kernel without a fast
# transform: N > LARGE_N) and W2 (network simplex on the N x M cost matrix: N*M > W2_LARGE_NM; at
# 10^3 x 10^4 it takes ~20 s a snapshot) are not computed and the entry says so; in 1-D both have
# exact O(N log N) formulas (distribution functions, quantiles) and are always reported.
LARGE_N = 20000
W2_LARGE_NM = 5_000_000


def _distances(x, w, mesh_x, mesh_rho, mesh_m, scales, domain=None) -> dict:
    d = mesh_x.shape[1]
    n = np.asarray(x).shape[0]
    out = compare.compare_to_mesh(x, w, mesh_x, mesh_rho, mesh_m, scales=scales, energy=d == 1 or n <= LARGE_N)
    out["mmd_gaussian"] = {str(k): v for k, v in out["mmd_gaussian"].items()}
    skipped = {}
    if d >= 2 and n > LARGE_N:
        skipped["energy_distance_normalized"] = f"N > {LARGE_N} in {d}-D (O(N^2) double sum)"
    nm = float(n) * mesh_x.shape[0]
    if d == 1 or (d == 2 and nm <= W2_LARGE_NM):
        out["w2_normalized"] = compare.w2_to_mesh(x, w, mesh_x, mesh_rho, mesh_m, normalize=True)
    elif d == 2:
        skipped["w2_normalized"] = f"N x M = {nm:.3g} > {W2_LARGE_NM:.0e} in 2-D (transport problem)"
    if skipped:
        out["not_computed"] = skipped
    if domain is not None:
        out["boundary_layer"] = compare.boundary_layer_mass(
            x, w, mesh_x, mesh_rho, mesh_m, domain.distance_to_boundary, boundary_layer_width(domain))
    return out


def evaluate(problem, method: str, params: MethodParams, reference: dict, mesh_split: bool = True,
             floor_seeds: int = 5, comm=None, floors: dict = None) -> dict:
    """Run the method and measure it against ``reference`` (see the module docstring).

    ``floors``: the Monte-Carlo floors of :func:`pdeflow.compare.mc_floors` for this reference and
    particle count when the caller has them (a study computes them once per reference and N);
    else ``floor_seeds`` oracle draws per snapshot and scale are made here.

    ``comm``: the communicator of the mesh λ-FRk solve of the two-stage split (collective on it;
    default COMM_WORLD) — every rank of it must call evaluate."""
    from .exact import exact_solution

    name = method if isinstance(method, str) else method.name
    traj = run_approximation(problem, method, params)
    scales = metric_scales(problem)
    ref_x, ref_m = reference["x"], reference["m"]
    exact = exact_solution(problem)
    snapshots = []
    for k, t in enumerate(traj.times):
        entry = {"t": float(t), "reference": _distances(traj.x[k], traj.w[k], ref_x, reference["rho"][k], ref_m, scales,
                                                         problem.domain)}
        if exact is not None:
            rho_ex = exact.density(float(t), ref_x.T)
            entry["exact"] = _distances(traj.x[k], traj.w[k], ref_x, rho_ex, ref_m, scales, problem.domain)
        snapshots.append(entry)
    if floors is None:
        floors = compare.mc_floors(scales, ref_x, reference["rho"], ref_m, traj.n_particles, seeds=floor_seeds,
                                   rng=np.random.default_rng(params.seed + 10_000), times=traj.times)
    floor = {"mean": floors["mean"][-1][1], "std": floors["std"][-1][1], "rms": floors["rms"][-1][1],
             "predicted_rms": floors["predicted_rms"][-1][1], "n": floors["n"], "seeds": floors["seeds"]}
    result = {
        "method": name,
        "parameters": params.describe(),
        "metric_scales": list(scales),
        "snapshots": snapshots,
        "mc_floor_at_T": {"kernel_scale": scales[1], **floor},
        "mc_floors": floors,
        "particles": traj.summary(),
    }
    edb = energy_dissipation_residual(traj)
    if edb is not None:
        result["edb_residual"] = edb
    if mesh_split and name == "lambda-fr" and problem.flow.alpha == 0 and params.lam > 0:
        result["two_stage_split"] = _lambda_frk_split(problem, params, traj, reference, scales, comm)
    return {"result": result, "trajectory": traj}


def energy_dissipation_residual(traj):
    """F(μ_T) − F(μ_0) + Σ_n τ_n D_n along a particle run that records an energy estimate and the
    dissipation rate D_n at the start of every step (MATH §2.4; left-endpoint quadrature, so O(τ)
    even for an exact gradient flow).  None where the method has no computable energy."""
    if traj.energy is None or not traj.steps or "dissipation" not in traj.steps[0]:
        return None
    # "rate" = −dF/dt of the method's ODE (e.g. β Σ w ξ̂ (r − ⟨r⟩) for λ-FRk on P) where recorded;
    # "dissipation" alone may be an uncentred KRR quadratic form
    key = "rate" if "rate" in traj.steps[0] else "dissipation"
    if any(s.get(key) is None for s in traj.steps):
        return None
    dissipated = float(sum(s["tau"] * s[key] for s in traj.steps))
    return {"energy_change": float(traj.energy[-1] - traj.energy[0]), "dissipated": dissipated,
            "residual": float(traj.energy[-1] - traj.energy[0] + dissipated)}


def _lambda_frk_split(problem, params, traj, reference, scales, comm=None) -> dict:
    """Stage 1: particles vs mesh λ-FRk (same kernel, λ, dt); stage 2: mesh λ-FRk vs reference."""
    from .fem.nonlocal_flows import DENSE_VERTEX_LIMIT, solve_lambda_frk_mesh

    n_ref = (reference.get("summary") or {}).get("parameters", {}).get("n")
    n_ref = int(n_ref) if n_ref is not None else None
    n = n_ref
    if n is None or (n + 1) ** problem.dim > DENSE_VERTEX_LIMIT:
        n = int(DENSE_VERTEX_LIMIT ** (1 / problem.dim)) - 1
    bandwidth = traj.info.get("bandwidth") or traj.params.get("bandwidth") or params.sigma
    if bandwidth is None:
        bandwidth = median_bandwidth(traj.x[0])
    from mpi4py import MPI

    mesh = solve_lambda_frk_mesh(problem, n, params.dt, params.lam, Kernel(params.kernel, float(bandwidth)),
                                 comm=MPI.COMM_WORLD if comm is None else comm)
    stages = []
    for k, t in enumerate(traj.times):
        stage1 = _distances(traj.x[k], traj.w[k], mesh["x"], mesh["rho"][k], mesh["m"], scales)
        y, v = compare.mesh_cloud(mesh["x"], mesh["rho"][k], mesh["m"])
        stage2 = _distances(y, v, reference["x"], reference["rho"][k], reference["m"], scales)
        stages.append({"t": float(t), "particles_vs_mesh_method": stage1, "mesh_method_vs_reference": stage2})
    return {"mesh_n": n, "bandwidth": float(bandwidth), "lam": params.lam, "snapshots": stages}
