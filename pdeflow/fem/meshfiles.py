"""gmsh meshes of the non-box domains: generated from ``meshes/<name>.geo``, cached as XDMF.

A mesh is named by the shape (:data:`pdeflow.shapes.SHAPES`) and the resolution ``n``: its
target cell size is h = L/n with L the largest side of the shape's bounding box, the same h as
a box mesh with n cells per direction, so that a study ladder over n means the same for both.

Generation needs the gmsh Python module (``pip install gmsh``), on one process only.  The mesh
is converted by dolfinx's gmsh reader (:func:`pdeflow.fem.compat.mesh_from_gmsh`) and written
as XDMF/HDF5, which every rank of a run then reads in parallel without gmsh.  A cache entry is
the directory ``<cache>/<name>-n<n>/`` with mesh.xdmf, mesh.h5 and meta.json; it is written
under a temporary name and renamed, so that an interrupted generation or two runs generating the
same mesh at once never leave a half-written mesh behind.

Sources: ``$PDEFLOW_MESH_SOURCES`` or the ``meshes/`` folder of the repository.
Cache: ``$PDEFLOW_MESH_CACHE`` or ``meshes/cache/`` (git-ignored).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..shapes import get_shape
from . import compat

_REPO_MESHES = Path(__file__).resolve().parents[2] / "meshes"


class MeshGenerationError(RuntimeError):
    """gmsh is missing, or a geometry could not be meshed; the message says which and why."""


def source_dir() -> Path:
    return Path(os.environ.get("PDEFLOW_MESH_SOURCES", _REPO_MESHES))


def cache_dir() -> Path:
    return Path(os.environ.get("PDEFLOW_MESH_CACHE", source_dir() / "cache"))


def mesh_size(name: str, n: int) -> float:
    shape = get_shape(name)
    return max(b - a for a, b in zip(shape.lower, shape.upper)) / n


def entry(name: str, n: int, cache=None) -> Path:
    return Path(cache or cache_dir()) / f"{name}-n{n}"


def _run_gmsh(name: str, n: int):
    """Mesh ``meshes/<geo>`` with the shape's parameters and h = L/n on this process; return
    (dolfinx mesh on COMM_SELF, gmsh version)."""
    from mpi4py import MPI

    try:
        import gmsh
    except ImportError as exc:
        raise MeshGenerationError(
            f"mesh {name!r} (n = {n}) is not in the cache and generating it needs the gmsh Python module "
            f"({exc}); install it with `pip install gmsh` (conda: python-gmsh), or set PDEFLOW_MESH_CACHE "
            f"to a folder of pre-generated meshes (`pdeflow mesh {name} --n {n}` on a machine with gmsh)"
        ) from None
    shape = get_shape(name)
    src = source_dir() / shape.geo
    if not src.is_file():
        raise MeshGenerationError(f"geometry source {src} not found (set PDEFLOW_MESH_SOURCES to the meshes/ folder)")
    h = mesh_size(name, n)
    # The parameters go in front of the source: its DefineConstant[...] keeps values that exist.
    header = "".join(f"{k} = {v!r};\n" for k, v in shape.params) + f"h = {h!r};\n"
    with tempfile.TemporaryDirectory() as tmp:
        geo = Path(tmp) / shape.geo
        geo.write_text(header + src.read_text())
        if _PARSER["dirty"]:
            _reset_parser(gmsh, Path(tmp))
        _initialize(gmsh)
        try:
            gmsh.option.setNumber("General.NumThreads", 1)  # one thread: the same mesh on every run
            gmsh.open(str(geo))
            gmsh.model.mesh.generate(shape.dim)
            groups = gmsh.model.getPhysicalGroups(shape.dim)
            if not groups:
                raise MeshGenerationError(f"{src}: no physical group of dimension {shape.dim}")
            mesh = compat.mesh_from_gmsh(gmsh.model, MPI.COMM_SELF, shape.dim)
            version = gmsh.__version__
        except Exception as exc:  # gmsh raises plain Exceptions with its log message
            _PARSER["dirty"] = True
            if isinstance(exc, MeshGenerationError):
                raise
            raise MeshGenerationError(f"gmsh failed on {src} with h = {h:g}: {exc}") from None
        finally:
            gmsh.finalize()
    return mesh, version


def _initialize(gmsh) -> None:
    try:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    except TypeError:  # gmsh < 4.11 has no `interruptible`
        gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)


# After a syntax error, gmsh's .geo parser keeps a left-over token: the first statement parsed in
# the next session of this process fails, and a second file opened in that session loses its
# physical groups (gmsh 4.15).  A session of its own that parses one statement until it goes
# through flushes it.
_PARSER = {"dirty": False}


def _reset_parser(gmsh, tmp: Path) -> None:
    reset = tmp / "reset.geo"
    reset.write_text("pdeflow_reset = 0;\n")
    _initialize(gmsh)
    try:
        for _ in range(3):
            try:
                gmsh.open(str(reset))
                _PARSER["dirty"] = False
                return
            except Exception:  # the expected failure on the left-over token
                continue
    finally:
        gmsh.finalize()


def generate(name: str, n: int, cache=None, force: bool = False) -> Path:
    """Generate the mesh (name, n) into the cache on this process; return its mesh.xdmf path."""
    from mpi4py import MPI

    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    shape = get_shape(name)
    final = entry(name, n, cache)
    if final.is_dir() and not force:
        return final / "mesh.xdmf"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        t0 = time.perf_counter()
        mesh, version = _run_gmsh(name, n)
        compat.write_mesh_xdmf(MPI.COMM_SELF, str(tmp / "mesh.xdmf"), mesh)
        stats = compat.mesh_statistics(mesh)
        meta = {"name": name, "n": n, "h_target": mesh_size(name, n), "gmsh": version,
                "geometry": shape.description, "parameters": shape.p, "exact_volume": shape.volume,
                "seconds": round(time.perf_counter() - t0, 3), **stats}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if force and final.is_dir():
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:  # another process has just stored the same mesh: keep that one
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "mesh.xdmf"


def ensure(name: str, n: int, comm) -> Path:
    """The cached mesh.xdmf of (name, n), generated by rank 0 of ``comm`` if missing.  Collective;
    an error on rank 0 is raised on every rank (no rank is left waiting)."""
    result = None
    if comm.rank == 0:
        try:
            result = ("ok", str(generate(name, n)))
        except MeshGenerationError as exc:  # re-raised below on all ranks
            result = ("error", str(exc))
        except Exception as exc:
            result = ("error", f"{type(exc).__name__}: {exc}")
    status, value = comm.bcast(result, root=0)
    if status != "ok":
        raise MeshGenerationError(value)
    return Path(value)


def load(name: str, n: int, comm):
    """The dolfinx mesh (name, n), distributed over ``comm``."""
    return compat.read_mesh_xdmf(comm, str(ensure(name, n, comm)))


def meta(name: str, n: int) -> dict:
    return json.loads((entry(name, n) / "meta.json").read_text())
