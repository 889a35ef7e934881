"""Context packing: best hits first, under the budget, rendered in a stable order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memsvc import Memory
from memsvc.model.errors import InvalidInputError
from memsvc.model.records import MemoryKind, MemoryRecord, Scope, ScoredMemory
from memsvc.retrievers.context import estimate_tokens, pack_context

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _hit(i: int, text: str, score: float, day: int) -> ScoredMemory:
    when = T0 + timedelta(days=day)
    record = MemoryRecord(
        id=f"01M{i:023d}", scope=Scope(user_id="u"), kind=MemoryKind.FACT, text=text,
        valid_from=when, created_at=when, updated_at=when, content_hash=str(i),
    )
    return ScoredMemory(memory=record, score=score)


def test_best_first_selection_rendered_oldest_first() -> None:
    hits = [_hit(1, "Newest but best", 0.9, 30), _hit(2, "Oldest and second", 0.8, 1),
            _hit(3, "Middle and third", 0.7, 10)]
    block = pack_context(hits, max_tokens=200)
    lines = block.text.splitlines()
    assert lines[1:] == ["<memories>",
                         "- [2024-01-02] (fact, episode) Oldest and second",
                         "- [2024-01-11] (fact, episode) Middle and third",
                         "- [2024-01-31] (fact, episode) Newest but best",
                         "</memories>"]
    assert block.dropped == 0 and block.considered == 3


def test_budget_is_never_exceeded_and_the_best_win() -> None:
    hits = [_hit(i, f"memory {i} " + "word " * (5 + 7 * (i % 3)), 1.0 - i / 100, i)
            for i in range(40)]
    for budget in (16, 40, 100, 333, 1000):
        block = pack_context(hits, max_tokens=budget)
        assert estimate_tokens(block.text) <= block.tokens <= budget
        if block.memory_ids:
            assert block.memory_ids[0] in [h.memory.id for h in hits]
        assert block.dropped == 40 - len(block.memory_ids)
    small = pack_context(hits, max_tokens=60)  # header, block tags and one line
    assert "memory 0 " in small.text  # the top hit fits and is kept


def test_a_long_memory_is_skipped_and_shorter_later_ones_still_fit() -> None:
    hits = [_hit(1, "huge " * 400, 0.9, 1), _hit(2, "short and useful", 0.5, 2)]
    block = pack_context(hits, max_tokens=60)
    assert block.memory_ids == [hits[1].memory.id]
    assert block.dropped == 1


def test_same_set_gives_byte_identical_text_whatever_the_order() -> None:
    hits = [_hit(i, f"fact {i}", 1.0 - i / 10, 9 - i) for i in range(6)]
    one = pack_context(hits, max_tokens=500).text
    two = pack_context(list(reversed(hits)), max_tokens=500).text
    assert one == two


def test_nothing_fits_gives_an_empty_block() -> None:
    block = pack_context([_hit(1, "x " * 200, 1.0, 1)], max_tokens=20)
    assert block.text == "" and block.memory_ids == [] and block.tokens == 0


def test_memory_context_validates_budget(memory: Memory) -> None:
    memory.add("I keep my passport in the blue drawer", user_id="c")
    block = memory.context("where is my passport?", user_id="c", max_tokens=64)
    assert "blue drawer" in block.text and block.tokens <= 64
    for bad in (0, 15, 100_001, 12.5, True, "100"):
        with pytest.raises(InvalidInputError) as info:
            memory.context("passport", user_id="c", max_tokens=bad)  # type: ignore[arg-type]
        assert info.value.field == "max_tokens"
