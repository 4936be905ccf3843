# pdeflow: `make demo` runs the main job, `make test` runs the test-suite.
# Each target does its own idempotent set-up (system packages, venv, editable install); a second
# run skips what is already there.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pdeflow-installed
MPIRUN := mpirun --allow-run-as-root --oversubscribe
NP ?= 2
OUT ?= results/demo

.PHONY: all setup system venv demo test test-serial test-mpi test-dolfinx09 bench docs clean

all: test

# --- set-up -------------------------------------------------------------------------------
system:
	@if ! /usr/bin/python3 -c "import dolfinx, petsc4py, mpi4py, scipy, sympy, h5py" 2>/dev/null \
	    || ! command -v mpirun >/dev/null || ! /usr/bin/python3 -c "import ensurepip" 2>/dev/null \
	    || ! ldconfig -p | grep -q libGLU.so.1 || ! ldconfig -p | grep -q libXinerama.so.1 \
	    || ! ldconfig -p | grep -q libXcursor.so.1 || ! ldconfig -p | grep -q libXft.so.2; then \
	  echo "[setup] installing python3-dolfinx, h5py (Debian: PyPI's h5py wheel breaks next to dolfinx's HDF5) and the libraries of the gmsh wheel ..."; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq python3-dolfinx python3-venv python3-scipy python3-sympy python3-h5py-mpi \
	    libglu1-mesa libxcursor1 libxft2 libxinerama1 >/dev/null; \
	fi

$(PY): | system
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(STAMP): pyproject.toml | $(PY)
	@echo "[setup] pip install -e .[test,plot,mesh] (numpy kept < 2 for dolfinx 0.5)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,plot,mesh]" "numpy<2"
	@# the fast kernel-sum back-ends are optional: without a wheel for this machine the sums fall back
	@# (NUFFT -> compiled -> chunked numpy) with a notice, so a failed install is not a failed set-up
	@$(PY) -m pip install -q --disable-pip-version-check "finufft>=2.2" "numba>=0.59" "numpy<2" \
	  || echo "[setup] notice: finufft/numba did not install; kernel sums use the chunked numpy back-end (slower at large N)"
	@touch $(STAMP)

setup: system $(STAMP)

# --- main job -----------------------------------------------------------------------------
demo: setup
	rm -rf $(OUT)
	$(MPIRUN) -n $(NP) $(VENV)/bin/pdeflow study studies/quickstart.toml --out $(OUT)
	@echo "demo done: open $(OUT)/report.html (plots, fitted orders with confidence intervals, run tables)"

# --- tests --------------------------------------------------------------------------------
test: setup test-serial test-mpi

# per-test timeouts, and an outer one for the MPI part: a collective that one rank never reaches
# must fail the run, not hang it
test-serial: setup
	$(PY) -m pytest -q --timeout=600 tests/unit tests/convergence tests/reliability

test-mpi: setup
	timeout 900 $(MPIRUN) -n $(NP) $(PY) -m pytest -q -p no:cacheprovider --timeout=300 tests/mpi

# the same tests against dolfinx 0.9 (Debian trixie chroot, cached outside the repo); not in `make test`
test-dolfinx09:
	bash docker/test-dolfinx09.sh

# the gmsh meshes of meshes/*.geo at n = 12, 24, 48 (h = 0.5, 0.25, 0.125) into meshes/cache
meshes: setup
	$(VENV)/bin/pdeflow mesh --levels 3

bench: setup
	$(PY) benchmarks/step_cost.py

# docs/cases.md is generated from the case registry (tests/unit/test_docs.py checks it is current)
docs: setup
	$(VENV)/bin/pdeflow cases --markdown > docs/.cases.md.tmp && mv docs/.cases.md.tmp docs/cases.md

clean:
	rm -rf results .pytest_cache
