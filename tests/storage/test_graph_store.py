"""The entity graph tables: written with the memory, erased with it, scoped like it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc.model.errors import StoreError
from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.graph_model import concept_name, normalize_entity
from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore

NOW = datetime(2024, 3, 1, tzinfo=UTC)
U1 = Scope(user_id="u1")
Store = SQLiteStore | PostgresStore


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:  # every backend (conftest)
    return make_store(4)


def fact(text: str, entities: list[str], scope: Scope = U1, **extra: Any) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=scope, kind=MemoryKind.FACT, text=text, entities=entities,
        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text), **extra,
    )


def vec(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(4).astype(np.float32)


def names(store: Store, scope: Scope = U1) -> dict[str, list[str]]:
    """The named entities (concept entities, `memsvc.text.concepts`, left out)."""
    data = store.graph_data(scope)
    return {name: aliases for name, aliases in data.entities.values()
            if concept_name(name) is None}


def test_normalize_entity_folds_case_space_and_possessive() -> None:
    assert normalize_entity("  Caroline's ") == "caroline"
    assert normalize_entity("The  Hobbit.") == "the hobbit"
    assert normalize_entity("JAMES’") == "james"
    assert normalize_entity("Café Olé") == "café olé"


def test_links_aliases_and_relations_are_written_with_the_memory(store: Store) -> None:
    rec = fact(
        "Caroline adopted Oscar", ["Caroline", "Oscar"], subject="Caroline",
        predicate="adopted", object="Oscar",
        metadata={"aliases": {"her guinea pig": "Oscar", "Caro": "Caroline"}},
    )
    store.apply(WriteBatch(inserts=[(rec, vec())]))
    data = store.graph_data(U1)
    assert names(store) == {"Caroline": ["Caro"], "Oscar": ["her guinea pig"]}
    assert sorted(pk for mid, pk in data.links if mid == rec.id) == sorted(data.entities)
    by_name = {name: pk for pk, (name, _) in data.entities.items()}
    assert data.relations == [(by_name["Caroline"], by_name["Oscar"], "adopted")]
    assert store.entities_of([rec.id]) == {rec.id: ["Caroline", "Oscar"]}


def test_same_entity_is_one_row_and_aliases_accumulate(store: Store) -> None:
    a = fact("Oscar eats hay", ["Oscar"], metadata={"aliases": {"the guinea pig": "Oscar"}})
    b = fact("oscar sleeps a lot", ["oscar"], metadata={"aliases": {"Ossie": "Oscar"}})
    store.apply(WriteBatch(inserts=[(a, vec(1))]))
    store.apply(WriteBatch(inserts=[(b, vec(2))]))
    assert names(store) == {"Oscar": ["Ossie", "the guinea pig"]}
    data = store.graph_data(U1)
    assert sum(1 for _, pk in data.links if concept_name(data.entities[pk][0]) is None) == 2


def test_a_failed_batch_leaves_no_links(store: Store) -> None:
    good = fact("Ana lives in Paris", ["Ana", "Paris"])
    store.apply(WriteBatch(inserts=[(good, vec())]))
    before = store.graph_data(U1)
    version = store.graph_version(U1)
    clash = fact("Ben visits Rome", ["Ben", "Rome"]).model_copy(update={"id": good.id})
    with pytest.raises(StoreError):
        store.apply(WriteBatch(inserts=[(clash, vec())]))  # duplicate id: the batch rolls back
    assert store.graph_data(U1) == before
    assert store.graph_version(U1) == version


def test_version_moves_on_link_changes_only(store: Store) -> None:
    rec = fact("Ana lives in Paris", ["Ana", "Paris"])
    assert store.graph_version(U1) == 0
    store.apply(WriteBatch(inserts=[(rec, vec())]))
    v1 = store.graph_version(U1)
    assert v1 > 0
    archived = rec.model_copy(update={"status": MemoryStatus.ARCHIVED, "updated_at": NOW})
    store.apply(WriteBatch(updates=[(archived, None)]))
    assert store.graph_version(U1) == v1  # a status change does not touch the graph
    moved = archived.model_copy(update={"text": "Ana lives in Lyon", "entities": ["Ana", "Lyon"]})
    store.apply(WriteBatch(updates=[(moved, vec(3))]))
    assert store.graph_version(U1) > v1
    assert store.entities_of([rec.id]) == {rec.id: ["Ana", "Lyon"]}
    other = Scope(user_id="u2")
    assert store.graph_version(other) == 0  # another user's counter did not move


def test_hard_delete_erases_links_and_scope_delete_erases_entities(store: Store) -> None:
    a = fact("Ana lives in Paris", ["Ana", "Paris"])
    b = fact("Ben likes jazz", ["Ben"])
    store.apply(WriteBatch(inserts=[(a, vec(1)), (b, vec(2))]))
    store.apply(WriteBatch(hard_deletes=[a.id]))
    assert {mid for mid, _ in store.graph_data(U1).links} == {b.id}
    store.delete_scope(U1, hard=True, at=NOW, actor="test")
    assert store.graph_data(U1).entities == {}
    assert store.graph_data(U1).links == []


def test_soft_scope_delete_keeps_links_but_hides_memories(store: Store) -> None:
    a = fact("Ana lives in Paris", ["Ana", "Paris"])
    store.apply(WriteBatch(inserts=[(a, vec())]))
    store.delete_scope(U1, hard=False, at=NOW, actor="test")
    assert store.graph_data(U1).links  # soft delete is reversible: edges kept
    assert store.visible_ids(VisibilityQuery(scope=U1), [a.id]) == set()


def test_reset_erases_this_tenants_graph_only(store: Store) -> None:
    other = store.for_tenant("t2")
    store.apply(WriteBatch(inserts=[(fact("Ana lives in Paris", ["Ana"]), vec())]))
    other.apply(WriteBatch(inserts=[(fact("Ben lives in Rome", ["Ben"]), vec())]))
    assert names(store) == {"Ana": []}
    assert names(other) == {"Ben": []}  # tenants never see each other's entities
    store.reset()
    assert store.graph_data(U1).entities == {}
    assert names(other) == {"Ben": []}


def test_scopes_are_separate_and_a_user_sees_all_its_agents(store: Store) -> None:
    store.apply(WriteBatch(inserts=[
        (fact("Ana lives in Paris", ["Ana"], Scope(user_id="u1", agent_id="a1")), vec(1)),
        (fact("Ana has a cat", ["Ana", "Tom"], Scope(user_id="u1", agent_id="a2")), vec(2)),
        (fact("Zed likes golf", ["Zed"], Scope(user_id="u2")), vec(3)),
    ]))
    rows = sorted(name for name, _ in store.graph_data(U1).entities.values()
                  if concept_name(name) is None)
    assert rows == ["Ana", "Ana", "Tom"]  # one row per agent scope
    assert sorted(names(store, Scope(user_id="u1", agent_id="a1"))) == ["Ana"]
    assert sorted(names(store, Scope(user_id="u2"))) == ["Zed"]


def test_visible_ids_applies_status_kind_and_time(store: Store) -> None:
    a = fact("Ana lives in Paris", ["Ana"], valid_from=datetime(2020, 1, 1, tzinfo=UTC))
    b = fact("Ana lives in Lyon", ["Ana"], valid_from=datetime(2023, 1, 1, tzinfo=UTC))
    store.apply(WriteBatch(inserts=[(a, vec(1)), (b, vec(2))]))
    then = VisibilityQuery(scope=U1, as_of=datetime(2021, 1, 1, tzinfo=UTC))
    assert store.visible_ids(then, [a.id, b.id]) == {a.id}
    assert store.visible_ids(VisibilityQuery(scope=U1, kinds=("event",)), [a.id, b.id]) == set()
    assert store.visible_ids(VisibilityQuery(scope=Scope(user_id="u2")), [a.id]) == set()


def test_visible_ids_applies_filters_tenant_and_takes_any_ids(store: Store) -> None:
    # many memories in the scope, a few asked about: the answer is about those asked
    rows = [fact(f"Ana note {i}", ["Ana"], metadata={"tag": "b" if i % 2 else "a"})
            for i in range(30)]
    store.apply(WriteBatch(inserts=[(r, vec(i)) for i, r in enumerate(rows)]))
    other = store.for_tenant("t2")
    theirs = fact("Ana note", ["Ana"])
    other.apply(WriteBatch(inserts=[(theirs, vec())]))
    asked = [rows[1].id, rows[2].id, rows[1].id, "no-such-id", theirs.id, rows[3].id]
    tagged = VisibilityQuery(scope=U1, filters=parse_filters({"tag": "b"}))
    assert store.visible_ids(tagged, asked) == {rows[1].id, rows[3].id}
    assert store.visible_ids(VisibilityQuery(scope=U1), asked) == {
        rows[1].id, rows[2].id, rows[3].id}
    assert other.visible_ids(VisibilityQuery(scope=U1), asked) == {theirs.id}
    assert store.visible_ids(VisibilityQuery(scope=U1), []) == set()


def test_embeddings_are_read_back(store: Store) -> None:
    rec = fact("Ana lives in Paris", ["Ana"])
    store.apply(WriteBatch(inserts=[(rec, vec(7))]))
    got = store.embeddings([rec.id, "missing"])
    assert list(got) == [rec.id]
    # stored at unit length (the L2 index ranks as cosine only on unit vectors)
    np.testing.assert_allclose(got[rec.id], vec(7) / np.linalg.norm(vec(7)), rtol=1e-6)


def test_upgrading_an_older_file_links_the_memories_it_holds(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from memsvc.storage.sqlite.engine import MIGRATIONS

    path = tmp_path / "old.db"
    s = SQLiteStore(path, embedding_dim=4)
    rec = fact("Ana lives in Paris", ["Ana", "Paris"], subject="Ana", predicate="lives_in",
               object="Paris")
    s.apply(WriteBatch(inserts=[(rec, vec())]))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with s.engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")  # the file as the previous release left it
    s.close()
    reopened = SQLiteStore(path, embedding_dim=4)  # opening upgrades to the head
    try:
        assert names(reopened) == {"Ana": [], "Paris": []}
        assert len(reopened.graph_data(U1).relations) == 1
        assert reopened.graph_version(U1) > 0
    finally:
        reopened.close()
