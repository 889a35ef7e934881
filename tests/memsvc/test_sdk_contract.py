"""One suite, two SDKs: every test runs against the embedded `Memory` and against
`MemoryClient` talking to a live server on 127.0.0.1 over the same kind of store.

Same calls, same return models, same exception classes: switching SDKs is one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc import Memory
from memsvc.consolidate import ConsolidationReport
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.errors import (
    EmptyTextError,
    InvalidFilterError,
    InvalidInputError,
    InvalidTimestampError,
    NotFoundError,
    ScopeRequiredError,
    TextTooLargeError,
)
from memsvc.model.records import (
    AddResult,
    HistoryEntry,
    MemoryRecord,
    Page,
    SearchResponse,
    StoreStats,
)
from memsvc.model.settings import Settings
from memsvc.retrievers.context import ContextBlock
from memsvc.sdk.client import MemoryClient
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer


@pytest.fixture(params=["embedded", "remote"])
def sdk(request: pytest.FixtureRequest, tmp_path: Path,
        embedder: SentenceTransformerEmbedder) -> Iterator[Any]:
    memory = Memory(settings=Settings(db_path=tmp_path / "contract.db"), embedder=embedder)
    if request.param == "embedded":
        yield memory
    else:
        with BackgroundServer(create_app(memory)) as server, \
                MemoryClient(server.url) as client:
            yield client
    memory.close()


def test_add_get_and_provenance(sdk: Any) -> None:
    result = sdk.add([{"role": "user", "content": "I switched from Vim to Helix last spring",
                       "timestamp": "2024-04-02T09:00:00Z"}], user_id="dev", metadata={"src": "t"})
    assert isinstance(result, AddResult)
    assert len(result.message_ids) == 1
    record = sdk.get(result.results[0].id)
    assert isinstance(record, MemoryRecord)
    assert record.scope.user_id == "dev"
    assert record.provenance.source_message_ids == result.message_ids
    assert record.metadata["src"] == "t"
    assert record.valid_from is not None and record.valid_from.year == 2024


def test_search_and_context(sdk: Any) -> None:
    sdk.add("My dentist appointment is on Friday at 3pm", user_id="u")
    sdk.add("I prefer window seats on long flights", user_id="u")
    sdk.add("Someone else's secret", user_id="other")
    response = sdk.search("when is the dentist?", user_id="u", limit=5)
    assert isinstance(response, SearchResponse)
    assert "dentist" in response.results[0].memory.text
    assert all(hit.memory.scope.user_id == "u" for hit in response.results)
    assert response.results[0].channel_ranks
    block = sdk.context("flight seat preference", user_id="u", max_tokens=100)
    assert isinstance(block, ContextBlock)
    assert "window seats" in block.text and block.tokens <= 100
    assert "secret" not in block.text


def test_paging_update_history_delete(sdk: Any) -> None:
    ids = [sdk.add(f"note number {i} about gardening", user_id="p").results[0].id
           for i in range(5)]
    first = sdk.get_all(user_id="p", kinds=["episode"], limit=2)
    assert isinstance(first, Page) and first.total == 5 and len(first.items) == 2
    second = sdk.get_all(user_id="p", kinds=["episode"], limit=2, cursor=first.next_cursor)
    assert [m.id for m in first.items + second.items] == sorted(ids)[:4]

    updated = sdk.update(ids[0], "note number 0 about roses", importance=0.9)
    assert updated.version == 2 and updated.importance == 0.9
    history = sdk.history(ids[0])
    assert all(isinstance(h, HistoryEntry) for h in history)
    assert [h.event.value for h in history] == ["ADD", "UPDATE"]

    assert sdk.delete(ids[1]) is None
    assert sdk.get(ids[1]).status.value == "deleted"
    sdk.delete(ids[2], hard=True)
    with pytest.raises(NotFoundError):
        sdk.get(ids[2])
    assert sdk.delete_all(user_id="p") >= 3
    assert sdk.get_all(user_id="p").total == 0
    assert sdk.messages(user_id="p")  # soft delete keeps the raw messages
    sdk.delete_all(user_id="p", hard=True)
    assert sdk.messages(user_id="p") == []


def test_stats_and_consolidate(sdk: Any) -> None:
    sdk.add("I drink oat milk lattes", user_id="s", infer=True)
    stats = sdk.stats()
    assert isinstance(stats, StoreStats) and stats.memories >= 1 and stats.messages == 1
    report = sdk.consolidate(user_id="s", steps=["merge", "decay"])
    assert isinstance(report, ConsolidationReport)
    assert report.steps == ["merge", "decay"]


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda s: s.add("   ", user_id="e"), EmptyTextError, "messages[0].content"),
        (lambda s: s.add("x" * 40_000, user_id="e"), TextTooLargeError, "messages[0].content"),
        (lambda s: s.add("hello"), ScopeRequiredError, "user_id"),
        (lambda s: s.add("hello", user_id="e", timestamp="yesterday-ish"),
         InvalidTimestampError, "timestamp"),
        (lambda s: s.search("q", user_id="e", filters={"importance": {"gt": "high"}}),
         InvalidFilterError, "filters.importance"),
        (lambda s: s.search("q", user_id="e", filters={"OR": []}), InvalidFilterError,
         "filters.OR"),
        (lambda s: s.get_all(user_id="e", filters={"kind": {"regex": "f.*"}}),
         InvalidFilterError, "filters.kind"),
        (lambda s: s.get("01NOSUCHMEMORY00000000000"), NotFoundError, "id"),
        (lambda s: s.history("01NOSUCHMEMORY00000000000"), NotFoundError, "id"),
        (lambda s: s.update("01NOSUCHMEMORY00000000000", "x"), NotFoundError, "id"),
        (lambda s: s.consolidate(steps=["dream"]), InvalidInputError, "steps"),
    ],
)
def test_same_typed_errors_and_nothing_written(sdk: Any, call: Any, error: type,
                                               field: str) -> None:
    sdk.add("a memory that must stay as it is", user_id="e")
    before = sdk.stats()
    with pytest.raises(error) as info:
        call(sdk)
    assert info.value.field == field
    assert info.value.message
    after = sdk.stats()
    assert (after.memories, after.messages, after.history) == (
        before.memories, before.messages, before.history)


def test_limit_out_of_range_is_invalid_input(sdk: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        sdk.search("q", user_id="e", limit=0)
    assert info.value.field == "limit"
