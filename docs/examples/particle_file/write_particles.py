"""Write particles.npz: the exact Fisher-Rao reweighting of N draws of rho0 (case fr-kl-gauss-1d).

    python write_particles.py particles.npz --n 2000 --seed 0
    pdeflow check fr-kl-gauss-1d particles.npz

rho0 = N(1, 0.7^2), pi = N(0, 1) on [-6, 6]; the particles stay put and the weights are
w_i(t) proportional to (pi/rho0)(x_i)^(1 - exp(-t)), normalized to sum 1 (MATH 5.3 item 1).
"""
import argparse

import numpy as np

TIMES = np.array([0.0, 0.25, 0.5, 1.0])  # the snapshot times of fr-kl-gauss-1d (pdeflow cases)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="particles.npz")
    parser.add_argument("--n", type=int, default=2000, help="number of particles")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.normal(1.0, 0.7, size=4 * args.n)
    x = x[np.abs(x) <= 6.0][: args.n]  # rho0 restricted to the domain [-6, 6]
    log_ratio = -0.5 * x**2 + 0.5 * ((x - 1.0) / 0.7) ** 2 + np.log(0.7)  # log(pi/rho0)(x)
    logw = -np.expm1(-TIMES)[:, None] * log_ratio[None, :]  # (1 - e^{-t}) log(pi/rho0)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    xs = np.repeat(x[None, :, None], len(TIMES), axis=0)  # (n_snap, N, 1)
    np.savez(args.output, t=TIMES, x=xs, w=w)
    print(f"wrote {args.output}: {len(TIMES)} snapshots of {x.size} particles")


if __name__ == "__main__":
    main()
