"""One face for the four SDK classes, sync and async, so each integration is written once.

Frameworks call an integration both synchronously (`store.batch`, `tool.invoke`) and
asynchronously (`abatch`, `ainvoke`), and users hand in any of `Memory`, `AsyncMemory`,
`MemoryClient` or `AsyncMemoryClient`. Rather than writing every operation twice, an
integration writes it once as a *plan*: a generator that yields SDK calls (`Call`) and
receives their results. `Backend.run` executes a plan with blocking calls, `Backend.arun`
with awaited ones; the plan itself never does I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from memsvc import (
    AsyncMemory,
    AsyncMemoryClient,
    Memory,
    MemoryClient,
    MemsvcError,
    NotFoundError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One SDK method call, by name, as the plans yield it."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Plan = Generator[Call, Any, T]


def call(method: str, *args: Any, **kwargs: Any) -> Call:
    return Call(method, args, kwargs)


class Backend:
    """Wraps a `Memory`, `AsyncMemory`, `MemoryClient` or `AsyncMemoryClient`.

    The sync side of an `AsyncMemory` is its `.sync` `Memory`; the sync side of an
    `AsyncMemoryClient` is a `MemoryClient` to the same server with the same key, made on
    first use. Sync objects serve async callers from a worker thread (as `AsyncMemory` does).
    """

    def __init__(self, memory: Any) -> None:
        self.memory = memory
        self._sync: Memory | MemoryClient | None = None
        self._aio: AsyncMemory | AsyncMemoryClient | None = None
        if isinstance(memory, Memory | MemoryClient):
            self._sync = memory
        elif isinstance(memory, AsyncMemory):
            self._sync, self._aio = memory.sync, memory
        elif isinstance(memory, AsyncMemoryClient):
            self._aio = memory
        else:
            raise TypeError(
                "expected a memsvc Memory, AsyncMemory, MemoryClient or AsyncMemoryClient, "
                f"got {type(memory).__name__}"
            )

    @property
    def remote(self) -> bool:
        return isinstance(self.memory, MemoryClient | AsyncMemoryClient)

    @property
    def sync(self) -> Memory | MemoryClient:
        if self._sync is None:
            assert isinstance(self._aio, AsyncMemoryClient)
            auth = self._aio.headers.get("Authorization", "")
            self._sync = MemoryClient(self._aio.base_url,
                                      api_key=auth.removeprefix("Bearer ") or None)
        return self._sync

    def do(self, c: Call) -> Any:
        return getattr(self.sync, c.method)(*c.args, **c.kwargs)

    async def ado(self, c: Call) -> Any:
        if self._aio is not None:
            return await getattr(self._aio, c.method)(*c.args, **c.kwargs)
        return await asyncio.to_thread(getattr(self.sync, c.method), *c.args, **c.kwargs)

    def run(self, plan: Plan[T]) -> T:
        """Execute a plan with blocking SDK calls; an SDK error is thrown back into it."""
        try:
            step = next(plan)
            while True:
                try:
                    result = self.do(step)
                except Exception as exc:  # the plan may handle it (e.g. NotFoundError)
                    step = plan.throw(exc)
                else:
                    step = plan.send(result)
        except StopIteration as stop:
            return stop.value

    async def arun(self, plan: Plan[T]) -> T:
        """`run`, awaiting each SDK call."""
        try:
            step = next(plan)
            while True:
                try:
                    result = await self.ado(step)
                except Exception as exc:
                    step = plan.throw(exc)
                else:
                    step = plan.send(result)
        except StopIteration as stop:
            return stop.value


def scope_kwargs(user_id: str | None, agent_id: str | None,
                 session_id: str | None) -> dict[str, str]:
    return {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id),
                              ("session_id", session_id)) if v is not None}


def hit_dict(hit: Any) -> dict[str, Any]:
    """A search hit (`ScoredMemory`) as the plain dict the tools hand to a model."""
    m = hit.memory
    return {
        "id": m.id,
        "text": m.text,
        "score": hit.score,
        "kind": m.kind.value,
        "created_at": m.created_at.isoformat(),
        "channel_ranks": dict(hit.channel_ranks),
    }


def error_text(exc: BaseException) -> str:
    """What a model is told when memsvc refuses a call: memsvc's own message."""
    if isinstance(exc, MemsvcError):
        return f"memsvc refused the call ({exc.code}): {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def remember_plan(text: str, scope: dict[str, str], infer: bool) -> Plan[list[str]]:
    """Store `text` as a user message of the scope; returns the ids of the memories added
    (none when, with `infer`, everything was already known)."""
    result = yield call("add", text, infer=infer, **scope)
    return [c.id for c in result.results if c.event.value == "ADD"]


def recall_plan(query: str, scope: dict[str, str], limit: int) -> Plan[list[dict[str, Any]]]:
    response = yield call("search", query, limit=limit, **scope)
    return [hit_dict(h) for h in response.results]


def forget_plan(memory_id: str, scope: dict[str, str]) -> Plan[str]:
    """Delete a memory, but only one of the tool's own scope: a model that guesses another
    user's id gets a not-found, never a deletion."""
    record = yield call("get", memory_id)
    own = record.scope.model_dump()
    if any(own.get(k) != v for k, v in scope.items()):
        raise NotFoundError(f"no memory with id {memory_id!r} in this scope", field="id")
    yield call("delete", memory_id)
    return record.id
