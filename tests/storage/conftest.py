"""Stores under test: every storage test that takes `make_store` runs on SQLite and PostgreSQL
(the server and the per-test schema, `pg_server` / `pg_url`, are tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore

Store = SQLiteStore | PostgresStore


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
