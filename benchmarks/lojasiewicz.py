"""FR-Łojasiewicz for power entropies and its failure for KL near vacuum (ZM Cor. 6.5, Lemma 6.2;
MATH §2.4): the figure docs/figures/lojasiewicz.png and a table.

    .venv/bin/python benchmarks/lojasiewicz.py [--out docs/figures/lojasiewicz.png] [--eps 1e-8]

On the vertices of the uniform 100-cell grid of [−6, 6] (lumped masses), π = N(0, 1) and the
near-vacuum datum ρ0 = π·(ε on x < 0, 1 on x ≥ 0), the pointwise FR flow ρ̇ = −ρφ_p'(ρ/π) of
F = D_{φ_p}(·|π) is integrated (DOP853 in log ρ, rtol 1e-10) for p = 0, ¼, ½ (global Łojasiewicz
constant c* = 1/(1−p)), p = ¾ (no global constant) and p = 1 (KL), and compared with the closed form
(ρ_t/π)^{1−p} − 1 = e^{−t}((ρ0/π)^{1−p} − 1) (log(ρ_t/π) = e^{−t}log(ρ0/π) for KL).  Left panel:
F(t)/F(0) with the bounds e^{−c*t}; right panel: the instantaneous rate −dlog F/dt = 𝒟_FR/F (exact,
from the state).  Printed: the worst rate over the run, the late slope of log F, and for KL the
time t_½ at which it halves for ε = 1e-4 … 1e-64 against log log(1/ε).  A few seconds; not a test
(tests/unit/test_paper_identities.py asserts the numbers).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp

from pdeflow.energies import KL, Power

ROOT = Path(__file__).resolve().parents[1]
F_FLOOR = 1e-10  # below it φ_p has lost its digits to cancellation near s = 1 (see docs/identities.md)


def vertices(n=100, a=-6.0, b=6.0):
    x = np.linspace(a, b, n + 1)
    m = np.full(n + 1, (b - a) / n)
    m[0] = m[-1] = (b - a) / (2 * n)
    return x, m


def fr_flow(energy, pi, rho0, t):
    def rhs(_t, y):
        rho = np.exp(y)
        return -energy.xi(rho, pi)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sol = solve_ivp(rhs, (0.0, t[-1]), np.log(rho0), method="DOP853", t_eval=t, rtol=1e-10, atol=1e-13)
    if not sol.success:
        raise RuntimeError(sol.message)
    return np.exp(sol.y.T)


def closed_form(p, pi, rho0, t):
    s0 = rho0 / pi
    a = np.exp(-t)[:, None]
    if p == 1.0:
        return pi * np.exp(a * np.log(s0))
    q = 1.0 - p
    return pi * (1.0 + a * (s0**q - 1.0)) ** (1.0 / q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "lojasiewicz.png"))
    ap.add_argument("--eps", type=float, default=1e-8, help="relative mass of rho0 on x < 0")
    args = ap.parse_args()
    x, m = vertices()
    pi = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    rho0 = pi * np.where(x < 0, args.eps, 1.0)
    t = np.linspace(0.0, 12.0, 1201)
    runs = {}
    print(f"rho0 = pi * ({args.eps:g} on x < 0, 1 on x >= 0); 101 vertices; FR flow (beta = 1, M+)")
    print(f"{'energy':>14} {'c*':>7} {'F(0)':>10} {'min rate':>9} {'late slope':>10} {'|num - closed|':>14}")
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        energy = KL() if p == 1.0 else Power(p)
        R = fr_flow(energy, pi, rho0, t)
        gap = float(np.max(np.abs(R / closed_form(p, pi, rho0, t) - 1.0)))
        F = np.array([energy.value(r, pi, m) for r in R])
        D = np.array([np.dot(m * r, energy.xi(r, pi) ** 2) for r in R])
        ok = F > F_FLOOR
        rate = D[ok] / F[ok]
        late = ok & (np.max(np.abs(R / pi - 1.0), axis=1) <= 1e-2)
        slope = -np.polyfit(t[late], np.log(F[late]), 1)[0] if late.sum() >= 5 else float("nan")
        c_star = 1.0 / (1.0 - p) if p <= 0.5 else None
        runs[p] = (F, ok, D, c_star)
        label = "kl" if p == 1.0 else energy.spec
        print(f"{label:>14} {c_star if c_star else float('nan'):7.4f} {F[0]:10.4g} {rate.min():9.3g} {slope:10.4f} {gap:14.2e}")
    print("\nKL near vacuum: time t_1/2 at which KL halves, against log log(1/eps)")
    loglog, halves = [], []
    tt = np.linspace(0.0, 8.0, 1601)
    for eps in (1e-4, 1e-8, 1e-16, 1e-32, 1e-64):
        r0 = pi * np.where(x < 0, eps, 1.0)
        R = closed_form(1.0, pi, r0, tt)
        F = np.array([KL().value(r, pi, m) for r in R])
        D = np.array([np.dot(m * r, KL().xi(r, pi) ** 2) for r in R])
        halves.append(float(np.interp(0.5 * F[0], F[::-1], tt[::-1])))
        loglog.append(math.log(math.log(1 / eps)))
        print(f"  eps {eps:8.0e}: rate(0) = {D[0] / F[0]:9.2e}  (eps log^2 eps = {eps * math.log(eps) ** 2:9.2e}), "
              f"t_1/2 = {halves[-1]:.3f}, log log(1/eps) = {loglog[-1]:.3f}")
    print(f"  slope of t_1/2 against log log(1/eps): {np.polyfit(loglog, halves, 1)[0]:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {0.0: "C0", 0.25: "C1", 0.5: "C2", 0.75: "C4", 1.0: "C3"}
    for p, (F, ok, D, c_star) in runs.items():
        name = "KL (p = 1)" if p == 1.0 else f"p = {p:g}"
        ax1.semilogy(t[ok], F[ok] / F[0], color=colors[p], lw=2, label=name)
        if c_star:
            ax1.semilogy(t, np.exp(-c_star * t), color=colors[p], lw=1, ls="--")
            ax2.axhline(c_star, color=colors[p], lw=1, ls="--")
        ax2.semilogy(t[ok], D[ok] / F[ok], color=colors[p], lw=2, label=name)
    ax1.set_ylim(1e-10, 2.0)
    ax1.set_xlabel("t")
    ax1.set_ylabel("F(ρ_t) / F(ρ_0)")
    ax1.set_title(f"FR flow of D_φp from near vacuum (ε = {args.eps:g});\ndashed: e^(−t/(1−p)) (ZM Cor. 6.5, p ≤ ½)",
                  fontsize=10)
    ax1.legend(fontsize=9)
    ax2.set_xlabel("t")
    ax2.set_ylabel("−d log F / dt = D_FR / F")
    ax2.set_title("instantaneous rate; dashed: c* = 1/(1−p)", fontsize=10)
    ax2.set_ylim(1e-7, 1e2)
    ax2.legend(fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
