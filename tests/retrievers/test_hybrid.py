"""The hybrid retriever: one embedding per query, made before the channels run, and fusion."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memsvc.model.records import Scope
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import ChannelSpec, SearchPlan
from memsvc.storage.base import Hit, VisibilityQuery


class RecordingChannel:
    def __init__(self, name: str, hits: list[Hit], *, needs_embedding: bool = False) -> None:
        self.name = name
        self.needs_embedding = needs_embedding
        self.hits = hits
        self.seen: list[ChannelQuery] = []
        self.threads: list[str] = []

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        self.seen.append(query)
        self.threads.append(threading.current_thread().name)
        return self.hits[:k]


def plan(*names: str) -> SearchPlan:
    return SearchPlan(channels={n: ChannelSpec(weight=1.0, k=10) for n in names}, limit=5)


def query() -> ChannelQuery:
    return ChannelQuery("which pet?", VisibilityQuery(scope=Scope(user_id="u1")))


def test_the_query_is_embedded_once_and_handed_to_the_channels_that_need_it() -> None:
    calls: list[str] = []

    def embed(text: str) -> np.ndarray:
        calls.append(text)
        return np.ones(4, dtype=np.float32)

    vector = RecordingChannel("vector", [Hit("a", 0.9), Hit("b", 0.8)], needs_embedding=True)
    bm25 = RecordingChannel("bm25", [Hit("b", 3.0), Hit("c", 2.0)])
    retriever = HybridRetriever({"vector": vector, "bm25": bm25}, embed)
    try:
        result = retriever.retrieve(query(), plan("bm25", "vector"))
    finally:
        retriever.close()
    assert calls == ["which pet?"]
    assert vector.seen[0].embedding is not None and np.all(vector.seen[0].embedding == 1.0)
    assert vector.threads == [threading.current_thread().name]  # the slow one: no thread hop
    assert bm25.threads[0] != threading.current_thread().name
    assert result.hits[0].memory_id == "b"  # found by both channels
    assert {"embed", "vector", "bm25"} <= set(result.timing_ms)


def test_a_plan_without_vector_channels_never_embeds() -> None:
    def embed(text: str) -> np.ndarray:
        raise AssertionError("no channel of this plan needs a vector")

    bm25 = RecordingChannel("bm25", [Hit("c", 2.0)])
    retriever = HybridRetriever({"bm25": bm25}, embed)
    try:
        assert [h.memory_id for h in retriever.retrieve(query(), plan("bm25")).hits] == ["c"]
    finally:
        retriever.close()


def test_a_failing_channel_fails_the_search_and_unknown_channels_are_refused() -> None:
    class Broken(RecordingChannel):
        def search(self, query: ChannelQuery, k: int) -> list[Hit]:
            raise RuntimeError("index unavailable")

    retriever = HybridRetriever(
        {"vector": RecordingChannel("vector", [], needs_embedding=True),
         "bm25": Broken("bm25", [])},
        lambda text: np.ones(4, dtype=np.float32),
    )
    try:
        with pytest.raises(RuntimeError, match="index unavailable"):
            retriever.retrieve(query(), plan("vector", "bm25"))
        with pytest.raises(ValueError, match="unknown channels"):
            retriever.retrieve(query(), plan("vector", "graph"))
    finally:
        retriever.close()


def test_channels_that_read_no_vector_search_while_the_query_is_embedded() -> None:
    """The embedding waits for BM25 to have started: were the channels to run only after the
    embedding, as they once did, the search would wait out the timeout and fail."""
    bm25_started = threading.Event()

    class SignallingBm25(RecordingChannel):
        def search(self, query: ChannelQuery, k: int) -> list[Hit]:
            bm25_started.set()
            return super().search(query, k)

    def embed(text: str) -> np.ndarray:
        assert bm25_started.wait(timeout=5), "BM25 did not run during the embedding"
        return np.ones(4, dtype=np.float32)

    vector = RecordingChannel("vector", [Hit("a", 0.9)], needs_embedding=True)
    bm25 = SignallingBm25("bm25", [Hit("c", 2.0)])
    retriever = HybridRetriever({"vector": vector, "bm25": bm25}, embed)
    try:
        result = retriever.retrieve(query(), plan("vector", "bm25"))
    finally:
        retriever.close()
    assert bm25.seen[0].embedding is None  # it never waited for the vector
    assert {h.memory_id for h in result.hits} == {"a", "c"}
