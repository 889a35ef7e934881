"""BM25 statistics per scope: a user's ranking does not depend on anyone else's data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config as AlembicConfig

from memsvc.model.records import MemoryKind, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.sqlite import SQLiteStore
from memsvc.storage.sqlite.engine import MIGRATIONS
from tests.storage.test_store import DIM, record

MATCH = '"apple" OR "banana"'


def _vectors(n: int, seed: int) -> np.ndarray:
    """Random unit vectors, made in one go (the embedder would be the slow part)."""
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _order(store: Any) -> list[tuple[str, float]]:
    hits = store.bm25_search(VisibilityQuery(scope=Scope(user_id="u")), MATCH, 10)
    return [(h.memory_id, round(h.score, 9)) for h in hits]


def test_another_tenants_memories_do_not_change_a_users_ranking(
    make_store: Callable[..., Any],
) -> None:
    store = make_store(DIM)
    texts = ["apple apple pie for dessert", "banana bread in the oven"] + [
        f"an unrelated note number {i} about the weather" for i in range(10)]
    mine = [record(t, "u") for t in texts]
    store.apply(WriteBatch(inserts=list(zip(mine, _vectors(len(mine), 1), strict=True))))
    before = _order(store)
    assert [m for m, _ in before] == [mine[0].id, mine[1].id]  # tf 2 beats tf 1, same idf

    other = store.for_tenant("other")
    vectors = _vectors(10_000, 2)
    for start in range(0, 10_000, 2_000):  # apples everywhere: a rare word for "u" only
        batch = [(record(f"apple {i} " + ("banana" if i % 500 == 0 else "cider"), f"o{i % 7}"),
                  vectors[i]) for i in range(start, start + 2_000)]
        other.apply(WriteBatch(inserts=batch))
    assert _order(store) == before


def test_migration_0007_indexes_existing_memories_as_the_triggers_do(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, embedding_dim=DIM)
    texts = ["Running in Boston", "boston rivers and cafés", "a note on rivers", "x"]
    store.apply(WriteBatch(inserts=[(record(t, u), v) for t, u, v in zip(
        texts * 2, ["u"] * 4 + ["w"] * 4, _vectors(8, 3), strict=True)]))
    # the delete trigger must leave what indexing the remaining rows afresh gives
    store.delete_scope(Scope(user_id="w"), hard=True, at=datetime.now(UTC), actor="test")
    tables = ("fts_scopes", "fts_terms", "memory_terms", "memory_fts_len")

    def snapshot() -> dict[str, list[Any]]:
        with store.engine.connect() as conn:
            return {t: sorted(conn.exec_driver_sql(f"SELECT * FROM {t}").all()) for t in tables}

    by_triggers, before = snapshot(), _order(store)
    with store.engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
        assert not conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name = 'fts_terms'").all()
    store.close()
    store = SQLiteStore(path, embedding_dim=DIM)  # upgrades itself, indexing what is there
    try:
        assert snapshot() == by_triggers
        assert by_triggers["fts_terms"] and _order(store) == before
    finally:
        store.close()


def test_a_kinds_filter_keeps_the_scores_and_returns_only_those_kinds(
    make_store: Callable[..., Any],
) -> None:
    """The matches of other kinds are dropped before scoring (SQLite) or after: either way a
    fact's score is the one it has in the unfiltered search, over the whole scope's
    statistics, and no episode comes back."""
    store = make_store(DIM)
    facts = [record(t, "u") for t in ("apple pie recipe", "banana and apple smoothie")]
    episodes = [record(t, "u").model_copy(update={"kind": MemoryKind.EPISODE})
                for t in ("I ate an apple", "apple apple apple", "banana split", "a walk")]
    batch = [*facts, *episodes]
    store.apply(WriteBatch(inserts=list(zip(batch, _vectors(len(batch), 3), strict=True))))
    every = {h.memory_id: h.score for h in store.bm25_search(
        VisibilityQuery(scope=Scope(user_id="u")), MATCH, 10)}
    assert {e.id for e in episodes[:3]} <= every.keys()  # episodes do match
    only_facts = store.bm25_search(
        VisibilityQuery(scope=Scope(user_id="u"), kinds=("fact",)), MATCH, 10)
    assert {h.memory_id for h in only_facts} == {f.id for f in facts}
    for hit in only_facts:
        assert np.isclose(hit.score, every[hit.memory_id], rtol=1e-9)
