"""Opening a store from where it lives: the one place that picks a backend.

A location is a filesystem path or a URL. The backend is chosen from it here, so `Memory`,
the server, the CLI and the evals name a location and get a `MemoryStore` without importing
any backend (and a process that never opens SQLite never loads sqlite-vec).

    /var/lib/memsvc/memsvc.db, ./m.db     → SQLite file
    sqlite:///relative.db, sqlite:////abs.db → SQLite file (SQLAlchemy's URL form)
    postgresql+psycopg://user@host/db      → PostgreSQL (pgvector, row-level security)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from memsvc.model.errors import InvalidInputError
from memsvc.storage.base import KeyStore, MemoryStore
from memsvc.storage.integrity.audit import IntegrityAuditor

# "scheme:" with at least two characters, so a Windows drive ("C:\\db") stays a path
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_HINT = "give a file path, sqlite:///path or postgresql+psycopg://user@host/db"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed location: which backend, and the file (SQLite) or URL (PostgreSQL)."""

    backend: Literal["sqlite", "postgresql"]
    path: Path | None = None
    url: str | None = None


def parse_location(location: str | Path) -> StoreLocation:
    """Which backend a location names; InvalidInputError when it names none we know."""
    text = str(location).strip()
    if not text:
        raise InvalidInputError("the store location is empty; " + _HINT, field="location")
    found = _SCHEME.match(text)
    if found is None:
        return _sqlite_file(Path(text).expanduser())
    scheme = found.group(1).lower()
    if scheme.split("+", 1)[0] == "postgresql":
        return StoreLocation("postgresql", url=text)
    if scheme == "sqlite":
        if isinstance(location, Path) or not text.startswith("sqlite://"):
            # Path("sqlite:///a.db") is "sqlite:/a.db": it can no longer be read unambiguously
            raise InvalidInputError(
                "a sqlite: URL must be passed as a string of the form sqlite:///path",
                field="location",
            )
        try:
            url = make_url(text)
        except ArgumentError as exc:
            raise InvalidInputError(f"not a valid sqlite URL: {exc}", field="location") from exc
        if url.query or url.host:
            raise InvalidInputError(
                "a sqlite URL takes only a file path (no host, no options)", field="location"
            )
        if not url.database or url.database == ":memory:":
            raise InvalidInputError(
                "a store needs a file (in-memory SQLite is not shared between connections)",
                field="location",
            )
        return _sqlite_file(Path(url.database).expanduser())
    raise InvalidInputError(
        f"unsupported store location scheme {scheme!r}; " + _HINT, field="location"
    )


def _sqlite_file(path: Path) -> StoreLocation:
    if path.is_dir():
        raise InvalidInputError(
            f"the store location {str(path)!r} is a directory; name a file in it",
            field="location",
        )
    return StoreLocation("sqlite", path=path)


def open_store(location: str | Path, *, tenant: str, embedding_dim: int) -> MemoryStore:
    """The store at `location`, seen by `tenant`, holding `embedding_dim`-wide vectors.

    Creates or upgrades the schema; StoreError if the backend cannot open it (or holds
    vectors of another width), InvalidInputError if the location names no backend.
    """
    where = parse_location(location)
    if where.backend == "postgresql":
        from memsvc.storage.postgres.store import PostgresStore

        assert where.url is not None
        return PostgresStore(where.url, tenant=tenant, embedding_dim=embedding_dim)
    from memsvc.storage.sqlite import SQLiteStore

    assert where.path is not None
    return SQLiteStore(where.path, tenant=tenant, embedding_dim=embedding_dim)


def store_exists(location: str | Path) -> bool:
    """Is there a store at `location` already? Opens nothing and creates nothing (a file
    that exists counts; a PostgreSQL database must hold the store's tables)."""
    where = parse_location(location)
    if where.backend == "postgresql":
        from memsvc.storage.postgres.engine import store_exists as pg_store_exists

        assert where.url is not None
        return pg_store_exists(where.url)
    assert where.path is not None
    return where.path.is_file()


def open_key_store(location: str | Path, *, embedding_dim: int | None = None) -> KeyStore:
    """The API keys of the store at `location`, on their own connection (close it after).

    A server holding the store uses `store.key_store()` instead, which shares its pool.
    """
    where = parse_location(location)
    if where.backend == "postgresql":
        from memsvc.storage.postgres.store import open_postgres_key_store

        assert where.url is not None
        return open_postgres_key_store(where.url, embedding_dim=embedding_dim)
    from memsvc.storage.sqlite import open_sqlite_key_store

    assert where.path is not None
    return open_sqlite_key_store(where.path)


def open_auditor(location: str | Path) -> IntegrityAuditor:
    """The integrity audit of the store at `location` (`memsvc verify`): every tenant, no
    embedder needed. IntegrityError if there is no store there."""
    where = parse_location(location)
    if where.backend == "postgresql":
        from memsvc.storage.postgres.audit import PostgresAuditor

        assert where.url is not None
        return PostgresAuditor(where.url)
    from memsvc.storage.sqlite.audit import SQLiteAuditor

    assert where.path is not None
    return SQLiteAuditor(where.path)
