"""`AsyncMemory`: the same methods as `Memory`, awaitable.

SQLite and the embedder block, so each call runs the synchronous method in a worker thread;
behaviour, validation and errors are exactly `Memory`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from memsvc.consolidate import ConsolidationConfig, ConsolidationReport, Progress
from memsvc.model.chat import ChatEvent, ChatResponse
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
from memsvc.sdk.memory import Memory, MessagesInput

Time = datetime | str | float | None


class AsyncMemory:
    def __init__(self, db_path: str | Path | None = None, **kwargs: Any) -> None:
        self.sync = Memory(db_path, **kwargs)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def add(
        self,
        messages: MessagesInput,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: Time = None,
        infer: bool = False,
    ) -> AddResult:
        return await asyncio.to_thread(
            self.sync.add, messages, user_id=user_id, agent_id=agent_id, session_id=session_id,
            metadata=metadata, timestamp=timestamp, infer=infer,
        )

    async def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 10,
        as_of: Time = None,
        plan: SearchPlan | str | None = None,
    ) -> SearchResponse:
        return await asyncio.to_thread(
            self.sync.search, query, user_id=user_id, agent_id=agent_id, session_id=session_id,
            filters=filters, kinds=kinds, limit=limit, as_of=as_of, plan=plan,
        )

    async def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 50,
        max_tokens: int = 1000,
        as_of: Time = None,
        plan: SearchPlan | str | None = None,
        now: Time = None,
        include_archived: bool = False,
    ) -> ContextBlock:
        return await asyncio.to_thread(
            self.sync.context, query, user_id=user_id, agent_id=agent_id,
            session_id=session_id, filters=filters, kinds=kinds, limit=limit,
            max_tokens=max_tokens, as_of=as_of, plan=plan, now=now,
            include_archived=include_archived,
        )

    async def get(self, memory_id: str) -> MemoryRecord:
        return await asyncio.to_thread(self.sync.get, memory_id)

    async def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        include_inactive: bool = False,
    ) -> Page:
        return await asyncio.to_thread(
            self.sync.get_all, user_id=user_id, agent_id=agent_id, session_id=session_id,
            filters=filters, kinds=kinds, limit=limit, cursor=cursor,
            include_inactive=include_inactive,
        )

    async def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryRecord:
        return await asyncio.to_thread(
            self.sync.update, memory_id, text, metadata=metadata, importance=importance
        )

    async def delete(self, memory_id: str, *, hard: bool = False) -> None:
        await asyncio.to_thread(self.sync.delete, memory_id, hard=hard)

    async def delete_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        hard: bool = False,
    ) -> int:
        return await asyncio.to_thread(
            self.sync.delete_all, user_id=user_id, agent_id=agent_id, session_id=session_id,
            hard=hard,
        )

    async def history(self, memory_id: str) -> list[HistoryEntry]:
        return await asyncio.to_thread(self.sync.history, memory_id)

    async def messages(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 1000,
    ) -> list[StoredMessage]:
        return await asyncio.to_thread(
            self.sync.messages, user_id=user_id, agent_id=agent_id, session_id=session_id,
            limit=limit,
        )

    async def stats(self) -> StoreStats:
        return await asyncio.to_thread(self.sync.stats)

    async def import_records(
        self, records: Iterable[dict[str, Any] | MemoryRecord]
    ) -> dict[str, int]:
        return await asyncio.to_thread(self.sync.import_records, list(records))

    async def reset(self) -> None:
        await asyncio.to_thread(self.sync.reset)

    async def infer(
        self,
        message_ids: Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> AddResult:
        return await asyncio.to_thread(
            self.sync.infer, message_ids, user_id=user_id, agent_id=agent_id,
            session_id=session_id,
        )

    async def chat(
        self,
        message: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 8,
        max_tokens: int = 256,
        temperature: float = 0.0,
        infer: bool = True,
        stream: bool = False,
    ) -> ChatResponse | AsyncIterator[ChatEvent]:
        """`Memory.chat`; with `stream`, an async iterator of the events."""
        kwargs: dict[str, Any] = dict(
            user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            max_tokens=max_tokens, temperature=temperature, infer=infer)
        if not stream:
            return await asyncio.to_thread(lambda: self.sync.chat(message, **kwargs))
        events = await asyncio.to_thread(lambda: self.sync.chat(message, stream=True, **kwargs))

        def step() -> ChatEvent | None:
            return next(events, None)

        async def relay() -> AsyncIterator[ChatEvent]:
            while (event := await asyncio.to_thread(step)) is not None:
                yield event

        return relay()

    async def consolidate(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        now: Time = None,
        steps: Sequence[str] | None = None,
        config: ConsolidationConfig | None = None,
        progress: Progress | None = None,
    ) -> ConsolidationReport:
        return await asyncio.to_thread(
            self.sync.consolidate, user_id=user_id, agent_id=agent_id, now=now, steps=steps,
            config=config, progress=progress,
        )
