"""The SQLite store on its own: schema, pragmas, scoped KNN, FTS in step, tenants."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from memsvc.errors import NotFoundError, StoreError
from memsvc.filters import parse_filters
from memsvc.ids import content_hash, new_id
from memsvc.models import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.sqlite_store import SQLiteStore

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DIM = 8


def record(text: str, user: str, **extra: object) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id=user), kind=MemoryKind.FACT, text=text,
        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text), **extra,
    )


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v + [0.0] * (DIM - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db", embedding_dim=DIM)
    yield s
    s.close()


def test_schema_is_migrated_and_wal_is_on(store: SQLiteStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    assert {"memories", "messages", "history", "memory_fts", "memory_vec"} <= tables
    assert revision  # the store upgraded itself on open


def test_reopening_with_another_dimension_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "s.db", embedding_dim=DIM).close()
    with pytest.raises(StoreError, match="8-dimensional"):
        SQLiteStore(tmp_path / "s.db", embedding_dim=16)


def test_knn_is_restricted_to_the_scope_inside_the_query(store: SQLiteStore) -> None:
    """u2 has 300 vectors closer to the query than u1's one; u1 still gets its memory.

    Post-filtering a global top-k (k=10) would return nothing for u1.
    """
    crowd = [(record(f"crowd {i}", "u2"), unit([1.0, 0.01 * i])) for i in range(300)]
    mine = record("mine", "u1")
    store.apply(WriteBatch(inserts=[*crowd, (mine, unit([0.2, 1.0]))]))
    hits = store.vector_search(VisibilityQuery(scope=Scope(user_id="u1")), unit([1.0]), 10)
    assert [h.memory_id for h in hits] == [mine.id]
    assert 0.0 < hits[0].score < 1.0


def test_knn_with_filters_scores_only_rows_that_pass(store: SQLiteStore) -> None:
    close = record("close", "u1", metadata={"tag": "a"})
    far = record("far", "u1", metadata={"tag": "b"})
    store.apply(WriteBatch(inserts=[(close, unit([1.0])), (far, unit([0.0, 1.0]))]))
    query = VisibilityQuery(scope=Scope(user_id="u1"), filters=parse_filters({"tag": "b"}))
    assert [h.memory_id for h in store.vector_search(query, unit([1.0]), 5)] == [far.id]


def test_fts_follows_updates_and_deletes(store: SQLiteStore) -> None:
    rec = record("lives in Boston", "u1")
    store.apply(WriteBatch(inserts=[(rec, unit([1.0]))]))
    scope = VisibilityQuery(scope=Scope(user_id="u1"))
    assert [h.memory_id for h in store.bm25_search(scope, '"boston"', 5)] == [rec.id]
    moved = rec.model_copy(update={"text": "lives in Denver"})
    store.apply(WriteBatch(updates=[(moved, unit([0.0, 1.0]))]))
    assert store.bm25_search(scope, '"boston"', 5) == []
    assert [h.memory_id for h in store.bm25_search(scope, '"denver"', 5)] == [rec.id]
    store.apply(WriteBatch(hard_deletes=[rec.id]))
    assert store.bm25_search(scope, '"denver"', 5) == []
    assert store.consistency()["consistent"]


def test_status_change_reaches_the_vector_index(store: SQLiteStore) -> None:
    rec = record("a fact", "u1")
    store.apply(WriteBatch(inserts=[(rec, unit([1.0]))]))
    store.apply(WriteBatch(updates=[(rec.model_copy(update={"status": MemoryStatus.ARCHIVED}),
                                     None)]))
    query = VisibilityQuery(scope=Scope(user_id="u1"))
    assert store.vector_search(query, unit([1.0]), 5) == []
    archived = VisibilityQuery(scope=Scope(user_id="u1"), statuses=("archived",))
    assert [h.memory_id for h in store.vector_search(archived, unit([1.0]), 5)] == [rec.id]
    assert store.consistency()["vector_metadata_mismatch"] == 0


def test_a_failing_batch_writes_nothing(store: SQLiteStore) -> None:
    good = record("good", "u1")
    ghost = record("never stored", "u1")
    with pytest.raises(NotFoundError):
        store.apply(WriteBatch(inserts=[(good, unit([1.0]))], updates=[(ghost, None)]))
    assert store.get(good.id) is None
    assert store.consistency()["consistent"]
    assert store.stats().memories == 0 and store.stats().vectors == 0


def test_tenants_never_see_each_other(store: SQLiteStore) -> None:
    other = store.for_tenant("acme")
    mine = record("shared words here", "u1")
    theirs = record("shared words here", "u1")
    store.apply(WriteBatch(inserts=[(mine, unit([1.0]))]))
    other.apply(WriteBatch(inserts=[(theirs, unit([1.0]))]))
    scope = VisibilityQuery(scope=Scope(user_id="u1"))
    assert [h.memory_id for h in store.vector_search(scope, unit([1.0]), 10)] == [mine.id]
    assert [h.memory_id for h in other.bm25_search(scope, '"shared"', 10)] == [theirs.id]
    assert other.get(mine.id) is None
    other.reset()
    assert store.get(mine.id) is not None and other.stats().memories == 0
