"""The study runner: an MPI task farm over sub-communicators, writing every finished run at once.

    pdeflow study SPEC.toml [--out DIR] [--resume] [--ranks-per-run g]

Layout under ``mpirun -n P``:

* P = 1: the single rank runs every run itself.
* P ≥ 2: world rank 0 is the dispatcher (and the only writer); ranks 1 … P−1 form (P−1)/g
  groups of g ranks.  Each group's leader asks rank 0 for work, gets the largest remaining run
  (largest estimated cost first), broadcasts it to its group, and the group runs it — a reference
  run domain-decomposed over the group's communicator, a particle run on the leader (particle
  methods are numpy) — then the leader sends the result back with its next request.  The
  dispatcher waits with a sleeping probe, so it does not burn a core.

Rank 0 commits each result to the SQLite store as soon as it arrives, so ``kill -9`` loses at most
the runs in progress; ``--resume`` skips the runs the store already holds (done or failed;
``--retry-failed`` runs the failed ones again).  A run
that raises (Newton floor, NaN, an exception on one rank of its group) is stored as failed with its
message: every rank of the group catches, the group agrees with an allreduce, and the study goes
on.  The FE references of particle runs are runs of their own (group ``_reference``), computed once
and reused through their snapshot files in DIR/runs/.

Test hook: ``PDEFLOW_STUDY_FAIL=<group label>:<group rank>`` raises in every run of that group on
that rank (used by the MPI test that a one-rank exception never hangs the study).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..agreement import agree, inject, stage

TAG_REQUEST, TAG_WORK = 11, 12
REFERENCE_GROUP = "_reference"


def _run_id(run: dict) -> str:
    key = {k: run.get(k) for k in ("kind", "case", "method", "params", "seed")}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reference_run_for(run: dict, T) -> dict:
    """The FE reference run that a particle run is compared with (shared by all runs that need it)."""
    ref = dict(run["params"]["reference"])
    params = {"n": int(ref["n"]), "tau": float(ref["tau"])}
    if T is not None:
        params["T"] = T
    # the reference solves the flow the particles approximate: the group's alpha/beta overrides too
    # (without them an approx group with alpha = 0 was compared with the WFR flow of the case)
    for k in ("alpha", "beta"):
        if k in run["params"]:
            params[k] = run["params"][k]
    r = {"group": REFERENCE_GROUP, "kind": "reference", "case": run["case"], "method": None, "params": params,
         "seed": None, "sweep": {"n": params["n"], "tau": params["tau"]}}
    r["run_id"] = _run_id(r)
    r["cost"] = float(params["n"]) / params["tau"]
    return r


def _problem(run: dict):
    from ..cases import apply_overrides, get_case

    problem = get_case(run["case"])
    over = {k: run["params"][k] for k in ("T", "alpha", "beta") if k in run["params"]}
    problem, _ = apply_overrides(problem, over)
    return problem


# ------------------------------------------------------------------------------------------
# executing one run on a group communicator
# ------------------------------------------------------------------------------------------
def execute(run: dict, comm, runs_dir: Path) -> dict:
    """Run ``run`` collectively on ``comm``; returns the result dict (on every rank) and, for
    reference runs, the gathered snapshots under key "_snapshots" (rank 0 of comm only)."""
    fail = os.environ.get("PDEFLOW_STUDY_FAIL")
    t0 = time.perf_counter()
    message, out = None, None
    # stage 1, set-up (the case, imports of dolfinx/petsc4py, the injected test failure): agreed on before
    # the solver's first collective, so that a rank failing here cannot leave its peers waiting in one
    try:
        if fail and fail == f"{run['group']}:{comm.rank}":
            raise RuntimeError(f"injected failure on rank {comm.rank} of group {run['group']!r}")
        inject("run")
        _problem(run)
        if run["kind"] == "reference":
            from ..fem import solve_reference  # noqa: F401
    except Exception as exc:  # noqa: BLE001 — any failure of a run is a stored result, not a crash
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    if not comm.allreduce(message is not None):
        # stage 2, the run itself
        try:
            out = _execute_reference(run, comm) if run["kind"] == "reference" else _execute_approx(run, comm, runs_dir)
            bad = _non_finite_metric(out.get("metrics"))
            if bad:  # a NaN metric is a failed run, not a number to fit
                raise FloatingPointError(f"non-finite metric {bad}")
        except Exception as exc:  # noqa: BLE001
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    # agree: a failure on any rank fails the run on all ranks (no rank enters another collective)
    failed = comm.allreduce(message is not None)
    if failed:
        messages = [m for m in comm.allgather(message) if m]
        result = {"status": "failed", "message": messages[0] if messages else "failed on another rank",
                  "metrics": None, "stats": None}
    else:
        result = {"status": "done", "message": None, **out}
    from ..fem.compat import versions

    result.update({"wall": comm.allreduce(time.perf_counter() - t0, op=_max_op()), "versions": versions(),
                   "mpi_size": comm.size, "seed": run.get("seed")})
    return result


# metrics that are NaN by design where they cannot be measured (the boundary layer of a reference that
# holds almost no mass there), not by failure
MAY_BE_NAN = ("boundary_layer", "boundary_layer_signed")


def _non_finite_metric(metrics):
    """The name of the first metric holding a NaN or inf (lists included), or None."""
    for key, value in (metrics or {}).items():
        if key in MAY_BE_NAN:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
                return key
    return None


def _max_op():
    from mpi4py import MPI

    return MPI.MAX


def _execute_reference(run: dict, comm) -> dict:
    from ..fem import solve_reference

    problem = _problem(run)
    traj = solve_reference(problem, n=int(run["params"]["n"]), tau=float(run["params"]["tau"]), comm=comm,
                           progress=False)
    metrics = {"t": [float(t) for t in traj.times]}
    if traj.errors is not None:
        for key in ("L1", "L2", "hellinger", "mass_rel"):
            metrics[key] = [e[key] for e in traj.errors]
    estimate = None
    if run.get("group") == REFERENCE_GROUP:
        # the error bar of the reference that particle runs are measured against (drawn on their
        # plots): companion solves at 2τ and n/2, pdeflow.fem.certified.estimate_error
        from ..fem.certified import estimate_error

        estimate = estimate_error(traj)["snapshots"]
        metrics["error_estimate_L1"] = [float(e["L1"]) for e in estimate]
    stats = traj.summary()["statistics"]
    masses = traj.space.gather(traj.space.lumped_mass)
    out = {"metrics": metrics, "stats": stats}
    if comm.rank == 0:
        steps = traj.steps
        extra = {}
        if estimate is not None:
            keys = sorted(estimate[0]["mmd"], key=float)
            extra = {"err_scales": np.array([float(k) for k in keys]),
                     "err_mmd": np.array([[float(e["mmd"][k]) for k in keys] for e in estimate]),
                     "err_L1": np.array([float(e["L1"]) for e in estimate])}
        out["_snapshots"] = {**extra,
            "t": traj.times, "x": traj.x, "rho": traj.rho, "m": masses,
            # per-step histories for the report's energy / energy-identity plots
            "step_t": np.array([0.0] + [s["t"] for s in steps]),
            "step_energy": np.array([traj.initial["energy"]] + [s["energy"] for s in steps]),
            "step_identity": np.array([np.nan] + [s.get("identity_residual_rel", np.nan) for s in steps]),
        }
    return out


FLOOR_SEEDS = 20


def _floors(problem, reference: dict, ref_id: str, n: int, runs_dir: Path) -> dict:
    """The Monte-Carlo floors (pdeflow.compare.mc_floors: FLOOR_SEEDS oracle draws at every snapshot
    and scale) of n particles against one reference: computed once per (reference, n) and kept in
    the runs directory — at n = 10⁶ they cost minutes, and every method and seed shares them."""
    from .. import compare
    from ..assess.verify import metric_scales

    path = runs_dir / f"floor-{ref_id}-{int(n)}-{FLOOR_SEEDS}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    rng = np.random.default_rng([int(n), FLOOR_SEEDS, int(ref_id[:8], 16)])
    floors = compare.mc_floors(metric_scales(problem), reference["x"], reference["rho"], reference["m"], int(n),
                               seeds=FLOOR_SEEDS, rng=rng, times=reference["t"])
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:  # a cache: a failed write costs a recomputation, never the run
        tmp.write_text(json.dumps(floors))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return floors


def _execute_approx(run: dict, comm, runs_dir: Path) -> dict:
    """Particle runs are numpy: the leader computes, the other ranks of the group wait."""
    result = None
    if comm.rank == 0:
        from ..approx import MethodParams
        from ..verify import evaluate

        problem = _problem(run)
        p = run["params"]
        params = MethodParams(
            n_particles=int(p["n_particles"]), lam=float(p.get("lam", 1e-3)), sigma=p.get("sigma"),
            kernel=p.get("kernel", "gaussian"), dt=float(p.get("dt", 0.01)), seed=int(run.get("seed") or 0),
            xi=p.get("xi", "a"), extra=dict(p.get("extra", {})),
        )
        ref_id = reference_run_for(run, p.get("T"))["run_id"]
        data = np.load(runs_dir / f"{ref_id}.npz")
        reference = {k: data[k] for k in ("t", "x", "rho", "m")}
        floors = _floors(problem, reference, ref_id, params.n_particles, runs_dir)
        evaluated = evaluate(problem, run["method"], params, reference, mesh_split=False, floors=floors)
        res, traj = evaluated["result"], evaluated["trajectory"]
        metrics = {"t": [s["t"] for s in res["snapshots"]]}
        names = {"mmd_small": 0, "mmd": 1, "mmd_large": 2}
        for name, idx in names.items():
            key = str(res["metric_scales"][idx])
            metrics[name] = [s["reference"]["mmd_gaussian"][key] for s in res["snapshots"]]
            # the Monte-Carlo floor and the reference's own error at this scale, per snapshot
            metrics[f"mc_floor_{name}"] = [row[idx] for row in floors["mean"]]
            if "err_mmd" in data.files:
                metrics[f"ref_error_{name}"] = [float(v) for v in data["err_mmd"][:, idx]]
            if all("exact" in s for s in res["snapshots"]):
                # the case's closed form on the same vertex quadrature: a judge without the FE error
                metrics[f"{name}_exact"] = [s["exact"]["mmd_gaussian"][key] for s in res["snapshots"]]
        if all("energy_distance_normalized" in s["reference"] for s in res["snapshots"]):
            # absent, not NaN, where it is not computed (d >= 2, N > verify.LARGE_N): a NaN fails the run
            metrics["energy_distance"] = [s["reference"]["energy_distance_normalized"] for s in res["snapshots"]]
        metrics["mass_error"] = [s["reference"]["mass_error"] for s in res["snapshots"]]
        if all("w2_normalized" in s["reference"] for s in res["snapshots"]):
            metrics["w2"] = [s["reference"]["w2_normalized"] for s in res["snapshots"]]
        # not measurable (the reference holds < 1e-4 of its mass in the layer): no number, not −1
        layer = [float("nan") if s["reference"]["boundary_layer"]["relative_error"] is None
                 else s["reference"]["boundary_layer"]["relative_error"] for s in res["snapshots"]]
        metrics["boundary_layer"] = [abs(v) for v in layer]  # fitted on log-log: the size
        metrics["boundary_layer_signed"] = layer  # kept for the sign (depletion < 0 < pile-up)
        metrics["mc_floor"] = res["mc_floor_at_T"]["mean"]
        result = {"metrics": metrics, "stats": {"n_steps": len(res["particles"]["steps"])},
                  "_snapshots": {"t": traj.times, "x": traj.x, "w": traj.w, "reference_run": ref_id}}
    # a particle run is done on the leader; the exception (if any) was raised there
    error = comm.bcast(None if result is not None or comm.rank != 0 else "no result", root=0)
    if error:
        raise RuntimeError(error)
    return result if result is not None else {"metrics": None, "stats": None}


# ------------------------------------------------------------------------------------------
# the farm
# ------------------------------------------------------------------------------------------
def _order(runs: list) -> list:
    return sorted(runs, key=lambda r: (-float(r.get("cost", 0.0)), r["run_id"]))


def plan(spec) -> tuple:
    """(runs, membership): every distinct run (the spec's plus the shared FE references of the
    particle runs, which go first) and, per run_id, the groups it belongs to."""
    runs, membership = {}, {}
    for r in spec.runs():
        runs[r["run_id"]] = r
    for group in spec.groups:
        for r in group.runs:
            membership.setdefault(r["run_id"], set()).add(group.label)
            runs.setdefault(r["run_id"], r)
    refs = {}
    for r in list(runs.values()):
        if r["kind"] == "approx":
            ref = reference_run_for(r, r["params"].get("T"))
            refs.setdefault(ref["run_id"], ref)
            membership.setdefault(ref["run_id"], set()).add(REFERENCE_GROUP)
    ordered = _order(list(refs.values())) + _order([r for k, r in runs.items() if k not in refs])
    return ordered, membership


def run_study(spec, out_dir, comm=None, ranks_per_run: int = 1, resume: bool = False, progress: bool = True,
              retry_failed: bool = False) -> dict:
    """Run every run of ``spec`` into ``out_dir`` (collective over ``comm``); returns a summary
    (on rank 0) with the numbers of done / failed / skipped runs and the wall time."""
    if retry_failed:  # a resume that runs the stored failures again (their rows are replaced)
        resume = "retry-failed"
    from mpi4py import MPI

    comm = MPI.COMM_WORLD if comm is None else comm
    size, rank = comm.size, comm.rank
    if ranks_per_run < 1 or (size > 1 and (size - 1) % ranks_per_run != 0):
        raise ValueError(f"--ranks-per-run {ranks_per_run}: the {size - 1} worker ranks (all but the dispatcher) "
                         f"must split into groups of that size")
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"
    t0 = time.perf_counter()
    if size == 1:
        return _run_serial(spec, out_dir, runs_dir, comm, resume, progress, t0)
    # PETSc initializes collectively over COMM_WORLD on first import: every rank (the dispatcher
    # too) must import it here, before the groups go their own ways
    with stage("import", comm):
        from .. import fem  # noqa: F401

    color = 0 if rank == 0 else 1 + (rank - 1) // ranks_per_run
    group_comm = comm.Split(color, rank)
    try:
        # rank 0 alone takes the lock and opens the store: agreed on before the farm starts (a locked,
        # corrupt or read-only store used to leave the workers waiting for work)
        held = None
        with stage("store", comm):
            if rank == 0:
                held = _open_locked(spec, out_dir, resume)
        summary, error = {}, None
        if rank == 0:
            summary, error = _dispatch(spec, held, runs_dir, comm, resume, progress, t0)
        else:
            _work(comm, group_comm, runs_dir)
        # a store write that failed on rank 0 stopped the farm; every rank raises it now
        agree(comm, error, "store")
        return summary
    finally:
        if held is not None:
            _release(held)
        group_comm.Free()


def _open_locked(spec, out_dir: Path, resume):
    """Take ``out_dir/study.lock`` (an flock: released by the kernel when the process dies, so a
    ``kill -9`` leaves no stale lock), then open the store.  A second writer on the same --out is
    refused, and a fresh start on a directory that meanwhile holds a study too (the CLI's check of it
    runs before the lock, so two simultaneous starts both passed it)."""
    import fcntl
    import socket

    from ..cases import CaseError
    from .store import FILENAME

    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise CaseError(f"--out {out_dir}: another pdeflow study is writing there ({holder}); wait for it to end "
                        f"or use another --out") from None
    try:
        if not resume and (out_dir / FILENAME).exists():
            raise CaseError(f"--out {out_dir}: it already holds a study; use --resume to continue it or another --out")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        store = _open_store(spec, out_dir, resume)
    except BaseException:
        os.close(fd)
        raise
    return store, fd


def _release(held) -> None:
    store, fd = held
    try:
        store.close()
    finally:
        os.close(fd)  # closing the descriptor releases the flock


LOCK_NAME = "study.lock"


def _open_store(spec, out_dir: Path, resume: bool):
    from .store import Store

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "runs").mkdir(exist_ok=True)
    store = Store(out_dir / "study.sqlite")
    store.set_meta("name", spec.name)
    store.set_meta("spec", _spec_text(spec.source))
    store.set_meta(META_RUNS, json.dumps(sorted(r["run_id"] for r in spec.runs())))
    return store


META_RUNS = "run_ids"  # the run ids the spec defines: a resume with an edited spec is detected from them


def spec_change(spec, store_path: Path):
    """None if ``spec`` defines the runs the study at ``store_path`` was started with (or the store predates
    the record), else a one-line summary of the difference: a resume must not pool two studies."""
    from .store import Store

    store = Store(store_path)
    try:
        stored = store.get_meta(META_RUNS)
    finally:
        store.close()
    if stored is None:
        return None
    old, new = set(json.loads(stored)), {r["run_id"] for r in spec.runs()}
    if old == new:
        return None
    return (f"the spec differs from the one the study was started with: {len(new - old)} run(s) added, "
            f"{len(old - new)} removed, {len(old & new)} kept")


def _spec_text(source: str) -> str:
    """The spec's TOML text: ``source`` is its path, or (specs built in code) the text itself."""
    try:
        path = Path(source)
        if path.is_file():
            return path.read_text()
    except OSError:  # e.g. a name too long: it is the text
        pass
    return source


def _record(store, run, result, membership, runs_dir: Path):
    snaps = result.pop("_snapshots", None)
    if snaps is not None:
        tmp = runs_dir / f".{run['run_id']}.tmp.npz"
        np.savez(tmp, **snaps)
        tmp.replace(runs_dir / f"{run['run_id']}.npz")
    for label in sorted(membership.get(run["run_id"], {run["group"]})):
        store.put({**run, "group": label}, result)


def _bar(total: int, progress: bool):
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="run")
    return None


def _todo(spec, store, resume):
    runs, membership = plan(spec)
    finished = store.finished_ids(retry_failed=resume == "retry-failed") if resume else set()
    for r in runs:  # runs already stored still belong to every group that lists them
        if r["run_id"] in finished:
            for label in membership.get(r["run_id"], ()):
                store.add_membership(r["run_id"], label)
    return [r for r in runs if r["run_id"] not in finished], membership, len(runs) - len([r for r in runs if r["run_id"] not in finished])


def _run_serial(spec, out_dir, runs_dir, comm, resume, progress, t0) -> dict:
    held = _open_locked(spec, out_dir, resume)
    try:
        return _run_serial_locked(spec, held[0], runs_dir, comm, resume, progress, t0)
    finally:
        _release(held)


def _run_serial_locked(spec, store, runs_dir, comm, resume, progress, t0) -> dict:
    todo, membership, skipped = _todo(spec, store, resume)
    bar = _bar(len(todo), progress)
    counts = {"done": 0, "failed": 0}
    for run in todo:
        result = execute(run, comm, runs_dir)
        inject("store")
        _record(store, run, result, membership, runs_dir)
        counts[result["status"]] += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    _post_process(spec, store, runs_dir)
    return {**counts, "skipped": skipped, "wall": time.perf_counter() - t0}


def _dispatch(spec, held, runs_dir, comm, resume, progress, t0):
    """The dispatcher's loop; returns (summary, error): a store write that fails (disk full, read-only)
    stops the hand-out of work — each leader gets None at its next request, so every worker leaves
    its loop — and is returned for the agreement of all ranks (it used to hang the workers)."""
    from mpi4py import MPI

    store = held[0]
    error = None
    try:
        todo, membership, skipped = _todo(spec, store, resume)
    except (OSError, ValueError) as exc:
        error, todo, membership, skipped = exc, [], {}, 0
    queue = list(todo)
    refs_pending = {r["run_id"] for r in todo if r["group"] == REFERENCE_GROUP}
    refs_failed = set()
    running = {}
    counts = {"done": 0, "failed": 0}
    bar = _bar(len(todo), progress)
    status = MPI.Status()
    active = len(_leaders(comm))
    while active:
        while not comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REQUEST, status=status):
            time.sleep(0.005)  # a sleeping probe: the dispatcher must not take a core from the workers
        source = status.Get_source()
        message = comm.recv(source=source, tag=TAG_REQUEST)
        if message is not None:  # the leader's finished run
            run = running.pop(source)
            if run["run_id"] in refs_pending:
                refs_pending.discard(run["run_id"])
                if message["status"] != "done":
                    refs_failed.add(run["run_id"])
            if error is None:
                try:
                    inject("store")
                    _record(store, run, message, membership, runs_dir)
                except OSError as exc:  # StoreError included
                    error = exc
            counts[message["status"]] += 1
            if bar is not None:
                bar.update(1)
        work = None
        if error is None:
            try:
                work = _next(queue, refs_pending, refs_failed, store, membership, counts, bar)
            except OSError as exc:
                error = exc
        if error is not None:
            queue.clear()
        if work is not None:
            running[source] = work
            comm.send(work, dest=source, tag=TAG_WORK)
        elif queue:  # the remaining particle runs wait for a reference that is being computed
            comm.send({"wait": 0.05}, dest=source, tag=TAG_WORK)
        else:
            comm.send(None, dest=source, tag=TAG_WORK)
            active -= 1
    if bar is not None:
        bar.close()
    if error is None:
        try:
            _post_process(spec, store, runs_dir)
        except OSError as exc:
            error = exc
    return {**counts, "skipped": skipped, "wall": time.perf_counter() - t0}, error


def _leaders(comm) -> list:
    """World ranks of the group leaders (every worker reports whether it leads its group)."""
    flags = comm.gather(None, root=0) if comm.rank == 0 else None
    return [r for r, f in enumerate(flags) if f]


def _next(queue, refs_pending, refs_failed, store, membership, counts, bar):
    """Pop the next runnable run: particle runs wait for their reference; a particle run whose
    reference failed is stored as failed without running."""
    for i, run in enumerate(queue):
        if run["kind"] != "approx":
            return queue.pop(i)
        ref_id = reference_run_for(run, run["params"].get("T"))["run_id"]
        if ref_id in refs_failed:
            queue.pop(i)
            store_result = {"status": "failed", "message": f"its FE reference run {ref_id} failed", "metrics": None,
                            "stats": None, "wall": 0.0, "versions": {}, "mpi_size": 0, "seed": run.get("seed")}
            for label in sorted(membership.get(run["run_id"], {run["group"]})):
                store.put({**run, "group": label}, store_result)
            counts["failed"] += 1
            if bar is not None:
                bar.update(1)
            return _next(queue, refs_pending, refs_failed, store, membership, counts, bar)
        if ref_id not in refs_pending:
            return queue.pop(i)
    return None


def _work(comm, group_comm, runs_dir: Path) -> None:
    leader = group_comm.rank == 0
    comm.gather(leader, root=0)
    result = None
    while True:
        if leader:
            comm.send(result, dest=0, tag=TAG_REQUEST)
            work = comm.recv(source=0, tag=TAG_WORK)
        else:
            work = None
        work = group_comm.bcast(work, root=0)
        if work is None:
            return
        if "wait" in work:
            time.sleep(work["wait"])
            result = None
            continue
        result = execute(work, group_comm, runs_dir)
        if not leader:
            result = None


def _post_process(spec, store, runs_dir: Path) -> None:
    """Richardson groups: add to each level's metrics its distance to the next finer level at the
    final snapshot — "richardson_m2", the difference of the second moments ∫|x|²ρ (lumped
    quadrature; any dimension, and meshes need not be nested, as on gmsh domains), and in 1-D
    "richardson_L1", the L1 distance of the P1 functions (nested 1-D meshes)."""
    from ..compare import p1_distances_1d

    for group in spec.groups:
        if group.kind != "reference" or getattr(group, "target", spec.target) != "richardson":
            continue
        rows = [r for r in store.rows(group=group.label, status="done")]
        rows.sort(key=lambda r: r["params"]["n"])
        for coarse, fine in zip(rows, rows[1:]):
            try:
                a, b = np.load(runs_dir / f"{coarse['run_id']}.npz"), np.load(runs_dir / f"{fine['run_id']}.npz")
                m2 = [float(np.dot(z["m"] * z["rho"][-1], (z["x"] ** 2).sum(axis=1))) for z in (a, b)]
                extra = {"richardson_m2": abs(m2[0] - m2[1])}
                if a["x"].shape[1] == 1:
                    extra["richardson_L1"] = p1_distances_1d(a["x"], a["rho"][-1], b["x"], b["rho"][-1])["L1"]
            except (OSError, ValueError, KeyError):
                continue
            metrics = dict(coarse["metrics"] or {})
            for name, d in extra.items():
                metrics[name] = [float("nan")] * (len(metrics.get("t", [0])) - 1) + [d]
            run = {k: coarse[k] for k in ("run_id", "kind", "case", "method", "params", "seed", "sweep")}
            run["group"] = group.label
            run["cost"] = 0.0
            store.put(run, {**{k: coarse.get(k) for k in ("status", "message", "stats", "wall", "versions", "mpi_size")},
                            "metrics": metrics, "seed": coarse.get("seed")})