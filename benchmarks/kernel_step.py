"""Time and peak memory of one SVGD step and one λ-FRk step: naive dense numpy, pdeflow's chunked numpy
kernel sums, and pdeflow's automatic (fast) back-end.

    python benchmarks/kernel_step.py [--sizes 1000 10000 100000 1000000] [--lam 1e-3] [--json FILE]
                                     [--chunk 2048] [--dense-limit 6000] [--chunked-rank 300]
                                     [--naive-max-svgd 10000] [--naive-max-frk 5000]
                                     [--chunked-max-svgd 20000] [--chunked-max-frk 10000]

d = 2, Gaussian kernel (bandwidth 0.5), particles from N(0, I), uniform weights w_i = 1/N,
target π = N(0, I) (score −x), first variation ξ = |x|²/2 − 0.3 x₁.

* SVGD step (MATH §5.1): φ̂(x_i) = Σ_j w_j [k(x_j, x_i) ∇log π(x_j) + ∇_{x_j} k(x_j, x_i)], i.e.
  pdeflow.approx.methods.stein.svgd_velocity(kernel, x, w, score) (score computed before timing).
* λ-FRk step (MATH §5.3 item 4): r = (K_μ+λ)⁻¹K_μ ξ and the mirror weight update
  w ← w e^{−0.01 (r − ⟨r⟩_w)}, renormalized; pdeflow.approx.krr.krr with rtol 1e-12 and its
  defaults otherwise: dense Cholesky up to krr.DENSE_LIMIT = 6000 points (``--dense-limit``),
  above it conjugate gradients preconditioned by a rank-krr.NYSTROM_RANK Nyström approximation
  (``--chunked-rank`` changes the rank for the chunked-numpy path only; 0 is the unpreconditioned
  CG of the committed code, which takes minutes at N = 10⁴).

Three paths, each only where it is affordable (the limits are options):

* naive dense: the full N×N kernel matrix and N×N×d difference tensor, written in this file —
  SVGD for N ≤ 10⁴, λ-FRk for N ≤ 5000 (numpy.linalg.solve of the N×N system);
* chunked numpy: the same pdeflow calls inside ``pdeflow.approx.sums.use("numpy")`` (the exact sums
  in row blocks of the Gram matrix, also inside krr's CG products) — SVGD for N ≤ 2·10⁴, λ-FRk for
  N ≤ 10⁴ (at 10⁴ it is CG with numpy products; at N ≤ DENSE_LIMIT it is the same Cholesky as the
  fast path);
* fast: the same calls inside ``sums.use("auto")`` (NUFFT by finufft for this Gaussian in d = 2,
  falling back to the compiled exact sum if the NUFFT declines), at every N.

Per row: wall time (perf_counter, one call, no repetition); peak memory by tracemalloc (numpy
reports its buffers to it; the C/C++ allocations of finufft and FFTW — its fine grid, sort
indices and plans — numba's and OpenBLAS's are NOT seen) and the peak resident set size above the
RSS at the start of the call (/proc/self/status VmHWM after resetting it through
/proc/self/clear_refs; where that is not possible the growth of resource.getrusage's ru_maxrss,
which shows nothing when an earlier call peaked higher).  RSS sees the C allocations but not
memory the allocator already held, and includes interpreter noise (≈ MiB), so neither number is
exact; "bytes/particle" is the larger of the two divided by N.  The back-end column counts the
kernel-sum calls per back-end, by wrapping the back-end modules' apply functions in this process
("nufft declined" when a NUFFT plan fell back); λ-FRk rows add the krr solver, the CG iterations
and the Nyström rank (krr's ``info``).  The results are compared by max |a − b| / max |a|: the
velocity field for SVGD, the KRR field r for λ-FRk (the weight update only scales its differences
by 0.01·w, so r is the stringent one; the JSON rows also hold the weight difference).

Warm-up: before any timing, one small call per path (N = 2000 for the pdeflow paths, above
sums.SMALL_WORK so that the NUFFT really runs, with krr forced onto its CG path by dense_limit=0;
plus one forced call of the compiled back-end) pays the imports, numba's compile/cache load and
finufft's first call.  A finufft plan is still built on every call: that is part of what the code
does, and is timed.  All paths run in this process, one after the other, with numpy's and finufft's
default threading (all cores).  Not a test: times from one run on a possibly shared machine (the
load average is printed).  When other processes keep the cores busy, finufft's OpenMP threads
spin-wait (libgomp's default) and the fast path slows down several-fold (6–10× for the two steps at
N = 10⁴ on 2 cores with one taken); OMP_WAIT_POLICY=passive or OMP_NUM_THREADS=1 avoids that.

At the end: the ratios (chunked/fast, naive/fast, time and memory) at every N where both were
measured, and the targets of the fast-summation issue with PASS/FAIL from this run's numbers:
SVGD step at N = 10⁶ ≤ 2 s; λ-FRk step at N = 10⁵ ≤ 10 s; at N = 10⁴ both steps ≥ 20× faster than
chunked numpy with ≤ 1e-8 relative difference; memory O(N): fast-path bytes/particle at N = 10⁶ at
most 2× that at N = 10⁵.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

from pdeflow.approx import sums
from pdeflow.approx.kernels import DEFAULT_CHUNK, Kernel
from pdeflow.approx.krr import DENSE_LIMIT, NYSTROM_RANK, krr
from pdeflow.approx.methods.stein import svgd_velocity

ELL = 0.5
RTOL = 1e-12
STEP = 0.01  # mirror step of the weight update
PATHS = ("naive dense", "chunked numpy", "fast (auto)")


# --- the naive dense code ---------------------------------------------------------------------
def naive_svgd(x, w):
    diff = x[:, None, :] - x[None, :, :]  # (N, N, d): x_i − x_j
    K = np.exp(-0.5 * (diff**2).sum(-1) / ELL**2)
    score = -x  # ∇log N(0, I)
    drive = K @ (w[:, None] * score)
    # ∇_{x_j} k(x_j, x_i) = (x_i − x_j)/ℓ² k
    repulse = np.einsum("ij,ijd->id", K * w[None, :], diff) / ELL**2
    return drive + repulse


def mirror_update(w, r):
    g = r - np.dot(w, r) / w.sum()
    w_new = w * np.exp(-STEP * g)
    return w_new * (w.sum() / w_new.sum())


def naive_lambda_frk(x, w, xi, lam):
    diff = x[:, None, :] - x[None, :, :]
    K = np.exp(-0.5 * (diff**2).sum(-1) / ELL**2)
    KW = K * w[None, :]
    r = KW @ np.linalg.solve(KW + lam * np.eye(len(w)), xi)  # (KW+λ)⁻¹KW = KW(KW+λ)⁻¹
    return mirror_update(w, r), r


# --- pdeflow ----------------------------------------------------------------------------------
def pdeflow_svgd(x, w, score):
    return svgd_velocity(Kernel("gaussian", ELL), x, w, score)


def pdeflow_lambda_frk(x, w, xi, lam, chunk, info, **krr_options):
    r = krr(Kernel("gaussian", ELL), x, w, xi, lam, rtol=RTOL, chunk=chunk, info=info, **krr_options)
    return mirror_update(w, r), r


class BackendCalls:
    """Counts the kernel sums each back-end computes, by wrapping the modules' functions."""

    def __init__(self):
        self.count = collections.Counter()

    @contextlib.contextmanager
    def watching(self):
        patched = []
        wraps = [(name, fn, name) for name in sums.ORDER for fn in ("apply", "apply_grad1")]
        wraps += [("nufft", fn, "nufft declined") for fn in ("_fallback", "_fallback_grad")]
        for modname, fn, label in wraps:
            mod = sums.backend(modname)
            original = getattr(mod, fn)

            def wrapper(*a, _original=original, _label=label, **kw):
                self.count[_label] += 1
                return _original(*a, **kw)

            setattr(mod, fn, wrapper)
            patched.append((mod, fn, original))
        try:
            yield self
        finally:
            for mod, fn, original in reversed(patched):
                setattr(mod, fn, original)

    def take(self) -> str:
        text = ", ".join(f"{k}×{v}" for k, v in sorted(self.count.items())) or "none"
        self.count.clear()
        return text


# --- measuring --------------------------------------------------------------------------------
def _status_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def _maxrss_bytes():
    m = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return m if sys.platform == "darwin" else 1024 * m


RSS_METHOD = "VmHWM reset via /proc/self/clear_refs" if _reset_hwm() else "resource.getrusage ru_maxrss growth"


def measure(fn):
    """(result, seconds, tracemalloc peak bytes, RSS peak above the start in bytes)."""
    gc.collect()
    hwm = _reset_hwm()
    rss0 = 1024 * _status_kib("VmRSS") if hwm else None
    maxrss0 = _maxrss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = 1024 * _status_kib("VmHWM") - rss0 if hwm else _maxrss_bytes() - maxrss0
    return out, dt, peak, max(rss, 0)


def rel_diff(ref, b):
    return float(np.max(np.abs(ref - b)) / np.max(np.abs(ref)))


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    w = np.full(n, 1.0 / n)
    xi = 0.5 * (x**2).sum(1) - 0.3 * x[:, 0]  # a smooth first variation
    return x, w, xi


def warm_up(args):
    t0 = time.perf_counter()
    x, w, xi = problem(200, seed=1)
    naive_svgd(x, w)
    naive_lambda_frk(x, w, xi, args.lam)
    x, w, xi = problem(2000, seed=1)
    with sums.use("compiled"):
        pdeflow_svgd(x[:64], w[:64], -x[:64])
    for name in ("numpy", "auto"):
        with sums.use(name):
            pdeflow_svgd(x, w, -x)
            pdeflow_lambda_frk(x, w, xi, args.lam, args.chunk, {}, dense_limit=0)
    return time.perf_counter() - t0


def paths(step, n, x, w, xi, args):
    """[(path, fn(info), context)] for the paths affordable at this N."""
    svgd = step == "SVGD"
    naive_max, chunked_max = ((args.naive_max_svgd, args.chunked_max_svgd) if svgd
                              else (args.naive_max_frk, args.chunked_max_frk))
    score = -x
    out = []
    if n <= naive_max:
        fn = (lambda info: naive_svgd(x, w)) if svgd else (lambda info: naive_lambda_frk(x, w, xi, args.lam))
        out.append((PATHS[0], fn, contextlib.nullcontext()))
    for path, backend, limit in ((PATHS[1], "numpy", chunked_max), (PATHS[2], "auto", None)):
        if limit is not None and n > limit:
            continue
        if svgd:
            fn = lambda info: pdeflow_svgd(x, w, score)
        else:
            opts = {"dense_limit": args.dense_limit}
            if path == PATHS[1]:
                opts["rank"] = args.chunked_rank
            fn = lambda info, opts=opts: pdeflow_lambda_frk(x, w, xi, args.lam, args.chunk, info, **opts)
        out.append((path, fn, sums.use(backend)))
    return out


def make_row(step, n, path, out, dt, peak, rss, info, calls, results):
    """One row; compares the result with those of the paths measured before it at this N."""
    svgd = step == "SVGD"
    field, weights = (out, None) if svgd else (out[1], out[0])
    results[path] = (field, weights)
    row = {
        "step": step, "n": n, "path": path,
        "backend": "dense numpy (this file)" if path == PATHS[0] else calls.take(),
        "time_s": dt, "tracemalloc_peak_bytes": peak, "rss_peak_delta_bytes": rss,
        "bytes_per_particle": max(peak, rss) / n,
        "solver": info.get("solver"), "cg_iterations": info.get("iterations"), "nystrom_rank": info.get("rank"),
        "rel_diff_vs_naive": None, "rel_diff_vs_chunked": None,
        "rel_diff_weights_vs_naive": None, "rel_diff_weights_vs_chunked": None,
    }
    for ref_path, key in ((PATHS[0], "naive"), (PATHS[1], "chunked")):
        if ref_path in results and ref_path != path:
            ref_field, ref_weights = results[ref_path]
            row[f"rel_diff_vs_{key}"] = rel_diff(ref_field, field)
            if not svgd:
                row[f"rel_diff_weights_vs_{key}"] = rel_diff(ref_weights, weights)
    return row


# --- output -----------------------------------------------------------------------------------
HEADER = ("| step | N | path | back-end (sum calls) | time [s] | tracemalloc peak [MiB] | RSS peak Δ [MiB] "
          "| bytes/particle | krr solver | CG its | rank | rel. diff vs naive | rel. diff vs chunked |")


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def print_row(row):
    its = row["cg_iterations"]
    print(f"| {row['step']} | {row['n']} | {row['path']} | {row['backend']} | {row['time_s']:.3f} "
          f"| {row['tracemalloc_peak_bytes'] / 2**20:.1f} | {row['rss_peak_delta_bytes'] / 2**20:.1f} "
          f"| {row['bytes_per_particle']:.0f} | {row['solver'] or '–'} "
          f"| {'–' if not its else '+'.join(map(str, its))} | {_fmt(row['nystrom_rank'], 'd')} "
          f"| {_fmt(row['rel_diff_vs_naive'], '.1e')} | {_fmt(row['rel_diff_vs_chunked'], '.1e')} |", flush=True)


def find(rows, step, n, path):
    for row in rows:
        if row["step"] == step and row["n"] == n and row["path"] == path:
            return row
    return None


def targets(rows):
    """[(statement, measured, verdict)] with verdict PASS, FAIL or 'not measured'."""
    out = []

    def timed(statement, step, n, limit):
        row = find(rows, step, n, PATHS[2])
        if row is None:
            out.append((statement, f"N = {n} not in this run", "not measured"))
        else:
            out.append((statement, f"{row['time_s']:.3f} s", "PASS" if row["time_s"] <= limit else "FAIL"))

    timed("SVGD step at N = 10⁶, d = 2 ≤ 2 s", "SVGD", 10**6, 2.0)
    timed("λ-FRk step at N = 10⁵ ≤ 10 s", "λ-FRk", 10**5, 10.0)

    def both_steps(statement, pair, missing, judge):
        """One verdict over both steps: ``pair(step)`` gives the two rows, ``judge(a, b)`` (text, ok)."""
        parts, verdicts = [], []
        for step in ("SVGD", "λ-FRk"):
            a, b = pair(step)
            if a is None or b is None:
                parts.append(f"{step}: {missing}")
                verdicts.append(None)
                continue
            text, ok = judge(a, b)
            parts.append(f"{step} {text}")
            verdicts.append(ok)
        out.append((statement, "; ".join(parts),
                    "not measured" if None in verdicts else ("PASS" if all(verdicts) else "FAIL")))

    def speed(fast, chunked):
        diff = max(d for d in (fast["rel_diff_vs_chunked"], fast["rel_diff_vs_naive"], 0.0) if d is not None)
        ratio = chunked["time_s"] / fast["time_s"]
        return f"{ratio:.1f}× (diff {diff:.1e})", ratio >= 20.0 and diff <= 1e-8

    def memory(a, b):
        return (f"{a['bytes_per_particle']:.0f} → {b['bytes_per_particle']:.0f} B/particle",
                b["bytes_per_particle"] <= 2.0 * a["bytes_per_particle"])

    both_steps("at N = 10⁴ both ≥ 20× faster than chunked numpy with ≤ 1e-8 relative difference",
               lambda step: (find(rows, step, 10**4, PATHS[2]), find(rows, step, 10**4, PATHS[1])),
               "not both measured at N = 10⁴", speed)
    both_steps("memory O(N): fast-path peak bytes/particle at N = 10⁶ ≤ 2× that at 10⁵",
               lambda step: (find(rows, step, 10**5, PATHS[2]), find(rows, step, 10**6, PATHS[2])),
               "not both N = 10⁵ and 10⁶ measured", memory)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                    help="rows per Gram block in krr (numpy CG products, Nyström factor); "
                         "svgd_velocity uses the Kernel default")
    ap.add_argument("--dense-limit", type=int, default=DENSE_LIMIT,
                    help="krr's Cholesky/CG switch on both pdeflow paths (0: CG at every N)")
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--naive-max-svgd", type=int, default=10000)
    ap.add_argument("--naive-max-frk", type=int, default=5000)
    ap.add_argument("--chunked-max-svgd", type=int, default=20000)
    ap.add_argument("--chunked-max-frk", type=int, default=10000)
    ap.add_argument("--chunked-rank", type=int, default=NYSTROM_RANK,
                    help="Nyström rank of krr on the chunked-numpy path (0: unpreconditioned CG)")
    ap.add_argument("--json", metavar="FILE", help="write the rows, ratios and targets as JSON")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    print(f"# kernel_step: d = 2, Gaussian ℓ = {ELL}, λ = {args.lam}, krr rtol = {RTOL}, "
          f"dense_limit = {args.dense_limit}, chunk = {args.chunk}, "
          f"{os.cpu_count()} cores, load average {load0:.2f}; back-ends available: "
          + ", ".join(f"{k}" + ("" if v is None else " (no)") for k, v in sums.available().items()), flush=True)
    print(f"# naive dense: SVGD N ≤ {args.naive_max_svgd}, λ-FRk N ≤ {args.naive_max_frk}; chunked numpy: "
          f"SVGD N ≤ {args.chunked_max_svgd}, λ-FRk N ≤ {args.chunked_max_frk} (Nyström rank {args.chunked_rank}); "
          f"fast: every N.  RSS: {RSS_METHOD}", flush=True)
    print(f"# warm-up (not timed in the rows): {warm_up(args):.2f} s", flush=True)
    print("\n" + HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1), flush=True)

    calls = BackendCalls()
    rows = []
    for n in args.sizes:
        x, w, xi = problem(n)
        for step in ("SVGD", "λ-FRk"):
            results = {}
            for path, fn, ctx in paths(step, n, x, w, xi, args):
                info = {}
                with ctx, calls.watching():
                    out, dt, peak, rss = measure(lambda: fn(info))
                row = make_row(step, n, path, out, dt, peak, rss, info, calls, results)
                rows.append(row)
                print_row(row)
            del results

    ratios = []
    print("\nratios measured in this run (time and peak memory of the slower path / the fast path):")
    for row in rows:
        if row["path"] != PATHS[2]:
            continue
        for ref_path in PATHS[:2]:
            ref = find(rows, row["step"], row["n"], ref_path)
            if ref is None:
                continue
            r = {"step": row["step"], "n": row["n"], "vs": ref_path, "speed_up": ref["time_s"] / row["time_s"],
                 "memory_ratio": ref["bytes_per_particle"] / row["bytes_per_particle"]}
            ratios.append(r)
            print(f"  {r['step']:6s} N = {r['n']:>8d}: fast vs {ref_path:13s} {r['speed_up']:8.1f}× faster, "
                  f"{r['memory_ratio']:7.1f}× less memory", flush=True)
    if not ratios:
        print("  (no N with both a reference and the fast path)")

    print(f"\n# load average at the end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    verdicts = targets(rows)
    print("\ntargets (fast-summation issue), from this run:")
    for statement, measured, verdict in verdicts:
        print(f"  {verdict:12s} {statement}: {measured}", flush=True)

    if args.json:
        with open(args.json, "w") as f:
            config = {"d": 2, "kernel": "gaussian", "bandwidth": ELL, "lam": args.lam, "rtol": RTOL,
                      "chunk": args.chunk, "dense_limit": args.dense_limit, "chunked_rank": args.chunked_rank,
                      "sizes": args.sizes, "cores": os.cpu_count(), "rss_method": RSS_METHOD,
                      "load_average": [load0, os.getloadavg()[0]]}
            json.dump({"config": config, "rows": rows, "ratios": ratios,
                       "targets": [{"target": s, "measured": m, "verdict": v} for s, m, v in verdicts]},
                      f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
