"""A fact whose validity has ended is no longer offered as current (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc import Memory
from memsvc.model.records import MemoryKind
from memsvc.storage.base import WriteBatch

ENDED = datetime(2024, 6, 1, tzinfo=UTC)


def _end(memory: Memory, memory_id: str) -> None:
    """Close a memory's validity as an extractor's "until June" would, status unchanged."""
    record = memory.get(memory_id)
    memory.store.apply(WriteBatch(updates=[(record.model_copy(update={"valid_to": ENDED}),
                                            None)]))


def _kinds(memory: Memory, **kw: object) -> list[str]:
    response = memory.search("Which city does the user live in?", user_id="u", group=False,
                             **kw)  # type: ignore[arg-type]
    return sorted(h.memory.kind.value for h in response.results)


def test_an_expired_fact_is_not_current_but_stays_findable(memory: Memory) -> None:
    added = memory.add("I live in Boston.", user_id="u", timestamp="2024-01-01", infer=True)
    kinds = {memory.get(c.id).kind: c.id for c in added.results}
    fact, episode = kinds[MemoryKind.FACT], kinds[MemoryKind.EPISODE]
    assert _kinds(memory) == ["episode", "fact"]
    _end(memory, fact)
    _end(memory, episode)  # an episode is about the past: its end does not retire it
    assert _kinds(memory) == ["episode"]
    context = memory.context("Which city does the user live in?", user_id="u")
    assert fact not in context.memory_ids
    # while it held, it was the answer; a question dated then sees it as current too
    assert _kinds(memory, as_of="2024-03-01") == ["episode", "fact"]
    assert _kinds(memory, now="2024-03-01") == ["episode", "fact"]
    assert memory.get(fact).valid_to == ENDED
    assert [e.memory_id for e in memory.history(fact)] and memory.history(fact)[0].memory_id == fact


def test_an_open_or_future_end_stays_current(memory: Memory) -> None:
    added = memory.add("I live in Boston.", user_id="u", timestamp="2024-01-01", infer=True)
    fact = next(c.id for c in added.results if memory.get(c.id).kind is MemoryKind.FACT)
    record = memory.get(fact)
    future = datetime(2999, 1, 1, tzinfo=UTC)
    memory.store.apply(WriteBatch(updates=[(record.model_copy(update={"valid_to": future}),
                                            None)]))
    assert _kinds(memory) == ["episode", "fact"]
