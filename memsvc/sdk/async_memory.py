"""`AsyncMemory`: the same methods as `Memory`, awaitable, generated from sdk/operations.py.

SQLite and the embedder block, so each call runs the synchronous method in a worker thread;
behaviour, validation and errors are exactly `Memory`'s. A method that returns an iterator
(`export`, `chat(stream=True)`) returns an async iterator whose items are pulled in worker
threads too. Each method below is one line: its runtime signature comes from the operation,
its static type from the `Memory` method it runs, and a test checks the two agree.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from memsvc.model.chat import ChatEvent, ChatResponse
from memsvc.sdk.memory import Memory, MessagesInput
from memsvc.sdk.operations import Operation, operation

__all__ = ["AsyncMemory", "MessagesInput"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# How many items of an iterator one worker-thread hop fetches: chat events must arrive as
# they are made; exported records are cheap, so a thread hop per record would dominate.
_BATCH = {"sse": 1, "ndjson": 500}


async def relay(items: Iterator[T], batch: int) -> AsyncIterator[T]:
    """An async iterator over a blocking one, `batch` items per worker-thread hop."""

    source = iter(items)

    def take() -> list[T]:
        out: list[T] = []
        for item in source:
            out.append(item)
            if len(out) >= batch:
                break
        return out

    while chunk := await asyncio.to_thread(take):
        for item in chunk:
            yield item
        if len(chunk) < batch:
            return


def _build(op: Operation, doc: str | None) -> Callable[..., Any]:
    signature = op.signature()

    async def call(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)  # a wrong argument fails here, not in a thread
        method = getattr(self.sync, op.name)
        result = await asyncio.to_thread(functools.partial(method, *args, **kwargs))
        if op.stream is not None and op.streams(bound.arguments):
            return relay(result, _BATCH[op.stream])
        return result

    return op.present(call, doc=doc, returns=op.async_returns)


def threaded(
    method: Callable[Concatenate[Memory, P], R],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """The `Memory` method of the same name, run in a worker thread."""
    return _build(operation(method.__name__), method.__doc__)


def threaded_iter(
    method: Callable[Concatenate[Memory, P], Iterator[T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, AsyncIterator[T]]]:
    """A `Memory` method returning an iterator; awaited, it returns an async iterator."""
    return _build(operation(method.__name__), method.__doc__)


def threaded_chat(
    method: Callable[Concatenate[Memory, P], Any],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, ChatResponse | AsyncIterator[ChatEvent]]]:
    """`Memory.chat`; with `stream`, an async iterator of the events."""
    return _build(operation(method.__name__), method.__doc__)


class AsyncMemory:
    """`Memory`, awaitable: `AsyncMemory(...)` takes `Memory(...)`'s arguments."""

    def __init__(self, db_path: str | Path | None = None, **kwargs: Any) -> None:
        self.sync = Memory(db_path, **kwargs)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    add = threaded(Memory.add)
    infer = threaded(Memory.infer)
    update = threaded(Memory.update)
    delete = threaded(Memory.delete)
    delete_all = threaded(Memory.delete_all)
    review = threaded(Memory.review)
    reset = threaded(Memory.reset)
    consolidate = threaded(Memory.consolidate)
    search = threaded(Memory.search)
    context = threaded(Memory.context)
    chat = threaded_chat(Memory.chat)
    get = threaded(Memory.get)
    get_all = threaded(Memory.get_all)
    history = threaded(Memory.history)
    messages = threaded(Memory.messages)
    stats = threaded(Memory.stats)
    export = threaded_iter(Memory.export)
    import_records = threaded(Memory.import_records)
