"""One suite, four SDKs, two backends: every test runs against the embedded `Memory`, the
embedded `AsyncMemory`, and `MemoryClient` / `AsyncMemoryClient` talking to a live uvicorn
server on 127.0.0.1 over the same kind of store (started once per backend: SQLite files, then
PostgreSQL schemas).

Same calls, same return models, same exception classes: switching SDKs is one line. The async
two are driven through `Blocking`, which runs each awaited call on one event loop, so the
test bodies are written once. Each test works in a scope of its own (`user`), because the
stores live as long as the module.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc import AsyncMemory, Memory
from memsvc.consolidate import ConsolidationReport
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.chat import ChatEvent, ChatRequest, ChatResponse, ChatUnavailableError
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
    MemoryKind,
    MemoryRecord,
    Page,
    SearchResponse,
    StoreStats,
)
from memsvc.model.settings import Settings
from memsvc.retrievers.context import ContextBlock
from memsvc.retrievers.plan import ChannelSpec, SearchPlan
from memsvc.sdk.client import AsyncMemoryClient, MemoryClient
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer

KINDS = ("embedded", "embedded-async", "remote", "remote-async")


class EchoEngine:
    """A chat engine without a model: it answers with the memories it retrieved. The contract
    is the SDK's plumbing (arguments, streaming, errors); tests/serving/test_chat.py covers
    the LLM side."""

    def chat(self, memory: Memory, request: ChatRequest) -> ChatResponse:
        if request.message == "please fail":
            raise ChatUnavailableError("the model is down; your message was stored")
        hits = memory.search(request.message, user_id=request.user_id, limit=request.limit)
        return ChatResponse(answer=" | ".join(h.memory.text for h in hits.results) or "-",
                            session_id=request.session_id or "new-session",
                            memory_ids=[h.memory.id for h in hits.results])

    def stream(self, memory: Memory, request: ChatRequest) -> Iterator[ChatEvent]:
        response = self.chat(memory, request)  # a failure raises before the first event
        words = [ChatEvent(type="delta", text=w + " ") for w in response.answer.split()]
        return iter([*words, ChatEvent(type="done", response=response)])

    def after_consolidate(self, memory: Memory, report: ConsolidationReport) -> None:
        pass


class Blocking:
    """An async SDK object driven from synchronous tests: each awaited call runs on `loop`;
    an async iterator result comes back as an iterator pulled on the same loop."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        assert inspect.iscoroutinefunction(attr), f"{name} is not awaitable"

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self.loop.run_until_complete(attr(*args, **kwargs))
            return self._pull(result) if isinstance(result, AsyncIterator) else result

        return call

    def _pull(self, items: AsyncIterator[Any]) -> Iterator[Any]:
        while True:
            try:
                yield self.loop.run_until_complete(items.__anext__())
            except StopAsyncIteration:
                return


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backends(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             embedder: SentenceTransformerEmbedder) -> Iterator[dict[str, Any]]:
    folder = Path(tmp_path_factory.mktemp("contract"))
    engine = EchoEngine()

    def settings(name: str) -> Settings:
        if request.param == "postgres":
            return Settings(db_path=request.getfixturevalue("pg_schemas")())
        return Settings(db_path=folder / f"{name}.db")

    memory = Memory(settings=settings("embedded"), embedder=embedder, chat_engine=engine)
    async_memory = AsyncMemory(settings=settings("async"), embedder=embedder,
                               chat_engine=engine)
    served = Memory(settings=settings("served"), embedder=embedder)
    loop = asyncio.new_event_loop()
    with BackgroundServer(create_app(served, chat=engine)) as server:  # type: ignore[arg-type]
        client = MemoryClient(server.url)
        async_client = AsyncMemoryClient(server.url)
        yield {"embedded": memory, "embedded-async": Blocking(async_memory, loop),
               "remote": client, "remote-async": Blocking(async_client, loop)}
        client.close()
        loop.run_until_complete(async_client.close())
    loop.run_until_complete(async_memory.close())
    loop.close()
    memory.close()
    served.close()


@pytest.fixture(params=KINDS)
def sdk(request: pytest.FixtureRequest, backends: dict[str, Any]) -> Any:
    return backends[request.param]


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_add_get_and_provenance(sdk: Any, user: str) -> None:
    result = sdk.add([{"role": "user", "content": "I switched from Vim to Helix last spring",
                       "timestamp": "2024-04-02T09:00:00Z"}], user_id=user, metadata={"src": "t"})
    assert isinstance(result, AddResult)
    assert len(result.message_ids) == 1
    record = sdk.get(result.results[0].id)
    assert isinstance(record, MemoryRecord)
    assert record.scope.user_id == user
    assert record.provenance.source_message_ids == result.message_ids
    assert record.metadata["src"] == "t"
    assert record.valid_from is not None and record.valid_from.year == 2024


def test_search_and_context(sdk: Any, user: str) -> None:
    sdk.add("My dentist appointment is on Friday at 3pm", user_id=user)
    sdk.add("I prefer window seats on long flights", user_id=user)
    sdk.add("Someone else's secret", user_id=f"{user}-other")
    response = sdk.search("when is the dentist?", user_id=user, limit=5)
    assert isinstance(response, SearchResponse)
    assert "dentist" in response.results[0].memory.text
    assert all(hit.memory.scope.user_id == user for hit in response.results)
    assert response.results[0].channel_ranks
    block = sdk.context("flight seat preference", user_id=user, max_tokens=100)
    assert isinstance(block, ContextBlock)
    assert "window seats" in block.text and block.tokens <= 100
    assert "secret" not in block.text


def test_search_plans_by_name_and_by_value(sdk: Any, user: str) -> None:
    sdk.add("The spare key is under the blue flowerpot", user_id=user)
    named = sdk.search("spare key", user_id=user, plan="fast")
    assert set(named.plan["channels"]) == {"vector", "bm25"}
    only_bm25 = SearchPlan(channels={"bm25": ChannelSpec(weight=1.0, k=5)}, rrf_k=3)
    valued = sdk.search("spare key", user_id=user, plan=only_bm25, limit=3,
                        now="2024-06-01T00:00:00Z", include_archived=True)
    assert valued.plan == {"channels": {"bm25": {"weight": 1.0, "k": 5}}, "limit": 3,
                           "rrf_k": 3}
    assert set(valued.results[0].channel_ranks) == {"bm25"}
    block = sdk.context("spare key", user_id=user, plan=only_bm25, max_tokens=64)
    assert "flowerpot" in block.text


def test_paging_update_history_delete(sdk: Any, user: str) -> None:
    ids = [sdk.add(f"note number {i} about gardening", user_id=user).results[0].id
           for i in range(5)]
    first = sdk.get_all(user_id=user, kinds=["episode"], limit=2)
    assert isinstance(first, Page) and first.total == 5 and len(first.items) == 2
    second = sdk.get_all(user_id=user, kinds=["episode"], limit=2, cursor=first.next_cursor)
    assert [m.id for m in first.items + second.items] == sorted(ids)[:4]

    updated = sdk.update(ids[0], "note number 0 about roses", importance=0.9)
    assert updated.version == 2 and updated.importance == 0.9
    history = sdk.history(ids[0])
    assert all(isinstance(h, HistoryEntry) for h in history)
    assert [h.event.value for h in history] == ["ADD", "UPDATE"]

    assert sdk.delete(ids[1]) is None
    assert sdk.get(ids[1]).status.value == "deleted"
    assert ids[1] in [m.id for m in sdk.get_all(user_id=user, include_inactive=True).items]
    sdk.delete(ids[2], hard=True)
    with pytest.raises(NotFoundError):
        sdk.get(ids[2])
    assert sdk.delete_all(user_id=user) >= 3
    assert sdk.get_all(user_id=user).total == 0
    assert sdk.messages(user_id=user)  # soft delete keeps the raw messages
    sdk.delete_all(user_id=user, hard=True)
    assert sdk.messages(user_id=user) == []


def test_infer_extracts_from_messages_stored_earlier(sdk: Any, user: str) -> None:
    added = sdk.add("I drink oat milk lattes every morning", user_id=user)
    assert {c.kind for c in added.results} == {MemoryKind.EPISODE}
    inferred = sdk.infer(added.message_ids, user_id=user)
    assert isinstance(inferred, AddResult) and inferred.message_ids == added.message_ids
    assert any(c.kind is not MemoryKind.EPISODE and "lattes" in c.text
               for c in inferred.results)
    assert sdk.get_all(user_id=user).total == 1 + len(inferred.results)


def test_stats_and_consolidate(sdk: Any, user: str) -> None:
    before = sdk.stats()
    sdk.add("I drink oat milk lattes", user_id=user, infer=True)
    stats = sdk.stats()
    assert isinstance(stats, StoreStats)
    assert stats.memories >= before.memories + 2 and stats.messages == before.messages + 1
    report = sdk.consolidate(user_id=user, steps=["merge", "decay"], now="2024-06-01")
    assert isinstance(report, ConsolidationReport)
    assert report.steps == ["merge", "decay"]


def test_export_then_import_round_trip(sdk: Any, user: str) -> None:
    ids = [sdk.add(text, user_id=user).results[0].id
           for text in ("I live in Boston", "I like jazz", "I run on Sundays")]
    sdk.delete(ids[1])
    exported = list(sdk.export(user_id=user))
    assert all(isinstance(r, MemoryRecord) for r in exported)
    assert sorted(r.id for r in exported) == sorted(ids)  # deleted ones too, by default
    active = list(sdk.export(user_id=user, include_inactive=False))
    assert sorted(r.id for r in active) == sorted([ids[0], ids[2]])

    assert sdk.import_records(exported) == {"imported": 0, "skipped": 3}
    sdk.delete_all(user_id=user, hard=True)
    assert sdk.import_records(r.model_dump(mode="json") for r in exported) == {
        "imported": 3, "skipped": 0}
    assert sdk.get(ids[0]).text == "user: I live in Boston"
    found = sdk.search("jazz", user_id=user, include_archived=True).results
    assert ids[1] not in [h.memory.id for h in found]  # imported as it was: deleted
    assert sdk.search("Sundays", user_id=user).results[0].memory.id == ids[2]


def test_reset_erases_the_whole_store(sdk: Any, user: str) -> None:
    sdk.add("This will not survive a reset", user_id=user)
    sdk.add("Nor will this", user_id=f"{user}-other")
    assert sdk.reset() is None
    stats = sdk.stats()
    assert (stats.memories, stats.messages) == (0, 0)
    assert list(sdk.export()) == []


def test_chat_answers_and_streams(sdk: Any, user: str) -> None:
    sdk.add("My cat is called Miso", user_id=user)
    answer = sdk.chat("what is my cat called?", user_id=user, limit=3)
    assert isinstance(answer, ChatResponse)
    assert "Miso" in answer.answer and answer.memory_ids
    events = list(sdk.chat("what is my cat called?", user_id=user, limit=3, stream=True))
    assert all(isinstance(e, ChatEvent) for e in events)
    assert [e.type for e in events][-1] == "done" and events[-1].response is not None
    assert "".join(e.text or "" for e in events[:-1]).strip() == events[-1].response.answer
    with pytest.raises(ChatUnavailableError):
        sdk.chat("please fail", user_id=user)
    with pytest.raises(ChatUnavailableError):
        sdk.chat("please fail", user_id=user, stream=True)


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
        (lambda s: s.search("q", user_id="e", plan="fastest"), InvalidInputError, "plan"),
        (lambda s: s.search("q", user_id="e", plan=SearchPlan(channels={"psychic":
                                                                         ChannelSpec()})),
         InvalidInputError, "plan"),
        (lambda s: s.context("q", user_id="e", max_tokens=5), InvalidInputError, "max_tokens"),
        (lambda s: s.get_all(user_id="e", filters={"kind": {"regex": "f.*"}}),
         InvalidFilterError, "filters.kind"),
        (lambda s: s.get("01NOSUCHMEMORY00000000000"), NotFoundError, "id"),
        (lambda s: s.history("01NOSUCHMEMORY00000000000"), NotFoundError, "id"),
        (lambda s: s.update("01NOSUCHMEMORY00000000000", "x"), NotFoundError, "id"),
        (lambda s: s.delete("01NOSUCHMEMORY00000000000"), NotFoundError, "id"),
        (lambda s: s.delete_all(), ScopeRequiredError, "user_id"),
        (lambda s: s.messages(user_id="e", limit=0), InvalidInputError, "limit"),
        (lambda s: s.consolidate(steps=["dream"]), InvalidInputError, "steps"),
        (lambda s: s.infer(["01NOSUCHMESSAGE0000000000"]), ScopeRequiredError, "user_id"),
        (lambda s: s.chat("hi"), ScopeRequiredError, "user_id"),
        (lambda s: s.chat("hi", user_id="e", max_tokens=0), InvalidInputError, "max_tokens"),
        (lambda s: s.import_records([{"id": "x"}]), InvalidInputError, "[0]"),
        (lambda s: s.import_records([s.get_all(user_id="e").items[0].model_dump(mode="json")
                                     | {"id": "01NEWIMPORTEDMEMORY000000"},
                                     {"text": "no scope"}]), InvalidInputError, "[1]"),
    ],
)
def test_same_typed_errors_and_nothing_written(sdk: Any, call: Any, error: type,
                                               field: str) -> None:
    sdk.add("a memory that must stay as it is", user_id="e")
    before = sdk.stats()
    with pytest.raises(error) as info:
        call(sdk)
    assert type(info.value) is error
    assert info.value.field == field
    assert info.value.message
    after = sdk.stats()
    assert (after.memories, after.messages, after.history) == (
        before.memories, before.messages, before.history)


def _fingerprint(sdk: Any) -> dict[str, Any]:
    """What a fixed scenario returns, without what differs by design (ids, clocks)."""
    sdk.reset()
    for i, text in enumerate(("My sister Maya lives in Lisbon", "I am allergic to peanuts",
                              "We fly to Kyoto in April", "Maya teaches chemistry")):
        sdk.add(text, user_id="same", timestamp=f"2024-03-0{i + 1}T10:00:00Z", infer=True)
    hits = sdk.search("where does my sister live?", user_id="same", limit=4)
    block = sdk.context("Maya", user_id="same", max_tokens=60)
    page = sdk.get_all(user_id="same", limit=50)
    return {
        "hits": [(h.memory.text, h.memory.kind, round(h.score, 6), sorted(h.channel_ranks.items()))
                 for h in hits.results],
        "block": (block.text, block.tokens, block.considered, block.dropped),
        "page": sorted((m.text, m.kind, m.valid_from) for m in page.items),
        "export": sorted((r.text, r.kind) for r in sdk.export()),
        "stats": sdk.stats().model_dump(exclude={"path", "size_bytes"}),
    }


def test_same_inputs_give_the_same_results_on_all_four(backends: dict[str, Any]) -> None:
    prints = {kind: _fingerprint(backends[kind]) for kind in KINDS}
    assert prints["embedded"]["hits"] and "Lisbon" in prints["embedded"]["hits"][0][0]
    for kind in KINDS[1:]:
        assert prints[kind] == prints["embedded"], kind
