"""Shared fixtures: real stores in temp dirs, one real embedder loaded once per session, and
one embedded PostgreSQL server per session with a fresh schema per test (`pg_url`).

PostgreSQL is started on first use, so a run of only SQLite cases never starts it; a schema
plus the migrations is ~0.15 s where a fresh database would be ~0.3 s. Suites that run on
both backends take `backend` ("sqlite" / "postgres") and `store_location` (a file or a URL).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings, default_embedder_path
from memsvc.storage.postgres.server import EmbeddedPostgres

TEST_DATABASE = "memsvc_test"


@pytest.fixture(scope="session", autouse=True)
def _integrity_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The integrity key and the witness files live in a temp dir, never the user's config
    dir (subprocesses inherit it)."""
    base = tmp_path_factory.mktemp("memsvc-config")
    saved = {k: os.environ.get(k) for k in ("MEMSVC_CONFIG_DIR", "MEMSVC_WITNESS_DIR")}
    os.environ["MEMSVC_CONFIG_DIR"] = str(base)
    os.environ["MEMSVC_WITNESS_DIR"] = str(base / "witness")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The shipped all-MiniLM-L6-v2, loaded from the wheel by path (offline)."""
    return SentenceTransformerEmbedder(default_embedder_path())


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memsvc.db"


@pytest.fixture
def memory(db_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    m = Memory(settings=Settings(db_path=db_path), embedder=embedder)
    yield m
    m.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One throw-away cluster per session, in a short fresh dir right under /tmp: pytest's
    own tmp tree is 0700 (re-chmodded every session) and long paths overflow a socket path."""
    root = Path(tempfile.mkdtemp(prefix="memsvc-pg-"))
    server = EmbeddedPostgres(root / "pg", database=TEST_DATABASE, fast_unsafe=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_schemas(pg_server: EmbeddedPostgres) -> Iterator[Callable[[], str]]:
    """`pg_schemas()` makes a fresh, empty schema and returns its URL (as the server's
    superuser); what is left is dropped with the session. Module-scoped stores use it."""
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return pg_server.url() + "&options=" + quote(f"-csearch_path={schema},public", safe="")

    yield make
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        for schema in made:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_url(pg_server: EmbeddedPostgres, pg_schemas: Callable[[], str]) -> Iterator[str]:
    """The URL of a fresh, empty schema, dropped after the test."""
    url = pg_schemas()
    yield url
    schema = url.rsplit("search_path%3D", 1)[1].split("%2C", 1)[0]
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where this test's store lives on `backend`: a fresh file, or a fresh schema's URL."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "memsvc.db")
