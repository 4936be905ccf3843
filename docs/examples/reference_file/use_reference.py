"""Load a reference exported by `pdeflow export`, evaluate it and draw samples — numpy/scipy only.

    pdeflow export fr-kl-gauss-1d --tol 1e-3 --out ref.npz        # needs dolfinx (once)
    python use_reference.py ref.npz                               # needs numpy, scipy and pdeflow, not dolfinx

The reference is the P1 finite-element solution on the stored mesh, interpolated in time at the
order of its scheme; see docs/reference-files.md.
"""
import argparse
import sys

import numpy as np

from pdeflow import Reference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="a file written by pdeflow export (.npz, or .h5 with h5py)")
    parser.add_argument("--t", type=float, default=None, help="time (default: T/3, between stored steps)")
    parser.add_argument("--n", type=int, default=10_000, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ref = Reference(args.reference)
    t = ref.T / 3 if args.t is None else args.t
    print(ref)
    print(f"case {ref.case['name']}: scheme {ref.scheme} (order {ref.time_order} in time), "
          f"n = {ref.params.get('n')}, tau = {ref.params.get('tau')}")

    # the density at a few points (n, d); outside the mesh it is 0
    points = np.zeros((3, ref.dim))
    points[:, 0] = [-1.0, 0.0, 1.0]
    print(f"density at t = {t:g}:", ", ".join(f"{v:.6f}" for v in ref.density(t, points)))

    # mass and moments by quadrature of the P1 density
    mass = ref.mass(t)
    mean = ref.expect(t, lambda x: x) / mass
    print(f"mass {mass:.12f}; mean {np.array2string(mean, precision=6)}")

    # exact samples of the P1 density; each carries the weight mass/n for a flow that changes the mass
    x = ref.sample(t, args.n, seed=args.seed)
    print(f"{args.n} samples: mean {np.array2string(x.mean(axis=0), precision=4)} "
          f"(quadrature {np.array2string(mean, precision=4)})")

    est = ref.error_estimate(t)
    print("error estimate:", "none stored (exported without --tol)" if est is None else
          f"L1 {est['L1']:.2e}, MMD " + ", ".join(f"{k}: {v:.2e}" for k, v in est["mmd"].items()))
    print("dolfinx imported:", "dolfinx" in sys.modules)


if __name__ == "__main__":
    main()
