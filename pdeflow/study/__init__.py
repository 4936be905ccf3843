"""Convergence studies: spec (TOML) → runs → MPI task farm → SQLite store → orders → report.

Shared data shapes (the contract between spec.py, runner.py, store.py and report.py):

* A **run** is a dict with keys
  ``run_id`` (16 hex chars: sha1 of the canonical JSON of the other identifying keys),
  ``group`` (label of its [[group]] in the spec), ``kind`` ("reference" | "approx"),
  ``case`` (built-in case name), ``method`` (particle method or None),
  ``params`` (JSON-able dict: reference runs {"n", "tau"} (+ "T", "alpha", "beta" overrides);
  approx runs the MethodParams fields n_particles, lam, sigma, kernel, dt, xi, extra and
  "reference": {"n", "tau"}), ``seed`` (int or None), ``sweep`` (dict of the swept parameters
  of the group with their values, e.g. {"tau": 0.0125} or {"h": 0.06, "tau": 0.0036} or
  {"n_particles": 300}), ``cost`` (float, relative work estimate; runs are handed out
  largest first).
* A **result** (what the runner stores for a run): ``status`` ("done" | "failed"), ``message``
  (str, failure reason), ``metrics`` (dict: ``t`` list of snapshot times and, per metric name,
  the list of values at those times — reference runs vs the exact solution: L1, L2, hellinger,
  mass_rel, or for Richardson groups richardson_m2 and (1-D) richardson_L1 at the final time;
  approx runs vs the reference: mmd (at the middle metric scale), mmd_small, mmd_large,
  energy_distance, w2, mass_error, boundary_layer (|relative error| of the boundary-layer mass)
  and boundary_layer_signed (not fitted); plus ``mc_floor`` (float) for approx runs), ``stats`` (dict:
  n_steps, n_rejected, newton_mean, newton_max, ... for reference runs), ``wall`` (seconds),
  ``versions`` (dict), ``mpi_size`` (ranks of the run's group), ``seed``.
"""
