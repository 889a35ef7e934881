"""An episode is indexed with the turn before it (its `context`), and stored verbatim.

A reply often answers a question worded like the turn it replies to; the episode's vector
leans towards that turn (`memsvc.write.index_vectors`), while its text stays what was said.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from memsvc import Memory, SearchPlan
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.extractors.base import Candidate
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.model.records import MemoryKind, Scope, StoredMessage
from memsvc.model.settings import Settings
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.graph import GraphChannel
from memsvc.retrievers.plan import ChannelSpec
from memsvc.storage.base import VisibilityQuery
from memsvc.write.index_vectors import candidate_vectors

WHEN = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def _message(i: int, name: str, content: str) -> StoredMessage:
    return StoredMessage(id=f"m{i}", scope=Scope(user_id="u1"), role="user", name=name,
                         content=content, timestamp=WHEN, created_at=WHEN)


def test_each_episode_carries_the_turn_before_it_as_context() -> None:
    messages = [_message(0, "Ann", "Did you go to the pottery class?"),
                _message(1, "Bob", "Yes, last Saturday, with my kids.")]
    first, second = EpisodeExtractor(before=1, after=0).extract(messages)
    assert first.context == ""
    assert second.context == "Ann: Did you go to the pottery class?"
    assert second.text == "Bob: Yes, last Saturday, with my kids."


class _CountingEmbedder:
    """One fixed unit vector per distinct text; counts the texts it is asked to embed."""

    dim = 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += list(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors[row, sum(map(ord, text)) % self.dim] = 1.0
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def test_the_vector_mixes_the_context_in_without_embedding_it_twice() -> None:
    a = Candidate(kind=MemoryKind.EPISODE, text="a", source_message_ids=["m0"])  # ord 97 → 1
    b = Candidate(kind=MemoryKind.EPISODE, text="c", source_message_ids=["m1"],  # 99 → 3
                  context="a")
    embedder = _CountingEmbedder()
    vectors = candidate_vectors(embedder, [a, b], context_weight=0.5)
    assert embedder.seen == ["a", "c"]  # the context is the turn before: embedded once
    np.testing.assert_allclose(vectors[0], [0, 1, 0, 0])
    np.testing.assert_allclose(vectors[1], np.array([0, 0.5, 0, 1.0]) / np.hypot(1.0, 0.5),
                               rtol=1e-6)
    alone = candidate_vectors(_CountingEmbedder(), [b], context_weight=0.0)
    np.testing.assert_allclose(alone[0], [0, 0, 0, 1])


PIANO = "Bob: Yes, every Saturday with my grandfather."
FISHING = "Bob: Yes, with my grandfather, every Sunday morning."


def _replies_ranked(memory: Memory) -> list[str]:
    # Both replies say "yes, with my grandfather"; only the turns they answer tell them apart.
    memory.add([
        {"role": "user", "name": "Ann",
         "content": "Did you take piano lessons when you were little?"},
        {"role": "user", "name": "Bob", "content": PIANO.removeprefix("Bob: ")},
        {"role": "user", "name": "Ann", "content": "Do you still go fishing at the lake?"},
        {"role": "user", "name": "Bob", "content": FISHING.removeprefix("Bob: ")},
    ], user_id="u1")
    stored = {m.text for m in memory.get_all(user_id="u1").items}
    assert {PIANO, FISHING} <= stored  # verbatim
    hits = memory.search("Who taught Bob the piano?", user_id="u1", limit=4,
                         plan=SearchPlan(channels={"vector": ChannelSpec(k=4)}))
    ranked = [h.memory.text for h in hits.results]
    return [t for t in ranked if t in (PIANO, FISHING)]


def test_a_reply_is_found_by_a_question_worded_like_the_turn_it_answers(
    memory: Memory,
) -> None:
    assert _replies_ranked(memory) == [PIANO, FISHING]


def test_weight_zero_indexes_the_turn_alone(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    memory = Memory(settings=Settings(db_path=tmp_path / "m.db", episode_context_weight=0.0),
                    embedder=embedder)
    try:
        assert _replies_ranked(memory) == [FISHING, PIANO]  # the words alone mislead
    finally:
        memory.close()


def test_a_reply_is_linked_in_the_graph_to_what_it_answers(tmp_path: Path) -> None:
    # The reply names neither the concert nor the band; the turn it answers does.
    messages = [_message(0, "Ann", "Who played at the concert?"),
                _message(1, "Bob", "It was Matt Patterson, so talented!"),
                _message(2, "Ann", "I baked bread today.")]
    first, second, _ = EpisodeExtractor(before=1, after=0).extract(messages)
    assert "context_concepts" not in first.metadata
    assert {"play", "concert"} <= set(second.metadata["context_concepts"])
    with Memory(db_path=tmp_path / "m.db") as memory:
        memory.add([{"role": "user", "name": m.name, "content": m.content} for m in messages],
                   user_id="u1", timestamp=WHEN, infer=False)
        query = ChannelQuery("Which concert was that?",
                             VisibilityQuery(scope=Scope(user_id="u1")))
        ids = [h.memory_id for h in GraphChannel(memory.store).search(query, 10)]
        texts = [memory.store.get_many(ids)[i].text for i in ids]
    # both name the concert (the reply through its context), ahead of a mere neighbour
    assert set(texts[:2]) == {"Ann: Who played at the concert?",
                              "Bob: It was Matt Patterson, so talented!"}
