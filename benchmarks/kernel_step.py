"""Time and peak memory of one SVGD step and one λ-FRk step, pdeflow vs a naive dense numpy code.

    python benchmarks/kernel_step.py [--sizes 1000 10000] [--chunk 1024] [--lam 1e-3]

d = 2, Gaussian kernel (bandwidth 0.5), particles from N(0, I), target π = N(0, I).

* SVGD step (MATH §5.1): φ̂(x_i) = Σ_j w_j [k(x_j, x_i) ∇log π(x_j) + ∇_{x_j} k(x_j, x_i)].
  naive: the full N×N kernel matrix and the N×N×d difference tensor; pdeflow: Kernel.apply and
  Kernel.apply_grad2 in row chunks (memory O(N·chunk·d)).
* λ-FRk step (MATH §5.3 item 4): r = (K_μ+λ)⁻¹K_μ ξ and the mirror weight update.
  naive: the dense N×N system solved by numpy.linalg.solve; pdeflow: pdeflow.approx.krr.krr,
  which switches from Cholesky to conjugate gradients with chunked Gram products above
  krr.DENSE_LIMIT points.

Peak memory is measured with tracemalloc (numpy reports its buffers to it), time with
perf_counter; both implementations run in this process, one after the other, and their results
are compared (max relative difference).  Not a test: ratios from one run on a shared machine.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from pdeflow.approx.kernels import Kernel
from pdeflow.approx.krr import krr

ELL = 0.5


def naive_svgd(x, w):
    diff = x[:, None, :] - x[None, :, :]  # (N, N, d): x_i − x_j
    K = np.exp(-0.5 * (diff**2).sum(-1) / ELL**2)
    score = -x  # ∇log N(0, I)
    drive = K @ (w[:, None] * score)
    # ∇_{x_j} k(x_j, x_i) = (x_i − x_j)/ℓ² k
    repulse = np.einsum("ij,ijd->id", K * w[None, :], diff) / ELL**2
    return drive + repulse


def pdeflow_svgd(x, w, chunk):
    k = Kernel("gaussian", ELL)
    return k.apply(x, x, w[:, None] * (-x), chunk=chunk) + k.apply_grad2(x, x, w, chunk=chunk)


def naive_lambda_frk(x, w, xi, lam):
    diff = x[:, None, :] - x[None, :, :]
    K = np.exp(-0.5 * (diff**2).sum(-1) / ELL**2)
    KW = K * w[None, :]
    r = KW @ np.linalg.solve(KW + lam * np.eye(len(w)), xi)  # (KW+λ)⁻¹KW = KW(KW+λ)⁻¹
    g = r - np.dot(w, r) / w.sum()
    w_new = w * np.exp(-0.01 * g)
    return w_new * (w.sum() / w_new.sum())


def pdeflow_lambda_frk(x, w, xi, lam, chunk):
    r = krr(Kernel("gaussian", ELL), x, w, xi, lam, rtol=1e-12, chunk=chunk)
    g = r - np.dot(w, r) / w.sum()
    w_new = w * np.exp(-0.01 * g)
    return w_new * (w.sum() / w_new.sum())


def measure(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--lam", type=float, default=1e-3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        x = rng.standard_normal((n, 2))
        w = np.full(n, 1.0 / n)
        xi = 0.5 * (x**2).sum(1) - 0.3 * x[:, 0]  # a smooth first variation
        for name, naive, ours in [
            ("SVGD step", lambda: naive_svgd(x, w), lambda: pdeflow_svgd(x, w, args.chunk)),
            ("lambda-FRk step", lambda: naive_lambda_frk(x, w, xi, args.lam), lambda: pdeflow_lambda_frk(x, w, xi, args.lam, args.chunk)),
        ]:
            a, t_a, m_a = measure(naive)
            b, t_b, m_b = measure(ours)
            diff = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
            rows.append((name, n, t_a, m_a, t_b, m_b, diff))
            print(
                f"{name:16s} N={n:6d}: naive {t_a:7.3f} s {m_a / 2**20:8.1f} MiB | pdeflow {t_b:7.3f} s "
                f"{m_b / 2**20:8.1f} MiB | speed-up {t_a / t_b:5.2f}x, memory {m_a / m_b:6.1f}x less | max rel diff {diff:.1e}",
                flush=True,
            )
    print("\n| step | N | naive time [s] | naive peak [MiB] | pdeflow time [s] | pdeflow peak [MiB] | speed-up | memory ratio | max rel. difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, t_a, m_a, t_b, m_b, diff in rows:
        print(f"| {name} | {n} | {t_a:.3f} | {m_a / 2**20:.1f} | {t_b:.3f} | {m_b / 2**20:.1f} | {t_a / t_b:.2f} | {m_a / m_b:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
