"""A search fetches and checks only the records it serves (placing its hits on unchecked
`SourceKey`s first), and returns exactly what checking every fetched record would."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.records import MemoryKind, ScoredMemory
from memsvc.model.settings import Settings
from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import WriteBatch

QUESTIONS = ["Where does Alice live?", "What pets does Bob have?", "What does Alice cook?"]
SESSIONS = [
    "I moved to Oslo last spring. My brother Bob has two cats and a dog.",
    "Alice cooks pasta every Friday; Bob prefers sushi.",
    "We went hiking in Norway. Alice lives near the fjord now.",
    "Bob adopted a parrot. Alice started a pottery class.",
    "Alice's favourite dish is lasagna. Bob works as a nurse.",
]


def _flat(results: list[ScoredMemory]) -> list[tuple[str, float, list[str], str]]:
    return [(h.memory.id, h.score, [r.memory.id for r in h.related],
             h.memory.model_dump_json(exclude={"access_count", "last_accessed_at"}))
            for h in results]


def _fill(memory: Memory) -> None:
    for i, text in enumerate(SESSIONS):
        memory.add(text, user_id="alice", session_id=f"s{i}", timestamp=f"2024-0{i + 1}-01",
                   infer=True)


def _hits(memory: Memory, question: str) -> list:  # type: ignore[type-arg]
    visibility = memory._visibility("alice", None, None, None, None, None)
    plan = memory.default_plan.with_limit(50)
    return memory.retriever.retrieve(ChannelQuery(question, visibility), plan).hits


@pytest.mark.parametrize("group", [True, False])
def test_results_equal_checking_every_fetched_record(memory: Memory, group: bool) -> None:
    _fill(memory)
    fact = next(m for m in memory.get_all(user_id="alice").items if m.kind is MemoryKind.FACT)
    memory.store.apply(WriteBatch(updates=[(fact.model_copy(
        update={"valid_to": datetime(2024, 3, 1, tzinfo=UTC)}), None)]))
    for question in QUESTIONS:
        hits = _hits(memory, question)
        for limit in (1, 3, 5):
            for at in (None, datetime(2025, 1, 1, tzinfo=UTC)):
                planned = memory._select(hits, limit, group=group, current_at=at)
                checked = memory._select_checked(hits, limit, group=group, current_at=at)
                assert _flat(planned) == _flat(checked)


def test_only_served_records_are_fetched(memory: Memory, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    _fill(memory)
    fetched: list[str] = []
    get_many = memory.store.get_many

    def spy(ids: list[str]):  # type: ignore[no-untyped-def]
        fetched.extend(ids)
        return get_many(ids)

    monkeypatch.setattr(memory.store, "get_many", spy)
    response = memory.search("Where does Alice live?", user_id="alice", limit=3)
    served = [m.memory.id for h in response.results for m in (h, *h.related)]
    assert len(response.results) == 3
    assert sorted(fetched) == sorted(served)


def test_a_tampered_record_among_those_served_falls_back_to_checking_all(
    db_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        _fill(m)
        before = m.search("Where does Alice live?", user_id="alice", limit=3)
    victim = before.results[0].memory.id
    conn = sqlite3.connect(str(db_path))
    conn.execute("UPDATE memories SET text = 'Alice lives on the moon' WHERE id = ?", (victim,))
    conn.commit()
    conn.close()
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        hits = _hits(m, "Where does Alice live?")
        planned = m._select(hits, 3, group=True, current_at=None)
        assert _flat(planned) == _flat(m._select_checked(hits, 3, group=True, current_at=None))
        assert victim not in [r.memory.id for h in planned for r in (h, *h.related)]
        assert len(planned) == 3
