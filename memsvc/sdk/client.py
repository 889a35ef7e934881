"""`MemoryClient` / `AsyncMemoryClient`: the `Memory` methods over HTTP.

Same method names and arguments as the embedded `Memory`, same return models, same typed
exceptions (the server sends each error's `code`; it is mapped back through
`ERRORS_BY_CODE`). Switching from embedded to remote is changing the constructor. Both
clients are generated from sdk/operations.py: one request builder (sdk/http.py) turns a call
into a request and a response into the result; only the transport differs. Each method
below is one line: its runtime signature comes from the operation, its static type from the
`Memory` method of the same name (a test checks the two agree).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from memsvc.model.chat import ChatEvent, ChatResponse
from memsvc.sdk.http import HttpCall, RemoteError, build_call, raise_for_error
from memsvc.sdk.memory import Memory
from memsvc.sdk.operations import MessagesInput, Operation, operation

__all__ = ["AsyncMemoryClient", "MemoryClient", "MessagesInput", "RemoteError",
           "raise_for_error"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Remote:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _bind(op: Operation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HttpCall:
    bound = op.signature().bind(*args, **kwargs)
    bound.apply_defaults()
    return build_call(op, bound.arguments)


# -- generating the methods ----------------------------------------------------------------

def remote(method: Callable[Concatenate[Memory, P], R]) -> Callable[Concatenate[Any, P], R]:
    """The `Memory` method of the same name, as a request to the server."""
    op = operation(method.__name__)

    def call(self: MemoryClient, *args: Any, **kwargs: Any) -> Any:
        return self._send(_bind(op, args, kwargs))

    return op.present(call, doc=method.__doc__)


def _remote_async(op: Operation, doc: str | None) -> Callable[..., Any]:
    async def call(self: AsyncMemoryClient, *args: Any, **kwargs: Any) -> Any:
        return await self._send(_bind(op, args, kwargs))

    return op.present(call, doc=doc, returns=op.async_returns)


def remote_async(
    method: Callable[Concatenate[Memory, P], R],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """The `Memory` method of the same name, as an awaitable request."""
    return _remote_async(operation(method.__name__), method.__doc__)


def remote_async_iter(
    method: Callable[Concatenate[Memory, P], Iterator[T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, AsyncIterator[T]]]:
    """A `Memory` method returning an iterator; awaited, an async iterator of the stream."""
    return _remote_async(operation(method.__name__), method.__doc__)


def remote_async_chat(
    method: Callable[Concatenate[Memory, P], Any],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, ChatResponse | AsyncIterator[ChatEvent]]]:
    """`Memory.chat` over `POST /v1/chat`; with `stream`, an async iterator of the events."""
    return _remote_async(operation(method.__name__), method.__doc__)


# -- the clients -----------------------------------------------------------------------------

# An idle pooled connection is dropped after KEEPALIVE_EXPIRY seconds, well before a server
# closes its end (memsvc serve: `serving.server.KEEP_ALIVE_SECONDS`; uvicorn's own default
# is 5 s, httpx's expiry too): with equal timers a request sent on a connection the server is
# closing at that moment fails with "connection reset", and a POST is not retried.
KEEPALIVE_EXPIRY = 2.0
LIMITS = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)


class MemoryClient(_Remote):
    """`Memory` over HTTP: `MemoryClient("http://127.0.0.1:8000", api_key="msk_...")`.

    A streamed result (`export`, `chat(stream=True)`) is an iterator that holds the
    response open until it is exhausted; an error status is raised before it is returned.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers,
                                  timeout=timeout, transport=transport, limits=LIMITS)

    def _send(self, call: HttpCall) -> Any:
        request = self._http.build_request(call.method, call.path, params=call.params,
                                           json=call.json)
        response = self._http.send(request, stream=call.stream is not None)
        if call.stream is None:
            raise_for_error(response)
            return call.parse(response)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise_for_error(response)

        def items() -> Iterator[Any]:
            try:
                for line in response.iter_lines():
                    item = call.parse_line(line)
                    if item is not None:
                        yield item
            finally:
                response.close()

        return items()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    add = remote(Memory.add)
    infer = remote(Memory.infer)
    update = remote(Memory.update)
    delete = remote(Memory.delete)
    delete_all = remote(Memory.delete_all)
    review = remote(Memory.review)
    reset = remote(Memory.reset)
    consolidate = remote(Memory.consolidate)
    search = remote(Memory.search)
    context = remote(Memory.context)
    chat = remote(Memory.chat)
    get = remote(Memory.get)
    get_all = remote(Memory.get_all)
    history = remote(Memory.history)
    messages = remote(Memory.messages)
    stats = remote(Memory.stats)
    export = remote(Memory.export)
    import_records = remote(Memory.import_records)


class AsyncMemoryClient(_Remote):
    """`AsyncMemory` over HTTP; the same methods as `MemoryClient`, awaitable."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 *, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       timeout=timeout, transport=transport, limits=LIMITS)

    async def _send(self, call: HttpCall) -> Any:
        request = self._http.build_request(call.method, call.path, params=call.params,
                                           json=call.json)
        response = await self._http.send(request, stream=call.stream is not None)
        if call.stream is None:
            raise_for_error(response)
            return call.parse(response)
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise_for_error(response)

        async def items() -> AsyncIterator[Any]:
            try:
                async for line in response.aiter_lines():
                    item = call.parse_line(line)
                    if item is not None:
                        yield item
            finally:
                await response.aclose()

        return items()

    async def __aenter__(self) -> AsyncMemoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    add = remote_async(Memory.add)
    infer = remote_async(Memory.infer)
    update = remote_async(Memory.update)
    delete = remote_async(Memory.delete)
    delete_all = remote_async(Memory.delete_all)
    review = remote_async(Memory.review)
    reset = remote_async(Memory.reset)
    consolidate = remote_async(Memory.consolidate)
    search = remote_async(Memory.search)
    context = remote_async(Memory.context)
    chat = remote_async_chat(Memory.chat)
    get = remote_async(Memory.get)
    get_all = remote_async(Memory.get_all)
    history = remote_async(Memory.history)
    messages = remote_async(Memory.messages)
    stats = remote_async(Memory.stats)
    export = remote_async_iter(Memory.export)
    import_records = remote_async(Memory.import_records)
