"""A store on its own, on every backend (conftest `make_store`): scoped KNN, FTS in step,
tenants; then what only SQLite has (pragmas, vec0 migrations, the FTS join plan)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event

from memsvc.model.errors import NotFoundError, StoreError
from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore
from memsvc.storage.sqlite.engine import MIGRATIONS

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DIM = 8
Store = SQLiteStore | PostgresStore


def record(text: str, user: str, **extra: object) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id=user), kind=MemoryKind.FACT, text=text,
        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text), **extra,
    )


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v + [0.0] * (DIM - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store(DIM)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db", embedding_dim=DIM)
    yield s
    s.close()


def test_schema_is_migrated_and_wal_is_on(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    assert {"memories", "messages", "history", "memory_fts", "memory_vec"} <= tables
    assert revision  # the store upgraded itself on open


def test_reopening_with_another_dimension_is_refused(make_store: Callable[..., Store]) -> None:
    make_store(DIM).close()
    with pytest.raises(StoreError, match="8-dimensional"):
        make_store(16)


def test_knn_is_restricted_to_the_scope_inside_the_query(store: Store) -> None:
    """u2 has 300 vectors closer to the query than u1's one; u1 still gets its memory.

    Post-filtering a global top-k (k=10) would return nothing for u1.
    """
    crowd = [(record(f"crowd {i}", "u2"), unit([1.0, 0.01 * i])) for i in range(300)]
    mine = record("mine", "u1")
    store.apply(WriteBatch(inserts=[*crowd, (mine, unit([0.2, 1.0]))]))
    hits = store.vector_search(VisibilityQuery(scope=Scope(user_id="u1")), unit([1.0]), 10)
    assert [h.memory_id for h in hits] == [mine.id]
    assert 0.0 < hits[0].score < 1.0


def test_knn_with_filters_scores_only_rows_that_pass(store: Store) -> None:
    close = record("close", "u1", metadata={"tag": "a"})
    far = record("far", "u1", metadata={"tag": "b"})
    store.apply(WriteBatch(inserts=[(close, unit([1.0])), (far, unit([0.0, 1.0]))]))
    query = VisibilityQuery(scope=Scope(user_id="u1"), filters=parse_filters({"tag": "b"}))
    assert [h.memory_id for h in store.vector_search(query, unit([1.0]), 5)] == [far.id]


def test_fts_follows_updates_and_deletes(store: Store) -> None:
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


def test_status_change_reaches_the_vector_index(store: Store) -> None:
    rec = record("a fact", "u1")
    store.apply(WriteBatch(inserts=[(rec, unit([1.0]))]))
    store.apply(WriteBatch(updates=[(rec.model_copy(update={"status": MemoryStatus.ARCHIVED}),
                                     None)]))
    query = VisibilityQuery(scope=Scope(user_id="u1"))
    assert store.vector_search(query, unit([1.0]), 5) == []
    archived = VisibilityQuery(scope=Scope(user_id="u1"), statuses=("archived",))
    assert [h.memory_id for h in store.vector_search(archived, unit([1.0]), 5)] == [rec.id]
    assert store.consistency()["vector_metadata_mismatch"] == 0


def test_a_failing_batch_writes_nothing(store: Store) -> None:
    good = record("good", "u1")
    ghost = record("never stored", "u1")
    with pytest.raises(NotFoundError):
        store.apply(WriteBatch(inserts=[(good, unit([1.0]))], updates=[(ghost, None)]))
    assert store.get(good.id) is None
    assert store.consistency()["consistent"]
    assert store.stats().memories == 0 and store.stats().vectors == 0


def test_tenants_never_see_each_other(store: Store) -> None:
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


def test_knn_scores_are_cosines_whatever_the_vectors_length(store: Store) -> None:
    """The index ranks by L2 over unit vectors; the store normalizes what it is given.

    40 rows of one scope fill both shards, so the merged top-k is checked against the truth.
    """
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((40, DIM)).astype(np.float32) * 5  # not unit length
    rows = [(record(f"m{i}", "u1"), vectors[i]) for i in range(40)]
    store.apply(WriteBatch(inserts=rows))
    query = rng.standard_normal(DIM).astype(np.float32) * 3
    hits = store.vector_search(VisibilityQuery(scope=Scope(user_id="u1")), query, 40)
    unit_rows = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit_rows @ (query / np.linalg.norm(query))
    expected = {rows[i][0].id: float(cosines[i]) for i in range(40)}
    assert [h.memory_id for h in hits] == sorted(expected, key=lambda k: -expected[k])
    assert all(abs(h.score - expected[h.memory_id]) < 1e-5 for h in hits)
    filtered = store.vector_search(  # the exact path (filters) scores the same way
        VisibilityQuery(scope=Scope(user_id="u1"), filters=parse_filters({"kind": "fact"})),
        query, 40,
    )
    assert all(abs(h.score - expected[h.memory_id]) < 1e-5 for h in filtered)


def test_the_l2_index_migration_goes_down_and_up_without_losing_a_vector(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path, embedding_dim=DIM)
    rows = [(record(f"m{i}", f"u{i % 3}"), unit([1.0, 0.1 * i, 0.02 * i * i])) for i in range(30)]
    store.apply(WriteBatch(inserts=rows))
    query = VisibilityQuery(scope=Scope(user_id="u1"))
    before = store.vector_search(query, unit([0.3, 1.0]), 10)
    with store.engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
        assert "distance_metric=cosine" in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'memory_vec'").scalar_one()
    store.close()

    reopened = SQLiteStore(path, embedding_dim=DIM)  # upgrades itself back to l2
    with reopened.engine.connect() as conn:
        ddl = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'memory_vec'").scalar_one()
        assert "distance_metric=l2" in ddl and "shard integer partition key" in ddl
        assert conn.exec_driver_sql("SELECT count(*) FROM memory_vec").scalar_one() == 30
        shards = conn.exec_driver_sql(  # the rows are split between the two shards
            "SELECT shard, count(*) FROM memory_vec GROUP BY shard").all()
        assert sorted(shards) == [(0, 15), (1, 15)]
    after = reopened.vector_search(query, unit([0.3, 1.0]), 10)
    assert [h.memory_id for h in after] == [h.memory_id for h in before]
    assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(after, before, strict=True))
    reopened.close()


def test_bm25_walks_the_matches_not_the_scope(sqlite_store: SQLiteStore) -> None:
    """The FTS matches drive the join (primary-key lookups), whatever the planner estimates.

    Walking a big scope's rows by index and probing the matches gives the same rows but costs
    time in proportion to the scope, not to the matches.
    """
    store = sqlite_store
    rows = [(record(f"note {i} about {'rivers' if i % 50 == 0 else 'other things'}", "u1"),
             unit([1.0, 0.01 * i])) for i in range(300)]
    store.apply(WriteBatch(inserts=rows))
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        hits = store.bm25_search(VisibilityQuery(scope=Scope(user_id="u1")), '"rivers"', 10)
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert len(hits) == 6
    statement, parameters = next((s, p) for s, p in statements if "fts_matches" in s)
    with store.engine.connect() as conn:
        plan = " | ".join(row[3] for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "MATERIALIZE fts_matches" in plan and "SCAN c" in plan  # the matches, walked
    assert "SEARCH mt USING PRIMARY KEY (pk=? AND term=?)" in plan  # their terms, looked up
    assert "SEARCH memories USING INTEGER PRIMARY KEY" in plan and "SCAN memories" not in plan
