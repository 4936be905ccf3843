#!/usr/bin/env bash
# Run pdeflow's test-suite against dolfinx 0.9 (Debian 13 "trixie": python3-dolfinx 0.9.0,
# numpy 2, PETSc 3.22) in a chroot made with debootstrap — the check that fem/compat.py really
# covers the newer dolfinx.  The chroot is built once and reused (CACHE, outside the repository,
# about 3.6 GB); the working tree is bind-mounted at /src and used through PYTHONPATH (nothing is
# installed into it).  Needs root.  Not part of `make test`.
#
#   make test-dolfinx09            # or: bash docker/test-dolfinx09.sh [pytest args]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${PDEFLOW_CHROOT_CACHE:-/var/cache/pdeflow}"
ROOT="$CACHE/trixie"
MIRROR="$( (grep -rhoE 'https?://[^ ]*debian[^ ]*' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | grep -v security | head -n 1 || true)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3-dolfinx python3-pytest python3-scipy python3-sympy python3-mpi4py python3-matplotlib python3-pot python3-tqdm"

if [ "$(id -u)" != 0 ]; then echo "test-dolfinx09: needs root (debootstrap, chroot, mount)" >&2; exit 2; fi
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

mounted=()
kill_chroot_processes() {  # e.g. MPI ranks left behind by a failed test: they would keep the mounts busy
  for p in /proc/[0-9]*; do [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null; done; true
}
cleanup() { kill_chroot_processes; for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
mount_bind() { mkdir -p "$2"; mountpoint -q "$2" || { mount --bind "$1" "$2"; mounted+=("$2"); }; }

if [ ! -x "$ROOT/usr/bin/python3" ] || ! chroot "$ROOT" python3 -c "import dolfinx" 2>/dev/null; then
  echo "[dolfinx09] building the trixie chroot in $ROOT (once; ~2 minutes)"
  mkdir -p "$CACHE"
  [ -f "$ROOT/etc/os-release" ] || debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
fi
for d in proc sys dev; do mount_bind "/$d" "$ROOT/$d"; done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
if ! chroot "$ROOT" python3 -c "import dolfinx, ot, pytest, tqdm, sympy, matplotlib" 2>/dev/null; then
  chroot "$ROOT" bash -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $PACKAGES >/dev/null"
fi
mount_bind "$REPO" "$ROOT/src"
chroot "$ROOT" python3 -c "import dolfinx, numpy, petsc4py; print('[dolfinx09] dolfinx', dolfinx.__version__, '| numpy', numpy.__version__, '| PETSc', '.'.join(map(str, petsc4py.PETSc.Sys.getVersion())))"
start=$(date +%s)
chroot "$ROOT" bash -c "cd /src && export PYTHONPATH=/src MPLBACKEND=Agg && python3 -m pytest -q -p no:cacheprovider ${*:-tests/unit tests/convergence} \
  && timeout 900 mpirun --allow-run-as-root --oversubscribe -n 2 python3 -m pytest -q -p no:cacheprovider tests/mpi"
echo "[dolfinx09] passed in $(( $(date +%s) - start )) s"
