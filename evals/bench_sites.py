"""Where the store benchmark keeps its stores, per backend: SQLite files or PostgreSQL schemas.

Every store lives under one work dir (a temp dir, or `--keep DIR` to measure it again later
with `--reuse DIR`):

    DIR/<name>.db        SQLite stores
    DIR/pg/              the embedded PostgreSQL cluster (unless a server URL is given);
                         one database, one schema per store (`bench_<name>`)
    DIR/witness/         the integrity witness files of these stores

The ``unaccent`` extension is created in ``public`` before any schema's migrations run, and
each store's URL puts its schema first on the search path (as tests/conftest.py and
evals/bench_http_replicas.py do): the migration's ``CREATE EXTENSION IF NOT EXISTS unaccent``
would otherwise install it into the first store's schema, out of reach of the second.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg

from memsvc.storage.integrity.witness import ENV_WITNESS_DIR
from memsvc.storage.postgres.server import EmbeddedPostgres

BACKENDS = ("sqlite", "postgres")
BENCH_DATABASE = "memsvc_bench"


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + quote(f"-csearch_path={schema},public", safe="")


class StoreSite:
    """The stores of one backend under `workdir` (see module docstring)."""

    def __init__(self, backend: str, workdir: Path, pg_url: str | None = None,
                 pg_settings: dict[str, str] | None = None) -> None:
        """`pg_settings`: server settings (``-c name=value``) for the embedded PostgreSQL,
        e.g. a `shared_buffers` that holds a million-memory HNSW index."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
        self.backend = backend
        self.workdir = Path(workdir)
        self.server: EmbeddedPostgres | None = None
        self._url = pg_url
        if backend == "postgres" and pg_url is None:
            self.server = EmbeddedPostgres(self.workdir / "pg", database=BENCH_DATABASE,
                                           settings=pg_settings)
            self._url = self.server.start()
        if backend == "postgres":
            with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")

    def _conninfo(self) -> str:
        assert self._url is not None
        return self._url.replace("postgresql+psycopg://", "postgresql://", 1)

    def location(self, name: str) -> str:
        """The `Memory(db=...)` location of store `name`."""
        if self.backend == "sqlite":
            return str(self.workdir / f"{name}.db")
        assert self._url is not None
        return _with_search_path(self._url, f"bench_{name}")

    def exists(self, name: str) -> bool:
        if self.backend == "sqlite":
            return (self.workdir / f"{name}.db").exists()
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                (f"bench_{name}",)).fetchone() is not None

    def create(self, name: str) -> str:
        """A new, empty store `name` (refused if it exists: results would mix); its location."""
        if self.exists(name):
            raise FileExistsError(f"store {name!r} already exists on {self.backend} "
                                  f"under {self.workdir}; use --reuse to measure it")
        if self.backend == "postgres":
            with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA bench_{name}")
        return self.location(name)

    def size_bytes(self, name: str) -> int | None:
        """On-disk size of store `name` (file + WAL, or the schema's relations)."""
        if self.backend == "sqlite":
            base = self.workdir / f"{name}.db"
            return sum(p.stat().st_size for p in base.parent.glob(base.name + "*"))
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')", (f"bench_{name}",)
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def describe(self) -> dict[str, object]:
        if self.backend == "sqlite":
            return {"backend": "sqlite", "files": str(self.workdir)}
        info: dict[str, object] = {"backend": "postgres",
                                   "server": "embedded" if self.server else "given URL"}
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            for name in ("server_version", "shared_buffers", "work_mem", "fsync",
                         "synchronous_commit", "max_parallel_workers_per_gather",
                         "max_wal_size"):
                row = conn.execute(f"SHOW {name}").fetchone()
                info[name] = row[0] if row else None
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                               ).fetchone()
            info["pgvector"] = row[0] if row else None
        return info

    def close(self) -> None:
        """Stop the embedded server (its data dir stays, for `--reuse`)."""
        if self.server is not None:
            self.server.stop()


def isolate_witness(workdir: Path) -> None:
    """Keep the benchmark's integrity witness files with its stores, not in the user's
    config dir (a schema re-created under the same URL would be compared with old ones)."""
    os.environ.setdefault(ENV_WITNESS_DIR, str(Path(workdir) / "witness"))


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (a `kill`, a CI timeout) into SystemExit, so the `finally` blocks that
    stop a benchmark's embedded PostgreSQL and remove its temp dir run: by default SIGTERM
    ends Python at once and leaves the server running with nobody to stop it."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
