"""The text form of the visibility clause (storage/sqlite/visibility_sql.py) selects what the
composed clause (storage/filter_sql.py) selects, for every kind of condition; and the SQLite
search paths that use one or the other (BM25 without and with filters, a KNN over one
partition or split over its shards) rank alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.schema import memories
from memsvc.storage.sqlite import SQLiteStore, vectors
from memsvc.storage.sqlite.visibility_sql import visibility_sql

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DIM = 8


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "v.db", embedding_dim=DIM)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(48):
        rec = MemoryRecord(
            id=new_id(), kind=list(MemoryKind)[i % 3], text=f"river note {i} word{i % 5}",
            scope=Scope(user_id=f"u{i % 2}", agent_id=f"a{i % 3}" if i % 4 else None,
                        session_id=f"s{i % 5}"),
            status=list(MemoryStatus)[i % 4], trust=1 + i % 3,
            valid_from=NOW + timedelta(days=i % 7) if i % 3 else None,
            valid_to=NOW + timedelta(days=3 + i % 5) if i % 2 else None,
            created_at=NOW, updated_at=NOW, content_hash=content_hash("x", str(i)),
        )
        rows.append((rec, rng.standard_normal(DIM).astype(np.float32)))
    s.apply(WriteBatch(inserts=rows))
    yield s
    s.close()


QUERIES = [
    VisibilityQuery(scope=Scope(user_id="u0")),
    VisibilityQuery(scope=Scope(user_id="u1", agent_id="a1"), statuses=()),
    VisibilityQuery(scope=Scope(session_id="s2"), statuses=("active", "archived")),
    VisibilityQuery(scope=Scope(user_id="u0"), kinds=("fact", "episode"), min_trust=2),
    VisibilityQuery(scope=Scope(), statuses=("active", "superseded"),
                    as_of=NOW + timedelta(days=4)),
    VisibilityQuery(scope=Scope(user_id="u0", session_id="s0"), statuses=(),
                    as_of=datetime(2024, 1, 5, 12, tzinfo=UTC), min_trust=1),
]


@pytest.mark.parametrize("query", QUERIES)
def test_text_and_composed_clauses_select_the_same_rows(
    store: SQLiteStore, query: VisibilityQuery
) -> None:
    composed = select(memories.c.id).where(visibility_clause("default", query))
    as_text = visibility_sql("default", query)
    assert as_text is not None
    condition, params = as_text
    with store.engine.connect() as conn:
        expected = sorted(conn.execute(composed).scalars())
        got = sorted(r[0] for r in conn.exec_driver_sql(
            f"SELECT memories.id FROM memories WHERE {condition}", params))
    assert got == expected
    assert 0 < len(expected) < 48  # each query keeps some rows and drops others


def test_a_query_with_filters_has_no_text_form() -> None:
    query = VisibilityQuery(scope=Scope(user_id="u0"), filters=parse_filters({"kind": "fact"}))
    assert visibility_sql("default", query) is None


@pytest.mark.parametrize("query", QUERIES)
def test_bm25_ranks_alike_with_the_text_and_the_composed_clause(
    store: SQLiteStore, query: VisibilityQuery
) -> None:
    # a filter every row passes sends the search down the composed path
    everything = parse_filters({"text": {"ne": "no such text"}})
    for k in (3, 50):
        plain = store.lexical_search(query, "river word2 word3", k)
        composed = store.lexical_search(
            VisibilityQuery(scope=query.scope, kinds=query.kinds, statuses=query.statuses,
                            as_of=query.as_of, min_trust=query.min_trust, filters=everything),
            "river word2 word3", k)
        assert plain == composed


def test_a_small_partition_is_searched_in_one_statement_as_the_shards_rank_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    query = VisibilityQuery(scope=Scope(user_id="u0"), statuses=())
    sizes = vectors.ScopeSizes()
    for _ in range(5):
        vector = vectors.blob(rng.standard_normal(DIM))
        for k in (1, 5, 24, 30):
            whole = vectors.knn(store.engine, "default", query, vector, k, sizes)
            monkeypatch.setattr(vectors, "SPLIT_FROM", 0)
            split = vectors.knn(store.engine, "default", query, vector, k, sizes)
            monkeypatch.undo()
            assert whole == split and len(whole) == min(k, 24)


def test_scope_sizes_count_again_once_stale(store: SQLiteStore) -> None:
    now = [0.0]
    sizes = vectors.ScopeSizes(ttl=10, clock=lambda: now[0])
    with store.engine.connect() as conn:
        assert sizes.of(conn, "default", "u0") == 24
        conn.exec_driver_sql("DELETE FROM memories WHERE user_id = 'u0' AND status = 'active'")
        assert sizes.of(conn, "default", "u0") == 24  # still the first count
        now[0] = 11
        assert sizes.of(conn, "default", "u0") < 24


def test_the_text_form_knows_every_field_of_a_visibility_query() -> None:
    # visibility_sql is a second writing of FilterCompiler.visibility: a field added to
    # VisibilityQuery must be written into both, or BM25 without filters would ignore it
    from dataclasses import fields

    assert {f.name for f in fields(VisibilityQuery)} == {
        "scope", "kinds", "statuses", "filters", "as_of", "min_trust"}
