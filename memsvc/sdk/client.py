"""`MemoryClient` / `AsyncMemoryClient`: the `Memory` methods over HTTP.

Same method names and arguments as the embedded `Memory`, same return models, same typed
exceptions (the server sends each error's `code`; it is mapped back through
`ERRORS_BY_CODE`). Switching from embedded to remote is changing the constructor. As in
httpx, the two clients share how a call becomes a request and how a response becomes a
result (`_Call`); only the transport differs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from memsvc.consolidate import ConsolidationConfig, ConsolidationReport, Progress
from memsvc.model.chat import (
    ChatEvent,
    ChatRequest,
    ChatResponse,
    chat_body,
    events_from_lines,
    parse_sse_event,
)
from memsvc.model.errors import ERRORS_BY_CODE, InvalidInputError, MemsvcError
from memsvc.model.records import (
    AddResult,
    HistoryEntry,
    MemoryRecord,
    Page,
    SearchResponse,
    StoredMessage,
    StoreStats,
)
from memsvc.retrievers.context import ContextBlock
from memsvc.retrievers.plan import SearchPlan

T = TypeVar("T")
Time = datetime | str | float | None
MessagesInput = str | dict[str, Any] | Sequence[dict[str, Any] | str]


class RemoteError(MemsvcError):
    """An error the server reported whose code has no class here."""

    def __init__(self, message: str, *, code: str, status: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code
        self.http_status = status


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None


def _time(value: Time) -> str | float | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _plan(plan: SearchPlan | str | None) -> str | None:
    if plan is None or isinstance(plan, str):
        return plan
    raise InvalidInputError("over HTTP, plan must be a recipe name (fast, balanced, deep)",
                            field="plan")


def _scope(user_id: str | None, agent_id: str | None, session_id: str | None) -> dict[str, Any]:
    return {k: v for k, v in
            (("user_id", user_id), ("agent_id", agent_id), ("session_id", session_id))
            if v is not None}


def _messages(messages: MessagesInput) -> Any:
    if isinstance(messages, bytes | bytearray):
        try:
            return bytes(messages).decode("utf-8")
        except UnicodeDecodeError as exc:
            from memsvc.model.errors import EncodingError

            raise EncodingError(f"messages are not valid UTF-8 (offset {exc.start})",
                                field="messages") from exc
    if isinstance(messages, dict):
        return [messages]
    if isinstance(messages, str):
        return messages
    return list(messages)


def _model(adapter: TypeAdapter[T]) -> Callable[[httpx.Response], T]:
    return lambda r: adapter.validate_json(r.content)


def _none(_: httpx.Response) -> None:
    return None


def _deleted(r: httpx.Response) -> int:
    return int(r.json()["deleted"])


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error response back into the exception the embedded SDK would raise."""
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        code, message, field = str(err["code"]), str(err["message"]), err.get("field")
    except (ValueError, KeyError, TypeError):
        code, message, field = f"http_{response.status_code}", response.text[:500], None
    cls = ERRORS_BY_CODE.get(code)
    if cls is not None and cls is not MemsvcError:
        raise cls(message, field=field)
    raise RemoteError(message, code=code, status=response.status_code, field=field)


class _Calls:
    """Each `Memory` method as a request description (shared by both clients)."""

    @staticmethod
    def add(messages: MessagesInput, *, user_id: str | None, agent_id: str | None,
            session_id: str | None, metadata: dict[str, Any] | None, timestamp: Time,
            infer: bool) -> _Call[AddResult]:
        body = {"messages": _messages(messages), **_scope(user_id, agent_id, session_id),
                "metadata": metadata, "timestamp": _time(timestamp), "infer": infer}
        return _Call("POST", "/v1/memories", _model(TypeAdapter(AddResult)), json=body)

    @staticmethod
    def search(query: str, *, user_id: str | None, agent_id: str | None,
               session_id: str | None, filters: dict[str, Any] | None,
               kinds: Sequence[str] | None, limit: int, as_of: Time,
               plan: SearchPlan | str | None, now: Time = None, include_archived: bool = False,
               max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "query": query, **_scope(user_id, agent_id, session_id), "filters": filters,
            "kinds": [kinds] if isinstance(kinds, str) else kinds, "limit": limit,
            "as_of": _time(as_of), "plan": _plan(plan), "now": _time(now),
            "include_archived": include_archived,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return body

    @staticmethod
    def get_all(*, user_id: str | None, agent_id: str | None, session_id: str | None,
                filters: dict[str, Any] | None, kinds: Sequence[str] | None, limit: int,
                cursor: str | None, include_inactive: bool,
                include_archived: bool) -> _Call[Page]:
        params: dict[str, Any] = {**_scope(user_id, agent_id, session_id), "limit": limit,
                                  "include_inactive": str(include_inactive).lower(),
                                  "include_archived": str(include_archived).lower()}
        if filters is not None:
            params["filters"] = json.dumps(filters)
        if kinds is not None:
            params["kinds"] = [kinds] if isinstance(kinds, str) else list(kinds)
        if cursor is not None:
            params["cursor"] = cursor
        return _Call("GET", "/v1/memories", _model(TypeAdapter(Page)), params=params)

    @staticmethod
    def consolidate(*, user_id: str | None, agent_id: str | None, now: Time,
                    steps: Sequence[str] | None, config: ConsolidationConfig | None,
                    progress: Progress | None) -> _Call[ConsolidationReport]:
        if progress is not None:
            raise InvalidInputError("progress callbacks run only in the embedded SDK",
                                    field="progress")
        if config is not None and not isinstance(config, ConsolidationConfig):
            raise InvalidInputError("config must be a ConsolidationConfig", field="config")
        body = {**_scope(user_id, agent_id, None), "now": _time(now),
                "steps": [steps] if isinstance(steps, str) else steps,
                "config": dataclasses.asdict(config) if config is not None else None}
        return _Call("POST", "/v1/consolidate", _model(TypeAdapter(ConsolidationReport)),
                     json=body)


def _id_path(memory_id: str, suffix: str = "") -> str:
    if not isinstance(memory_id, str) or not memory_id.strip():
        raise InvalidInputError("memory id must be a non-empty string", field="id")
    return f"/v1/memories/{quote(memory_id.strip(), safe='')}{suffix}"


class _Base:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    # Each method returns the _Call; the subclasses execute it.
    def _add(self, messages: MessagesInput, user_id: str | None, agent_id: str | None,
             session_id: str | None, metadata: dict[str, Any] | None, timestamp: Time,
             infer: bool) -> _Call[AddResult]:
        return _Calls.add(messages, user_id=user_id, agent_id=agent_id, session_id=session_id,
                          metadata=metadata, timestamp=timestamp, infer=infer)

    def _search(self, query: str, **kw: Any) -> _Call[SearchResponse]:
        return _Call("POST", "/v1/search", _model(TypeAdapter(SearchResponse)),
                     json=_Calls.search(query, **kw))

    def _context(self, query: str, max_tokens: int, **kw: Any) -> _Call[ContextBlock]:
        return _Call("POST", "/v1/context", _model(TypeAdapter(ContextBlock)),
                     json=_Calls.search(query, max_tokens=max_tokens, **kw))

    def _get(self, memory_id: str) -> _Call[MemoryRecord]:
        return _Call("GET", _id_path(memory_id), _model(TypeAdapter(MemoryRecord)))

    def _update(self, memory_id: str, text: str | None, metadata: dict[str, Any] | None,
                importance: float | None) -> _Call[MemoryRecord]:
        if text is None and metadata is None and importance is None:
            raise InvalidInputError("nothing to update: give text, metadata or importance")
        body = {k: v for k, v in (("text", text), ("metadata", metadata),
                                  ("importance", importance)) if v is not None}
        return _Call("PATCH", _id_path(memory_id), _model(TypeAdapter(MemoryRecord)), json=body)

    def _delete(self, memory_id: str, hard: bool) -> _Call[None]:
        return _Call("DELETE", _id_path(memory_id), _none,
                     params={"hard": str(hard).lower()})

    def _delete_all(self, user_id: str | None, agent_id: str | None, session_id: str | None,
                    hard: bool) -> _Call[int]:
        return _Call("DELETE", "/v1/memories", _deleted,
                     params={**_scope(user_id, agent_id, session_id),
                             "hard": str(hard).lower()})

    def _history(self, memory_id: str) -> _Call[list[HistoryEntry]]:
        return _Call("GET", _id_path(memory_id, "/history"),
                     _model(TypeAdapter(list[HistoryEntry])))

    def _messages(self, user_id: str | None, agent_id: str | None, session_id: str | None,
                  limit: int) -> _Call[list[StoredMessage]]:
        return _Call("GET", "/v1/messages", _model(TypeAdapter(list[StoredMessage])),
                     params={**_scope(user_id, agent_id, session_id), "limit": limit})

    def _stats(self) -> _Call[StoreStats]:
        return _Call("GET", "/v1/stats", _model(TypeAdapter(StoreStats)))


class MemoryClient(_Base):
    """`Memory` over HTTP: `MemoryClient("http://127.0.0.1:8000", api_key="msk_...")`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers,
                                  timeout=timeout, transport=transport)

    def _do(self, call: _Call[T]) -> T:
        response = self._http.request(call.method, call.path, params=call.params,
                                      json=call.json)
        raise_for_error(response)
        return call.parse(response)

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def add(self, messages: MessagesInput, *, user_id: str | None = None,
            agent_id: str | None = None, session_id: str | None = None,
            metadata: dict[str, Any] | None = None, timestamp: Time = None,
            infer: bool = False) -> AddResult:
        return self._do(self._add(messages, user_id, agent_id, session_id, metadata, timestamp,
                                  infer))

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None, filters: dict[str, Any] | None = None,
               kinds: Sequence[str] | None = None, limit: int = 10, as_of: Time = None,
               plan: SearchPlan | str | None = None, now: Time = None,
               include_archived: bool = False) -> SearchResponse:
        return self._do(self._search(query, user_id=user_id, agent_id=agent_id,
                                     session_id=session_id, filters=filters, kinds=kinds,
                                     limit=limit, as_of=as_of, plan=plan, now=now,
                                     include_archived=include_archived))

    def context(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
                session_id: str | None = None, filters: dict[str, Any] | None = None,
                kinds: Sequence[str] | None = None, limit: int = 50, max_tokens: int = 1000,
                as_of: Time = None, plan: SearchPlan | str | None = None, now: Time = None,
                include_archived: bool = False) -> ContextBlock:
        return self._do(self._context(query, max_tokens, user_id=user_id, agent_id=agent_id,
                                      session_id=session_id, filters=filters, kinds=kinds,
                                      limit=limit, as_of=as_of, plan=plan, now=now,
                                      include_archived=include_archived))

    def get(self, memory_id: str) -> MemoryRecord:
        return self._do(self._get(memory_id))

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                session_id: str | None = None, filters: dict[str, Any] | None = None,
                kinds: Sequence[str] | None = None, limit: int = 100, cursor: str | None = None,
                include_inactive: bool = False, include_archived: bool = False) -> Page:
        return self._do(_Calls.get_all(user_id=user_id, agent_id=agent_id,
                                       session_id=session_id, filters=filters, kinds=kinds,
                                       limit=limit, cursor=cursor,
                                       include_inactive=include_inactive,
                                       include_archived=include_archived))

    def consolidate(self, *, user_id: str | None = None, agent_id: str | None = None,
                    now: Time = None, steps: Sequence[str] | None = None,
                    config: ConsolidationConfig | None = None,
                    progress: Progress | None = None) -> ConsolidationReport:
        return self._do(_Calls.consolidate(user_id=user_id, agent_id=agent_id, now=now,
                                           steps=steps, config=config, progress=progress))

    def update(self, memory_id: str, text: str | None = None, *,
               metadata: dict[str, Any] | None = None,
               importance: float | None = None) -> MemoryRecord:
        return self._do(self._update(memory_id, text, metadata, importance))

    def delete(self, memory_id: str, *, hard: bool = False) -> None:
        self._do(self._delete(memory_id, hard))

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                   session_id: str | None = None, hard: bool = False) -> int:
        return self._do(self._delete_all(user_id, agent_id, session_id, hard))

    def history(self, memory_id: str) -> list[HistoryEntry]:
        return self._do(self._history(memory_id))

    def messages(self, *, user_id: str | None = None, agent_id: str | None = None,
                 session_id: str | None = None, limit: int = 1000) -> list[StoredMessage]:
        return self._do(self._messages(user_id, agent_id, session_id, limit))

    def stats(self) -> StoreStats:
        return self._do(self._stats())

    @overload
    def chat(self, message: str, *, user_id: str | None = ..., agent_id: str | None = ...,
             session_id: str | None = ..., limit: int = ..., max_tokens: int = ...,
             temperature: float = ..., infer: bool = ...,
             stream: Literal[False] = ...) -> ChatResponse: ...

    @overload
    def chat(self, message: str, *, user_id: str | None = ..., agent_id: str | None = ...,
             session_id: str | None = ..., limit: int = ..., max_tokens: int = ...,
             temperature: float = ..., infer: bool = ...,
             stream: Literal[True]) -> Iterator[ChatEvent]: ...

    def chat(self, message: str, *, user_id: str | None = None, agent_id: str | None = None,
             session_id: str | None = None, limit: int = 8, max_tokens: int = 256,
             temperature: float = 0.0, infer: bool = True,
             stream: bool = False) -> ChatResponse | Iterator[ChatEvent]:
        """`Memory.chat` over `POST /v1/chat`; with `stream`, the server-sent events. A 503
        (the LLM failed; the message is stored) raises `ChatUnavailableError` here, before
        any event."""
        body = chat_body(ChatRequest.build(
            message, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            max_tokens=max_tokens, temperature=temperature, infer=infer), stream=stream)
        if not stream:
            return self._do(_Call("POST", "/v1/chat", _model(TypeAdapter(ChatResponse)),
                                  json=body))
        request = self._http.build_request("POST", "/v1/chat", json=body)
        response = self._http.send(request, stream=True)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise_for_error(response)

        def events() -> Iterator[ChatEvent]:
            try:
                yield from events_from_lines(response.iter_lines())
            finally:
                response.close()

        return events()


class AsyncMemoryClient(_Base):
    """`AsyncMemory` over HTTP; the same methods as `MemoryClient`, awaitable."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       timeout=timeout, transport=transport)

    async def _do(self, call: _Call[T]) -> T:
        response = await self._http.request(call.method, call.path, params=call.params,
                                            json=call.json)
        raise_for_error(response)
        return call.parse(response)

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def add(self, messages: MessagesInput, *, user_id: str | None = None,
                  agent_id: str | None = None, session_id: str | None = None,
                  metadata: dict[str, Any] | None = None, timestamp: Time = None,
                  infer: bool = False) -> AddResult:
        return await self._do(self._add(messages, user_id, agent_id, session_id, metadata,
                                        timestamp, infer))

    async def search(self, query: str, *, user_id: str | None = None,
                     agent_id: str | None = None, session_id: str | None = None,
                     filters: dict[str, Any] | None = None, kinds: Sequence[str] | None = None,
                     limit: int = 10, as_of: Time = None,
                     plan: SearchPlan | str | None = None, now: Time = None,
                     include_archived: bool = False) -> SearchResponse:
        return await self._do(self._search(query, user_id=user_id, agent_id=agent_id,
                                           session_id=session_id, filters=filters,
                                           kinds=kinds, limit=limit, as_of=as_of, plan=plan,
                                           now=now, include_archived=include_archived))

    async def context(self, query: str, *, user_id: str | None = None,
                      agent_id: str | None = None, session_id: str | None = None,
                      filters: dict[str, Any] | None = None,
                      kinds: Sequence[str] | None = None, limit: int = 50,
                      max_tokens: int = 1000, as_of: Time = None,
                      plan: SearchPlan | str | None = None, now: Time = None,
                      include_archived: bool = False) -> ContextBlock:
        return await self._do(self._context(query, max_tokens, user_id=user_id,
                                            agent_id=agent_id, session_id=session_id,
                                            filters=filters, kinds=kinds, limit=limit,
                                            as_of=as_of, plan=plan, now=now,
                                            include_archived=include_archived))

    async def get(self, memory_id: str) -> MemoryRecord:
        return await self._do(self._get(memory_id))

    async def get_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                      session_id: str | None = None, filters: dict[str, Any] | None = None,
                      kinds: Sequence[str] | None = None, limit: int = 100,
                      cursor: str | None = None, include_inactive: bool = False,
                      include_archived: bool = False) -> Page:
        return await self._do(_Calls.get_all(user_id=user_id, agent_id=agent_id,
                                             session_id=session_id, filters=filters,
                                             kinds=kinds, limit=limit, cursor=cursor,
                                             include_inactive=include_inactive,
                                             include_archived=include_archived))

    async def consolidate(self, *, user_id: str | None = None, agent_id: str | None = None,
                          now: Time = None, steps: Sequence[str] | None = None,
                          config: ConsolidationConfig | None = None,
                          progress: Progress | None = None) -> ConsolidationReport:
        return await self._do(_Calls.consolidate(user_id=user_id, agent_id=agent_id, now=now,
                                                 steps=steps, config=config,
                                                 progress=progress))

    async def update(self, memory_id: str, text: str | None = None, *,
                     metadata: dict[str, Any] | None = None,
                     importance: float | None = None) -> MemoryRecord:
        return await self._do(self._update(memory_id, text, metadata, importance))

    async def delete(self, memory_id: str, *, hard: bool = False) -> None:
        await self._do(self._delete(memory_id, hard))

    async def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                         session_id: str | None = None, hard: bool = False) -> int:
        return await self._do(self._delete_all(user_id, agent_id, session_id, hard))

    async def history(self, memory_id: str) -> list[HistoryEntry]:
        return await self._do(self._history(memory_id))

    async def messages(self, *, user_id: str | None = None, agent_id: str | None = None,
                       session_id: str | None = None,
                       limit: int = 1000) -> list[StoredMessage]:
        return await self._do(self._messages(user_id, agent_id, session_id, limit))

    async def stats(self) -> StoreStats:
        return await self._do(self._stats())

    async def chat(self, message: str, *, user_id: str | None = None,
                   agent_id: str | None = None, session_id: str | None = None, limit: int = 8,
                   max_tokens: int = 256, temperature: float = 0.0, infer: bool = True,
                   stream: bool = False) -> ChatResponse | AsyncIterator[ChatEvent]:
        """See `MemoryClient.chat`; with `stream`, an async iterator of the events."""
        body = chat_body(ChatRequest.build(
            message, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            max_tokens=max_tokens, temperature=temperature, infer=infer), stream=stream)
        if not stream:
            return await self._do(_Call("POST", "/v1/chat", _model(TypeAdapter(ChatResponse)),
                                        json=body))
        request = self._http.build_request("POST", "/v1/chat", json=body)
        response = await self._http.send(request, stream=True)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise_for_error(response)

        async def events() -> AsyncIterator[ChatEvent]:
            try:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        yield parse_sse_event(line[5:].strip())
            finally:
                await response.aclose()

        return events()
