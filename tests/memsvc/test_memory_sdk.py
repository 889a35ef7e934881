"""The embedded SDK as a user meets it: add, search, get, list, update, delete, history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memsvc import (
    AsyncMemory,
    Memory,
    MemoryKind,
    MemoryStatus,
    NotFoundError,
    SearchPlan,
)
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.retrievers.plan import ChannelSpec

TURNS = [
    {"role": "user", "name": "Caroline", "content": "I adopted a guinea pig named Oscar.",
     "timestamp": "2023-05-08T13:56:00Z"},
    {"role": "user", "name": "Melanie", "content": "I painted a sunrise over the lake.",
     "timestamp": "2023-05-08T13:57:00Z"},
    {"role": "user", "name": "Caroline", "content": "The support group meets every Tuesday.",
     "timestamp": "2023-05-08T13:58:00Z"},
]


def test_add_stores_each_message_verbatim_as_an_episode(memory: Memory) -> None:
    result = memory.add(TURNS, user_id="u1", session_id="s1", metadata={"topic": "pets"})
    assert len(result.message_ids) == 3
    assert [c.kind for c in result.results] == [MemoryKind.EPISODE] * 3
    raw = memory.messages(user_id="u1")
    assert [m.content for m in raw] == [t["content"] for t in TURNS]
    first = memory.get(result.results[0].id)
    assert first.text == "Caroline: I adopted a guinea pig named Oscar."
    assert first.valid_from == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert first.metadata["speaker"] == "Caroline" and first.metadata["topic"] == "pets"
    assert first.provenance.source_message_ids == [result.message_ids[0]]
    assert first.scope.session_id == "s1"


def test_plain_text_is_one_user_message(memory: Memory) -> None:
    result = memory.add("I like green tea", user_id="u1")
    assert memory.get(result.results[0].id).text == "user: I like green tea"


def test_search_explains_each_hit_by_channel(memory: Memory) -> None:
    memory.add(TURNS, user_id="u1")
    response = memory.search("What pet did Caroline adopt?", user_id="u1", limit=2)
    top = response.results[0]
    assert "guinea pig" in top.memory.text
    assert {"vector", "bm25"} <= set(top.channel_scores)
    assert top.channel_ranks["vector"] == 1
    assert response.results[0].score >= response.results[1].score
    assert "total" in response.timing_ms


def test_bm25_adds_candidates_the_vector_channel_does_not_rank(
    memory: Memory,
) -> None:
    memory.add(TURNS, user_id="u1")
    bm25_only = SearchPlan(channels={"bm25": ChannelSpec()})
    hits = memory.search("Oscar", user_id="u1", plan=bm25_only).results
    assert [h.memory.text for h in hits] == ["Caroline: I adopted a guinea pig named Oscar."]
    assert set(hits[0].channel_scores) == {"bm25"}


def test_search_never_crosses_the_scope_it_names(memory: Memory) -> None:
    memory.add(TURNS, user_id="u1", session_id="a")
    memory.add("Caroline adopted a guinea pig named Oscar", user_id="u2")
    hits = memory.search("guinea pig Oscar", user_id="u2").results
    assert {h.memory.scope.user_id for h in hits} == {"u2"}
    assert memory.search("guinea pig", user_id="u1", session_id="b").results == []
    agent_hits = memory.search("guinea pig", agent_id="nobody").results
    assert agent_hits == []


def test_filters_equality_in_range_and_boolean_combinations(memory: Memory) -> None:
    memory.add(TURNS[:1], user_id="u1", metadata={"topic": "pets", "n": 1})
    memory.add(TURNS[1:2], user_id="u1", metadata={"topic": "art", "n": 2})
    memory.add(TURNS[2:], user_id="u1", metadata={"topic": "groups", "n": 3})

    def texts(filters: dict[str, object]) -> set[str]:
        hits = memory.search("anything at all", user_id="u1", filters=filters).results
        return {h.memory.metadata["topic"] for h in hits}

    assert texts({"topic": "art"}) == {"art"}
    assert texts({"metadata.topic": {"in": ["art", "pets"]}}) == {"art", "pets"}
    assert texts({"n": {"gte": 2}}) == {"art", "groups"}
    assert texts({"valid_from": {"lt": "2023-05-08T13:57:00Z"}}) == {"pets"}
    assert texts({"OR": [{"topic": "art"}, {"n": {"gt": 2}}]}) == {"art", "groups"}
    assert texts({"AND": [{"n": {"gte": 2}}, {"NOT": {"topic": "art"}}]}) == {"groups"}
    assert texts({"topic": {"ne": "art"}, "n": {"lte": 1}}) == {"pets"}


def test_kinds_restrict_results(memory: Memory) -> None:
    memory.add(TURNS, user_id="u1")
    assert memory.search("guinea pig", user_id="u1", kinds=["fact"]).results == []
    assert memory.search("guinea pig", user_id="u1", kinds=["episode"]).results


def test_get_all_pages_through_a_scope(memory: Memory) -> None:
    for i in range(7):
        memory.add(f"note number {i}", user_id="u1")
    memory.add("someone else", user_id="u2")
    seen: list[str] = []
    cursor = None
    while True:
        page = memory.get_all(user_id="u1", limit=3, cursor=cursor)
        assert page.total == 7
        seen += [r.text for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"user: note number {i}" for i in range(7)]


def test_update_writes_a_new_version_and_keeps_the_old_in_history(memory: Memory) -> None:
    mid = memory.add("I live in Boston", user_id="u1").results[0].id
    updated = memory.update(mid, "I live in Denver", metadata={"edited": True})
    assert updated.version == 2 and updated.text == "I live in Denver"
    assert memory.get(mid).text == "I live in Denver"
    events = memory.history(mid)
    assert [e.event.value for e in events] == ["ADD", "UPDATE"]
    assert events[1].old is not None and events[1].old["text"] == "user: I live in Boston"
    # the index follows the new text, not the old
    assert memory.search("Denver", user_id="u1").results[0].memory.id == mid
    bm25 = SearchPlan(channels={"bm25": ChannelSpec()})
    assert memory.search("Boston", user_id="u1", plan=bm25).results == []


def test_soft_delete_hides_from_search_but_keeps_history(memory: Memory) -> None:
    mid = memory.add("I adopted a guinea pig", user_id="u1").results[0].id
    memory.delete(mid)
    assert memory.get(mid).status is MemoryStatus.DELETED
    assert memory.search("guinea pig", user_id="u1").results == []
    assert [e.event.value for e in memory.history(mid)] == ["ADD", "DELETE"]
    assert memory.get_all(user_id="u1").total == 0
    assert memory.get_all(user_id="u1", include_inactive=True).total == 1


def test_hard_delete_erases_from_every_index(memory: Memory) -> None:
    mid = memory.add("I adopted a guinea pig", user_id="u1").results[0].id
    memory.delete(mid, hard=True)
    with pytest.raises(NotFoundError):
        memory.get(mid)
    stats = memory.stats()
    assert (stats.memories, stats.vectors, stats.fts_rows) == (0, 0, 0)
    assert all(e.old is None and e.new is None for e in memory.history(mid))
    assert memory.store.consistency()["consistent"]


def test_delete_all_is_confined_to_its_scope(memory: Memory) -> None:
    memory.add(TURNS, user_id="u1")
    memory.add(TURNS, user_id="u2")
    assert memory.delete_all(user_id="u1", hard=True) == 3
    assert memory.get_all(user_id="u1", include_inactive=True).total == 0
    assert memory.messages(user_id="u1") == []
    assert memory.get_all(user_id="u2").total == 3
    assert memory.delete_all(user_id="u2") == 3  # soft
    assert memory.get_all(user_id="u2", include_inactive=True).total == 3
    assert memory.store.consistency()["consistent"]


def test_reset_erases_everything(memory: Memory) -> None:
    memory.add(TURNS, user_id="u1")
    memory.reset()
    stats = memory.stats()
    assert (stats.memories, stats.messages, stats.history, stats.vectors) == (0, 0, 0, 0)


def test_as_of_sees_memories_valid_then(memory: Memory) -> None:
    old = memory.add("I live in Boston", user_id="u1", timestamp="2020-01-01").results[0].id
    record = memory.get(old)
    # an older fact that stopped being true in 2022
    memory.store.apply(
        __import__("memsvc.storage.base", fromlist=["WriteBatch"]).WriteBatch(
            updates=[(record.model_copy(update={
                "valid_to": datetime(2022, 1, 1, tzinfo=UTC),
                "status": MemoryStatus.SUPERSEDED,
            }), None)]
        )
    )
    assert memory.search("where do I live", user_id="u1").results == []
    then = memory.search("where do I live", user_id="u1", as_of="2021-06-01").results
    assert [h.memory.id for h in then] == [old]
    assert memory.search("where do I live", user_id="u1", as_of="2023-01-01").results == []


def test_store_persists_across_reopen(db_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        mid = m.add("I like green tea", user_id="u1").results[0].id
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        assert m.get(mid).text == "user: I like green tea"
        assert m.search("tea", user_id="u1").results[0].memory.id == mid


def test_async_twin_has_the_same_behaviour(
    db_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    async def scenario() -> None:
        async with AsyncMemory(settings=Settings(db_path=db_path), embedder=embedder) as m:
            added = await m.add(TURNS, user_id="u1")
            results = await asyncio.gather(
                m.search("guinea pig", user_id="u1"), m.search("painting", user_id="u1")
            )
            assert "guinea pig" in results[0].results[0].memory.text
            mid = added.results[0].id
            assert (await m.get(mid)).id == mid
            await m.update(mid, "Caroline adopted two guinea pigs")
            assert len(await m.history(mid)) == 2
            assert (await m.get_all(user_id="u1")).total == 3
            await m.delete(mid)
            assert await m.delete_all(user_id="u1") == 3
            with pytest.raises(NotFoundError):
                await m.get("01HZZZZZZZZZZZZZZZZZZZZZZZ")

    asyncio.run(scenario())


def test_async_and_sync_expose_the_same_methods() -> None:
    public = {n for n in dir(Memory) if not n.startswith("_") and callable(getattr(Memory, n))}
    async_public = {n for n in dir(AsyncMemory) if not n.startswith("_")}
    missing = public - async_public - {"close", "export"}
    assert not missing, f"AsyncMemory lacks {sorted(missing)}"
