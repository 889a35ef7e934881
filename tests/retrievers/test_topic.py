"""The topic channel: the vector search on the question without the hubs' names, embedded
with the question in one batch before the channels run, and silent when the question names
no hub."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from memsvc import Memory
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.graph import EntityGraph, GraphChannel
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import ChannelSpec, SearchPlan
from memsvc.retrievers.topic import TopicChannel
from memsvc.storage.base import Hit, VisibilityQuery, WriteBatch
from memsvc.storage.sqlite import SQLiteStore

NOW = datetime(2024, 3, 1, tzinfo=UTC)
U1 = Scope(user_id="u1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "t.db", embedding_dim=4)
    for i in range(30):  # Caroline speaks every turn: a hub; Rex is named once
        vector = np.zeros(4, dtype=np.float32)
        vector[i % 4] = 1.0
        text = f"Caroline said thing {i}" + (" about Rex" if i == 0 else "")
        record = MemoryRecord(
            id=new_id(), scope=U1, kind=MemoryKind.EPISODE, text=text,
            entities=["Caroline", "Rex"] if i == 0 else ["Caroline"], created_at=NOW,
            updated_at=NOW, content_hash=content_hash("episode", text))
        s.apply(WriteBatch(inserts=[(record, vector)]))
    yield s
    s.close()


def query(text: str) -> ChannelQuery:
    return ChannelQuery(text, VisibilityQuery(scope=U1))


def test_without_hubs_drops_hub_names_and_their_possessive_only(store: SQLiteStore) -> None:
    graph = GraphChannel(store).graph_for(query("x"))
    assert isinstance(graph, EntityGraph) and "caroline" in graph.hubs
    assert graph.without_hubs("What do Caroline's kids like?") == "What do kids like?"
    assert graph.without_hubs("Did caroline walk Rex?") == "Did walk Rex?"
    assert graph.without_hubs("Where did Rex go?") == "Where did Rex go?"


def test_topic_is_none_without_a_hub_or_without_anything_else(store: SQLiteStore) -> None:
    topic = TopicChannel(store, GraphChannel(store))
    assert topic.topic_of(query("What does Caroline like?")) == "What does like?"
    assert topic.topic_of(query("What does Rex like?")) is None
    assert topic.topic_of(query("Caroline")) is None
    assert topic.search(query("What does Caroline like?"), 5) == []  # no topic vector given


def test_the_topic_is_embedded_once_before_the_channels_and_searched(
    store: SQLiteStore,
) -> None:
    embedded: list[str] = []

    def embed(text: str) -> np.ndarray:
        embedded.append(text)
        return np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32)

    topic = TopicChannel(store, GraphChannel(store))
    retriever = HybridRetriever({"topic": topic}, embed)
    plan = SearchPlan(channels={"topic": ChannelSpec(weight=1.0, k=3)}, limit=3)
    try:
        found = retriever.retrieve(query("What did Caroline say?"), plan)
        assert embedded == ["What did say?"]
        assert len(found.hits) == 3 and "embed" in found.timing_ms
        assert retriever.retrieve(query("What did Rex say?"), plan).hits == []
        assert embedded == ["What did say?"]  # no hub named: nothing more embedded
        silent = SearchPlan(channels={"topic": ChannelSpec(weight=0.0, k=3)}, limit=3)
        retriever.retrieve(query("What did Caroline say?"), silent)
        assert embedded == ["What did say?"]  # weight 0: not worth an embedding
    finally:
        retriever.close()


def test_memory_search_fuses_the_topic_channel(memory: Memory) -> None:
    turns = [{"role": "user", "name": "Ann" if i % 2 else "Bob",
              "content": f"Turn {i} about nothing much, Ann."} for i in range(48)]
    turns.append({"role": "user", "name": "Ann", "content": "I took up running to de-stress."})
    memory.add(turns, user_id="u1", timestamp=NOW, infer=False)
    response = memory.search("What does Ann do to relax?", user_id="u1", limit=5)
    assert response.plan["channels"]["topic"]["weight"] > 0
    assert any("topic" in hit.channel_ranks for hit in response.results)


class FixedVector:
    name = "vector"
    needs_embedding = True

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        return [Hit("whole-question-hit", 0.9)]


def test_when_the_topic_fires_the_question_vector_keeps_its_share_of_weight(
    store: SQLiteStore,
) -> None:
    topic = TopicChannel(store, GraphChannel(store))
    retriever = HybridRetriever({"vector": FixedVector(), "topic": topic},
                                lambda text: np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32))
    plan = SearchPlan(channels={"vector": ChannelSpec(weight=1.0, k=3),
                                "topic": ChannelSpec(weight=0.7, k=3)}, limit=3, rrf_k=10)
    try:
        fired = retriever.retrieve(query("What did Caroline say?"), plan).hits
        silent = retriever.retrieve(query("What did Rex say?"), plan).hits
    finally:
        retriever.close()
    share = topic.question_share
    assert 0 < share < 1
    whole = next(h for h in fired if h.memory_id == "whole-question-hit")
    assert whole.score == pytest.approx(share * 1.0 / 11)
    assert [h.memory_id for h in silent] == ["whole-question-hit"]
    assert silent[0].score == pytest.approx(1.0 / 11)
    assert any(h.score == pytest.approx(0.7 / 11) for h in fired)  # the topic's first hit


def test_the_question_and_its_topic_are_embedded_in_one_batch(store: SQLiteStore) -> None:
    batches: list[list[str]] = []

    def embed_one(text: str) -> np.ndarray:
        raise AssertionError("a batch embedder was given")

    def embed_many(texts: Sequence[str]) -> list[np.ndarray]:
        batches.append(list(texts))
        return [np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32) for _ in texts]

    retriever = HybridRetriever({"vector": FixedVector(), "topic": TopicChannel(
        store, GraphChannel(store))}, embed_one, embed_queries=embed_many)
    plan = SearchPlan(channels={"vector": ChannelSpec(k=3), "topic": ChannelSpec(k=3)}, limit=3)
    try:
        retriever.retrieve(query("What did Caroline say?"), plan)
        retriever.retrieve(query("What did Rex say?"), plan)
    finally:
        retriever.close()
    assert batches == [["What did Caroline say?", "What did say?"], ["What did Rex say?"]]


def test_one_search_checks_the_graph_version_once_and_the_next_sees_a_write(
    store: SQLiteStore,
) -> None:
    asked: list[Scope] = []
    real = store.graph_version

    def counting(scope: Scope) -> int:
        asked.append(scope)
        return real(scope)

    store.graph_version = counting
    graph = GraphChannel(store)
    retriever = HybridRetriever({"graph": graph, "topic": TopicChannel(store, graph)},
                                lambda text: np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32))
    plan = SearchPlan(channels={"graph": ChannelSpec(weight=1.0, k=3),
                                "topic": ChannelSpec(weight=0.7, k=3)}, limit=3)
    try:
        retriever.retrieve(query("What did Caroline say about Rex?"), plan)
        assert len(asked) == 1  # the topic and graph channels shared the check
        text = "Caroline said that Zelda is her cousin"
        zelda = MemoryRecord(
            id=new_id(), scope=U1, kind=MemoryKind.EPISODE, text=text,
            entities=["Caroline", "Zelda"], created_at=NOW, updated_at=NOW,
            content_hash=content_hash("episode", text))
        store.apply(WriteBatch(inserts=[(zelda, np.ones(4, dtype=np.float32))]))
        found = retriever.retrieve(query("Who is Zelda?"), plan).hits
        assert len(asked) == 2
        assert zelda.id in {h.memory_id for h in found}
    finally:
        retriever.close()
