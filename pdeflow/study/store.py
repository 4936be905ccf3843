"""The embedded default store of a study: one SQLite file (``study.sqlite``) in the study directory.

Tables

* ``runs`` — one row per run (primary key ``run_id``): the identifying fields of the run dict
  (``grp`` = the group that first put it, ``case_name`` = ``run["case"]``, ``params`` and ``sweep``
  as JSON) and the fields of its result (``status``, ``message``, ``metrics``/``stats``/``versions``
  as JSON, ``wall``, ``mpi_size``, ``finished_at`` as an ISO-8601 UTC time).
* ``membership(run_id, grp)`` — which groups a run belongs to.  Groups of a study may share a run
  (same ``run_id``); it is computed once and listed in every group through this table.
* ``study(key, value)`` — metadata, at least the spec source text (:data:`META_SPEC`) and the study
  name (:data:`META_NAME`), so that a report can be made from the directory alone.

Writers.  Only rank 0 of the runner ever opens the store for writing (the runner gathers results
there and is the single writer); other ranks never touch the file.  SQLite in WAL mode allows
concurrent *readers* (``pdeflow study report`` while a study runs) next to that one writer.
WAL needs a local file system (not NFS) because it uses shared memory for its index.

Durability.  ``journal_mode=WAL`` with ``synchronous=FULL`` and a commit after every :meth:`Store.put`
means a ``kill -9`` (or a node failure) loses at most the runs that had not yet been put; a
restarted study with ``--resume`` skips :meth:`Store.finished_ids`.
"""
from __future__ import annotations

import functools
import json
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

FILENAME = "study.sqlite"
META_SPEC = "spec"  # the spec's TOML source text
META_NAME = "name"  # the study name

_JSON_COLUMNS = ("params", "sweep", "metrics", "stats", "versions")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    study TEXT,
    grp TEXT,
    kind TEXT,
    case_name TEXT,
    method TEXT,
    params TEXT,
    seed INTEGER,
    sweep TEXT,
    status TEXT,
    message TEXT,
    metrics TEXT,
    stats TEXT,
    wall REAL,
    versions TEXT,
    mpi_size INTEGER,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS membership (
    run_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    PRIMARY KEY (run_id, grp)
);
CREATE INDEX IF NOT EXISTS membership_grp ON membership (grp);
CREATE TABLE IF NOT EXISTS study (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""


def _jsonable(obj):
    """``json.dumps`` default: numpy scalars and arrays, tuples, paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _dumps(value) -> str | None:
    if value is None:
        return None
    # NaN/inf are kept (Python's json reads them back); sort_keys keeps the text canonical
    return json.dumps(value, default=_jsonable, sort_keys=True)


def _loads(text):
    return None if text is None else json.loads(text)


def _float_or_none(value):
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def resolve_path(path) -> Path:
    """A directory (or a path without a ``.sqlite``/``.sqlite3``/``.db`` suffix) means
    ``path/study.sqlite``; anything else is the database file itself."""
    path = Path(path)
    if path.is_dir() or path.suffix not in (".sqlite", ".sqlite3", ".db"):
        return path / FILENAME
    return path


class StoreError(OSError):
    """The store cannot be opened, read or written (not a database, read-only, disk full): every
    SQLite error of a :class:`Store` method is raised as this, with the file's path, so the CLI
    reports it in one line (sqlite3 errors are not OSErrors)."""


def _guarded(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except sqlite3.Error as exc:
            raise StoreError(f"study store {self.path}: {exc}") from None

    return wrapper


class Store:
    """SQLite store of one study.  ``Store(path)``: ``path`` is the study directory (the file is
    ``study.sqlite`` in it; the directory is created) or the database file.  Usable as a context
    manager."""

    @_guarded
    def __init__(self, path):
        self.path = resolve_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(str(self.path), timeout=60.0)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.executescript(_SCHEMA)
        self._con.commit()

    @property
    def directory(self) -> Path:
        return self.path.parent

    # -- writing (rank 0 only) -------------------------------------------------------------
    @_guarded
    def put(self, run: dict, result: dict) -> None:
        """Store (or replace) the result of ``run`` and record its group membership; committed
        before returning."""
        seed = result.get("seed", run.get("seed"))
        row = (
            run["run_id"],
            run.get("study") or self.get_meta(META_NAME),
            run.get("group"),
            run.get("kind"),
            run.get("case"),
            run.get("method"),
            _dumps(run.get("params")),
            None if seed is None else int(seed),
            _dumps(run.get("sweep")),
            result.get("status"),
            result.get("message"),
            _dumps(result.get("metrics")),
            _dumps(result.get("stats")),
            _float_or_none(result.get("wall")),
            _dumps(result.get("versions")),
            None if result.get("mpi_size") is None else int(result["mpi_size"]),
            result.get("finished_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        with self._con:  # one transaction, committed on exit
            self._con.execute(
                "INSERT OR REPLACE INTO runs (run_id, study, grp, kind, case_name, method, params, seed,"
                " sweep, status, message, metrics, stats, wall, versions, mpi_size, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if run.get("group") is not None:
                self._con.execute(
                    "INSERT OR IGNORE INTO membership (run_id, grp) VALUES (?, ?)", (run["run_id"], run["group"])
                )

    @_guarded
    def add_membership(self, run_id: str, group: str) -> None:
        """Record that ``run_id`` also belongs to ``group`` (a shared run, or one skipped on
        resume); committed before returning."""
        with self._con:
            self._con.execute("INSERT OR IGNORE INTO membership (run_id, grp) VALUES (?, ?)", (run_id, group))

    @_guarded
    def set_meta(self, key: str, value) -> None:
        with self._con:
            self._con.execute(
                "INSERT OR REPLACE INTO study (key, value) VALUES (?, ?)", (key, None if value is None else str(value))
            )

    # -- reading ---------------------------------------------------------------------------
    @_guarded
    def get_meta(self, key: str, default=None):
        row = self._con.execute("SELECT value FROM study WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    @_guarded
    def done_ids(self) -> set:
        """Run ids with status ``done``."""
        return {r[0] for r in self._con.execute("SELECT run_id FROM runs WHERE status = 'done'")}

    @_guarded
    def finished_ids(self, retry_failed: bool = False) -> set:
        """Run ids that ``--resume`` skips: ``done`` and ``failed`` runs (a failure is a result
        and is kept), or only ``done`` ones with ``retry_failed=True``."""
        if retry_failed:
            return self.done_ids()
        return {r[0] for r in self._con.execute("SELECT run_id FROM runs WHERE status IN ('done', 'failed')")}

    @_guarded
    def groups(self) -> list:
        """Group labels in the order they were first recorded."""
        cur = self._con.execute("SELECT grp FROM membership GROUP BY grp ORDER BY MIN(rowid)")
        return [r[0] for r in cur]

    @_guarded
    def rows(self, group: str | None = None, status: str | None = None) -> list:
        """Runs as dicts with the keys of the run/result contract (``group``, ``case``, ``params``,
        ``sweep``, ``metrics``, ... JSON decoded) plus ``study`` and ``finished_at``.

        With ``group``: every run that is a member of the group (shared runs included), with
        ``group`` set to that label.  Without: one row per run, ``group`` the group that put it."""
        cols = (
            "r.run_id, r.study, r.grp, r.kind, r.case_name, r.method, r.params, r.seed, r.sweep, r.status,"
            " r.message, r.metrics, r.stats, r.wall, r.versions, r.mpi_size, r.finished_at"
        )
        where, args = [], []
        if group is not None:
            sql = f"SELECT {cols}, m.grp FROM runs r JOIN membership m ON m.run_id = r.run_id"
            where.append("m.grp = ?")
            args.append(group)
        else:
            sql = f"SELECT {cols}, r.grp FROM runs r"
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.rowid"
        out = []
        for rec in self._con.execute(sql, args):
            (run_id, study, grp, kind, case, method, params, seed, sweep, status_, message, metrics, stats_,
             wall, versions, mpi_size, finished_at, member) = rec
            out.append(
                {
                    "run_id": run_id,
                    "study": study,
                    "group": member,
                    "kind": kind,
                    "case": case,
                    "method": method,
                    "params": _loads(params),
                    "seed": seed,
                    "sweep": _loads(sweep) or {},
                    "status": status_,
                    "message": message,
                    "metrics": _loads(metrics) or {},
                    "stats": _loads(stats_) or {},
                    "wall": wall,
                    "versions": _loads(versions) or {},
                    "mpi_size": mpi_size,
                    "finished_at": finished_at,
                }
            )
        return out

    @_guarded
    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self._con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        return int(self._con.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0])

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
