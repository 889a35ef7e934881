"""Opening a SQLite store file: the connection setup, the pragmas and the schema migrations.

Every connection loads sqlite-vec and gets the same pragmas (WAL, busy timeout, mmap), and a
write transaction takes the lock up front, so concurrent writers (threads or processes) wait
rather than fail. Opening a file brings it to the newest schema before anything reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_vec
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import DBAPIError

from memsvc.model.errors import StoreError
from memsvc.storage.driver import sqlite_dbapi
from memsvc.storage.schema import store_meta
from memsvc.storage.sqlite.lexical import QUERY_TOKENIZER

MIGRATIONS = Path(__file__).parent.parent / "migrations"
_MMAP_BYTES = 1 << 30


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: transactions are begun explicitly in `_on_begin`.
    dbapi_connection.isolation_level = None
    dbapi_connection.enable_load_extension(True)
    sqlite_vec.load(dbapi_connection)
    dbapi_connection.enable_load_extension(False)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A KNN reads every vector of the scope (15 MB at 10k memories) through blob I/O; from a
    # memory map that is a copy instead of a pread per page, a measurably faster KNN.
    # Address space only: pages are shared with the OS cache, not allocated per connection.
    cursor.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
    # Per connection, in its temp schema (a read writes nothing to the file): turns a query's
    # words into FTS5's terms for BM25 (`storage/sqlite/lexical.py`).
    for statement in QUERY_TOKENIZER:
        cursor.execute(statement)
    cursor.close()


def _on_begin(conn: Connection) -> None:
    # A write takes the lock up front: a deferred transaction that later upgrades to a write
    # can fail with SQLITE_BUSY at once instead of waiting out the busy timeout.
    # On the driver's connection: every read begins a transaction, and a statement through
    # SQLAlchemy's execution path costs several times the BEGIN itself.
    immediate = conn.get_execution_options().get("write")
    driver = conn.connection.driver_connection
    assert driver is not None  # a connection being begun is checked out
    driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        module=sqlite_dbapi(),
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=16,
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def upgrade(engine: Engine, embedding_dim: int | None) -> None:
    """Bring the file to the newest schema; a no-op (one query) when it already is.

    `embedding_dim` None (the key store, which holds no vectors) accepts whatever width the
    file was made with, and makes a new file as wide as the default embedder's vectors.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if MigrationContext.configure(conn).get_current_revision() != head:
            cfg.attributes["connection"] = conn
            cfg.attributes["embedding_dim"] = embedding_dim or _default_width()
            command.upgrade(cfg, "head")
        stored = conn.execute(
            select(store_meta.c.value).where(store_meta.c.key == "embedding_dim")
        ).scalar_one()
    if embedding_dim is not None and int(stored) != embedding_dim:
        raise StoreError(
            f"this store holds {stored}-dimensional vectors but the embedder makes "
            f"{embedding_dim}; open it with the embedder it was created with"
        )


def open_engine(path: Path, embedding_dim: int | None) -> Engine:
    """An engine on `path`, its file created or upgraded; StoreError if it cannot be."""
    engine = make_engine(path)
    try:
        upgrade(engine, embedding_dim)
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"cannot open store at {path}: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read transaction (deferred: it takes no write lock)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _default_width() -> int:
    """The default embedder's vector width, from its config files (torch is not loaded): the
    width a new file gets when whoever creates it holds no embedder (`memsvc keys`)."""
    from memsvc.embedding.embedder import model_dimension
    from memsvc.model.settings import default_embedder_path

    width = model_dimension(default_embedder_path())
    if width is None:
        raise StoreError("cannot tell the default embedder's vector width; open with Memory")
    return width
