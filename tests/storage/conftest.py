"""Stores under test: every storage test that takes `make_store` runs on SQLite and PostgreSQL.

PostgreSQL is one embedded server per test session (started on first use, so a run of only
the SQLite cases never starts it), and each test gets a fresh schema of one database: a
schema plus the migrations is ~0.15 s where a fresh database would be ~0.3 s.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from memsvc.storage.postgres.server import EmbeddedPostgres
from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore

Store = SQLiteStore | PostgresStore
TEST_DATABASE = "memsvc_test"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One throw-away cluster per session, in a short fresh dir right under /tmp: pytest's
    own tmp tree is 0700 (re-chmodded every session) and long paths overflow a socket path."""
    root = Path(tempfile.mkdtemp(prefix="memsvc-pg-"))
    server = EmbeddedPostgres(root / "pg", database=TEST_DATABASE, fast_unsafe=True)
    server.start()
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """The URL of a fresh, empty schema (as the server's superuser), dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield pg_server.url() + "&options=" + quote(f"-csearch_path={schema},public", safe="")
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """`make_store(dim)` opens this test's store (the same file or schema on every call)."""
    opened: list[Store] = []
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None

    def make(dim: int, **kwargs: Any) -> Store:
        store: Store
        if url is None:
            store = SQLiteStore(tmp_path / "s.db", embedding_dim=dim, **kwargs)
        else:
            store = PostgresStore(url, embedding_dim=dim, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
