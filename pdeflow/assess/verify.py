"""`pdeflow verify`: is a particle method consistent with the continuum PDE it claims to approximate?

Procedure (docs/verification-of-methods.md has the long form and the assumptions):

1. **Continuum.** The method declares its continuum at fixed parameters (``MethodDecl.continuum``,
   or ``--continuum``); pdeflow solves it on the mesh at two resolutions n and n/2 (τ ∝ h² for the
   FE ``flow``) and takes ρ_C = the fine solution, with the error estimate
   ε_k = MMD(ρ_n(t_k), ρ_{n/2}(t_k))/3 (second order: the fine error is a third of the difference).
2. **Sweep.** A ladder in N (``PLANS``) with several seeds at the method's dt, and a ladder in dt
   (dt, dt/2, dt/4) at a middle N — unless the method has no time step or its continuum depends on
   it (``dt_in_continuum``, e.g. a splitting at fixed step h).  Every run is one call of the method.
3. **Error model.** Per run, E = Σ_k MMD²_k(μ̂_{t_k}, ρ_C(t_k)) over all snapshots (t = 0 included:
   the initial data are checked too), with the multi-scale Gaussian kernel k of
   :mod:`pdeflow.assess.measures`.  Because MMD² is a squared RKHS norm, E splits exactly into
   ‖bias‖² + variance.  With a bias b(dt) = r + δ_ref + c·dt + O(dt²) (r: the method's structural
   residual, δ_ref: the reference's own error) and a variance V/N (any rate of the interaction
   is fine as long as the excess decays like 1/N or faster),
       E[E] = A0 + A1·dt + A2·dt² + V/N,   A0 = ‖r + δ_ref‖²,
   fitted by weighted least squares (weights N², as sd(E) ∝ 1/N).  The extrapolated residual is
   R = √max(A0, 0) (N → ∞, dt → 0); its 95 % interval [R_lo, R_hi] comes from a bootstrap over the
   seeds of every configuration (1000 resamples).  No Monte-Carlo floor is assumed: interacting
   systems may beat it (SVGD does), which only makes V smaller.
4. **Verdict.** The tolerance is δ = max(rtol·S, 2 ε), S = √Σ_k MMD²_k(ρ_C(t_k), ρ_C(0)) how far
   the flow moves (``rtol`` default 0.05), ε = √Σ ε_k² the reference's error.
   ``inconsistent`` if R_lo > δ (a residual that neither N nor dt removes, larger than the
   reference's error bar and than rtol of the motion); ``consistent`` if R_hi ≤ δ; otherwise
   ``inconclusive`` (the sweep cannot resolve δ: more particles or seeds, ``--plan thorough``).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from ..approx.kernels import median_bandwidth
from ..approx.methods import MethodDecl, get_method

PLANS = {
    # N ladder, seeds per configuration, dt factors (dt ladder at N = n_particles[dt_at])
    "quick": {"n_particles": (100, 200, 400, 800), "seeds": 4, "dt_factors": (1.0, 0.5, 0.25), "dt_at": 2},
    "standard": {"n_particles": (200, 400, 800, 1600), "seeds": 5, "dt_factors": (1.0, 0.5, 0.25), "dt_at": 2},
    "thorough": {"n_particles": (500, 1000, 2000, 4000), "seeds": 8, "dt_factors": (1.0, 0.5, 0.25), "dt_at": 2},
}
DEFAULT_RTOL = 0.1
BOOTSTRAP = 1000
SCALE_FREE = ("bilinear", "energy")
SIGMA_DRAW = 2000  # particles of the fixed median-heuristic bandwidth draw


class VerifyError(ValueError):
    """A verification that cannot be set up (one line, exit 2)."""


def metric_scales(problem) -> tuple:
    from ..verify import metric_scales as scales

    return scales(problem)


def default_resolution(problem, name: str) -> int:
    if name == "flow":
        return {1: 200, 2: 32, 3: 16}[problem.dim]
    return {1: 200, 2: 32, 3: 12}[problem.dim]


def resolve(problem, method, params, continuum=None) -> tuple:
    """(decl, params, (continuum name, continuum params), notes): the method's declaration, the
    parameters with a fixed bandwidth where the method would otherwise pick one per run, and the
    continuum to check against."""
    from ..continua import ContinuumError, parse_continuum

    decl = get_method(method) if isinstance(method, str) else method
    if not isinstance(decl, MethodDecl):
        raise VerifyError(f"method {method!r}: not a method")
    if decl.refuse is not None:
        reason = decl.refuse(problem, params)
        if reason:
            raise VerifyError(reason)
    notes = []
    if params.sigma is None and params.kernel not in SCALE_FREE and "sigma" in decl.uses:
        from ..approx import initial_particles

        x0, _ = initial_particles(problem, SIGMA_DRAW, seed=987654321)
        sigma = round(median_bandwidth(x0), 4)
        params = params.with_changes(sigma=sigma)
        notes.append(f"sigma fixed at {sigma:g} (median heuristic of {SIGMA_DRAW} draws of rho0) for the method "
                     f"and its continuum: a per-run heuristic would change the continuum with N")
    for key in decl.fixed_for_verify:
        if params.extra.get(key) is None:
            from ..approx import initial_particles

            x0, _ = initial_particles(problem, SIGMA_DRAW, seed=987654321)
            value = round(median_bandwidth(x0), 4)
            params = params.with_changes(extra={**params.extra, key: value})
            notes.append(f"{key} fixed at {value:g} (median heuristic of {SIGMA_DRAW} draws of rho0): a per-step "
                         "heuristic has no fixed continuum")
    if continuum is None:
        if decl.continuum is None:
            raise VerifyError(f"method {decl.name} declares no continuum; give --continuum NAME[:key=value,...]")
        try:
            name, cparams = decl.continuum(problem, params)
        except ValueError as exc:
            raise VerifyError(f"{decl.name}: {exc}") from None
    else:
        try:
            name, cparams = parse_continuum(continuum) if isinstance(continuum, str) else continuum
        except ContinuumError as exc:
            raise VerifyError(str(exc)) from None
        cparams = dict(cparams)
        # parameters the user left out of --continuum NAME[:...] come from the method's own declaration
        if decl.continuum is not None:
            try:
                dname, dparams = decl.continuum(problem, params)
            except ValueError:
                dname, dparams = None, {}
            if dname == name:
                cparams = {**dparams, **cparams}
    from ..continua import fill_from_params

    cparams = fill_from_params(name, {k: v for k, v in cparams.items() if v is not None}, params)
    return decl, params, (name, cparams), notes


def solve_continuum_pair(problem, name: str, cparams: dict, n: int, comm) -> dict:
    """The continuum at n and n/2 and the per-snapshot error estimate of the fine one."""
    from .. import continua

    if name == "flow":
        h = problem.domain.diameter_box / n
        tau = min(h * h, 0.01)
        fine = continua.solve(problem, name, cparams, n, comm=comm, tau=tau)
        coarse = continua.solve(problem, name, cparams, n // 2, comm=comm, tau=4 * tau)
    else:
        fine = continua.solve(problem, name, cparams, n, comm=comm)
        coarse = continua.solve(problem, name, cparams, n // 2, comm=comm)
    return {"fine": fine, "coarse": coarse}


def decide(r_lo: float, r_hi: float, tol: float) -> str:
    """The verdict from the 95 % interval [r_lo, r_hi] of the extrapolated residual and the tolerance."""
    if r_lo > tol:
        return "inconsistent"
    if r_hi <= tol:
        return "consistent"
    return "inconclusive"


def extrapolation_weights(N, dt, use_dt: bool) -> np.ndarray:
    """a with Σ_c a_c b_c the weighted least-squares estimate of b0 in the vector model
    b_c = b0 + dt_c·g (use_dt) or b_c = b0, weights N_c (the embedding noise has variance ∝ 1/N).
    Σ a_c = 1, and Σ a_c dt_c = 0 with the dt model, so an O(dt) bias cancels."""
    N, dt = np.asarray(N, float), np.asarray(dt, float)
    X = np.column_stack([np.ones_like(N)] + ([dt] if use_dt else []))
    W = np.diag(N / N.max())
    return (np.linalg.solve(X.T @ W @ X, X.T @ W))[0]


def bias_gram(D: np.ndarray, idx=None) -> np.ndarray:
    """Γ_cc' = unbiased estimate of ⟨b_c, b_c'⟩ from the deviations D (C × S × F) of the runs'
    embeddings from the reference: pooled means across configurations (independent runs), pairs of
    distinct seeds within a configuration (a seed paired with itself holds the variance term).
    ``idx``: resampled seed indices (bootstrap); ties are dropped within a configuration."""
    C, S, _ = D.shape
    idx = np.arange(S) if idx is None else np.asarray(idx)
    Ds = D[:, idx, :]
    means = Ds.mean(axis=1)
    G = means @ means.T
    for c in range(C):
        inner = Ds[c] @ Ds[c].T
        keep = np.triu(idx[:, None] != idx[None, :], 1)
        G[c, c] = float(inner[keep].mean()) if keep.any() else float("nan")
    return G


def loglog_slope(xs, ys_boot) -> dict:
    """Slope of log y vs log x (first row: the estimate; the others: bootstrap replicates)."""
    lx = np.log(np.asarray(xs, float))
    vals = []
    for ys in ys_boot:
        ys = np.asarray(ys, float)
        vals.append(np.polyfit(lx, np.log(ys), 1)[0] if np.all(ys > 0) else np.nan)
    vals = np.array(vals)
    rest = vals[1:][np.isfinite(vals[1:])]
    ci = [float(np.percentile(rest, 2.5)), float(np.percentile(rest, 97.5))] if rest.size > 10 else [float("nan")] * 2
    return {"rate": float(vals[0]), "ci": ci}


def verify_method(problem, method, params, continuum=None, plan="standard", rtol: float = DEFAULT_RTOL,
                  n: int = None, comm=None, progress: bool = False, keep_runs: bool = True,
                  reference: dict = None) -> dict:
    """Run the procedure of the module docstring; returns a JSON-safe dict with ``verdict``
    (``status``, ``summary``, ``evidence``), ``runs`` and the continuum's solution.

    ``reference``: {"fine": {t, x, rho, m, params}, "eps": per-snapshot error} — an exported
    reference file standing for the solved ``flow`` continuum (step 1 is then skipped; ε_k is the
    file's certified MMD estimate instead of the fine/coarse difference); other continua refuse it."""
    from mpi4py import MPI

    from ..approx.methods import run_approximation
    from .measures import FeatureMap

    comm = MPI.COMM_WORLD if comm is None else comm
    if isinstance(plan, str):
        if plan not in PLANS:
            raise VerifyError(f"--plan: unknown plan {plan!r}; choose from {', '.join(PLANS)}")
        plan_name, plan = plan, PLANS[plan]
    else:
        plan_name = "custom"
    if not (0 < rtol < 1):
        raise VerifyError(f"--rtol must lie in (0, 1), got {rtol!r}")
    started = time.perf_counter()
    decl, params, (cname, cparams), notes = resolve(problem, method, params, continuum)
    if reference is not None and cname != "flow":
        raise VerifyError(f"--reference: an exported reference is the case's own flow; it cannot stand for the "
                          f"continuum {cname!r} of {decl.name}")
    if reference is not None:
        fine = reference["fine"]
        n = fine.get("params", {}).get("n")
    else:
        n = n or default_resolution(problem, cname)
        pair = solve_continuum_pair(problem, cname, cparams, n, comm)
        fine, coarse = pair["fine"], pair["coarse"]
    scales = metric_scales(problem)
    times = np.asarray(problem.snapshot_times(), float)
    K = times.size
    fmap = FeatureMap(scales, problem.dim)
    ref = np.concatenate([fmap.embed_mesh(fine["x"], fine["rho"][k], fine["m"]) for k in range(K)])
    F = fmap.size
    if reference is not None:
        eps = np.asarray(reference["eps"], float)
    else:
        ref_coarse = np.concatenate([fmap.embed_mesh(coarse["x"], coarse["rho"][k], coarse["m"]) for k in range(K)])
        eps = np.array([np.linalg.norm(ref[k * F:(k + 1) * F] - ref_coarse[k * F:(k + 1) * F]) / 3.0
                        for k in range(K)])
    motion = float(math.sqrt(sum(np.sum((ref[k * F:(k + 1) * F] - ref[:F]) ** 2) for k in range(K))))
    eps_total = float(math.sqrt(np.sum(eps**2)))
    t_continuum = time.perf_counter() - started

    uses_dt = "dt" in decl.uses and not decl.dt_in_continuum
    Ns = tuple(int(v) for v in plan["n_particles"])
    seeds = int(plan["seeds"])
    configs = [(N, params.dt) for N in Ns]
    if uses_dt:
        n_dt = Ns[plan["dt_at"]]
        configs += [(n_dt, params.dt * f) for f in plan["dt_factors"] if f != 1.0]
    tasks = [(ci, s) for ci in range(len(configs)) for s in range(seeds)]
    mine = tasks[comm.rank::comm.size]
    results = {}
    bar = None
    if progress and comm.rank == 0:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(mine), desc=f"verify {decl.name}", unit="run", leave=False)
        except ImportError:
            bar = None
    failure = None
    for ci, s in mine:
        N, dt = configs[ci]
        p = params.with_changes(n_particles=N, dt=float(dt), seed=1000 * ci + s + params.seed)
        try:
            traj = run_approximation(problem, decl, p)
            emb = np.concatenate([fmap.embed(traj.x[k], traj.w[k]) for k in range(K)])
            if not np.all(np.isfinite(emb)):
                raise ValueError("a non-finite embedding")
            results[(ci, s)] = (emb - ref, p.seed)
        except Exception as exc:  # agreed on below: every rank must reach the gather
            failure = f"run N = {N}, dt = {dt:g}, seed {p.seed}: {type(exc).__name__}: {exc}"
            break
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    gathered = comm.allgather((results, failure))
    failures = [f for _, f in gathered if f]
    if failures:
        raise VerifyError(f"{decl.name}: {failures[0]}")
    for part, _ in gathered:
        results.update(part)

    C = len(configs)
    D = np.array([[results[(ci, s)][0] for s in range(seeds)] for ci in range(C)])  # C × S × (K·F)
    E = np.einsum("csf,csf->cs", D, D)  # per run: Σ_k MMD²_k to the continuum
    Nc = np.array([c[0] for c in configs], float)
    dtc = np.array([c[1] for c in configs], float)
    a = extrapolation_weights(Nc, dtc, uses_dt)
    Gam = bias_gram(D)
    A0 = float(a @ Gam @ a)
    bias2 = np.diag(Gam)
    rng = np.random.default_rng(12345)
    boots, fluct_boot = [], []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, seeds, seeds)
        Gb = bias_gram(D, idx)
        if not np.all(np.isfinite(Gb)):
            continue
        boots.append(float(a @ Gb @ a))
        fluct_boot.append(np.maximum(E[:, idx].mean(axis=1) - np.diag(Gb), 1e-300))
    boots = np.array(boots)
    R = math.sqrt(max(A0, 0.0))
    Rb = np.sqrt(np.clip(boots, 0.0, None))
    R_lo, R_hi = float(np.percentile(Rb, 2.5)), float(np.percentile(Rb, 97.5))
    tol = max(rtol * motion, 2.0 * eps_total)
    where = "N -> inf" + (", dt -> 0" if uses_dt else "")
    status = decide(R_lo, R_hi, tol)
    interval = f"residual {R:.3e} [{R_lo:.3e}, {R_hi:.3e}] ({where})"
    basis = f"(rtol {rtol:g} x motion {motion:.3e}; reference error {eps_total:.2e})"
    summary = {"inconsistent": f"{interval} exceeds the tolerance {tol:.3e} {basis}",
               "consistent": f"{interval} within the tolerance {tol:.3e} {basis}",
               "inconclusive": f"{interval} straddles the tolerance {tol:.3e}: the sweep cannot resolve it "
                               f"(use a larger --plan)"}[status]

    fluct = np.maximum(E.mean(axis=1) - bias2, 1e-300)
    n_rows = [ci for ci in range(C) if configs[ci][1] == params.dt]
    rate_N = loglog_slope(Nc[n_rows], [np.sqrt(fluct[n_rows])] + [np.sqrt(fb[n_rows]) for fb in fluct_boot[:300]])
    dt_rows = sorted((ci for ci in range(C) if configs[ci][0] == configs[-1][0]), key=lambda ci: configs[ci][1])
    rate_dt = None
    if uses_dt and len(dt_rows) >= 2:
        # the bias against dt: √bias² where it is resolved (positive), slope on log–log
        b_dt = np.array([bias2[ci] for ci in dt_rows])
        rate_dt = {"dt": [float(dtc[ci]) for ci in dt_rows], "sqrt_bias2": [float(math.sqrt(v)) if v > 0 else None for v in b_dt],
                   "rate": float(np.polyfit(np.log(dtc[dt_rows]), 0.5 * np.log(b_dt), 1)[0]) if np.all(b_dt > 0) else None,
                   "what": "slope of log sqrt(bias^2) vs log dt at the middle N (the time-step order where the bias is "
                           "resolved; a residual that does not vanish as dt -> 0 flattens it)"}
    evidence = {
        "method": decl.name,
        "method_source": decl.source,
        "continuum": {"name": cname, "params": cparams, "n": n, "n_coarse": None if reference is not None else n // 2,
                      "solver": fine.get("params", {}), "wall_s": t_continuum},
        "notes": notes,
        "plan": {"name": plan_name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in plan.items()}},
        "metric": {"kind": "sum over snapshots of MMD^2 with the multi-scale Gaussian kernel (random Fourier features, "
                           f"{fmap.omega.shape[0] // len(scales)} per scale, fixed seed)", "scales": list(scales)},
        "reference_error": {"per_snapshot": eps.tolist(), "total": eps_total,
                            "how": ("the reference file's certified MMD estimates (sqrt of the sum over scales)"
                                    if reference is not None else
                                    "MMD between the continuum at n and n/2, divided by 3 (second order)")},
        "motion": motion,
        "tolerance": tol,
        "rtol": rtol,
        "fit": {"model": "bias_c = b0" + (" + dt_c g" if uses_dt else "") + " (weighted least squares in the RKHS, "
                         "weights N)", "weights": a.tolist(), "A0": A0,
                "A0_ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
                "residual": R, "residual_ci": [R_lo, R_hi], "bootstrap": int(boots.size),
                "how": "bias products <b_c, b_c'> estimated without the variance term (distinct seeds / independent "
                       "configurations); 95% interval from a bootstrap over the seeds"},
        "rate_N": {**rate_N, "expected": "-0.5 for i.i.d.-like fluctuations (faster for interacting systems)",
                   "what": "slope of log sqrt(E - bias^2) (the fluctuation) vs log N at the method's dt"},
        **({"rate_dt": rate_dt} if rate_dt else {}),
        "configs": [{"n_particles": int(c[0]), "dt": float(c[1]), "E": E[i].tolist(), "mean_E": float(E[i].mean()),
                     "sqrt_mean_E": float(math.sqrt(E[i].mean())), "bias2": float(bias2[i]),
                     "fluctuation": float(math.sqrt(fluct[i]))} for i, c in enumerate(configs)],
        "dt_ladder": bool(uses_dt),
        "wall_s": time.perf_counter() - started,
        "mpi_size": comm.size,
    }
    out = {
        "verdict": {"status": status, "summary": summary, "evidence": evidence},
        "params": params.describe(),
        "continuum_solution": {k: fine[k] for k in ("t", "x", "m", "rho")},
    }
    if keep_runs:
        out["runs"] = [{"n_particles": configs[ci][0], "dt": configs[ci][1], "seed": results[(ci, s)][1],
                        "mmd2_total": float(E[ci, s])} for ci in range(C) for s in range(seeds)]
    return out


def representative_run(problem, decl, params, n_particles: int, seed: int = 0):
    """One run for the particle-vs-continuum plots."""
    from ..approx.methods import run_approximation

    return run_approximation(problem, decl, replace(params, n_particles=n_particles, seed=seed))
