"""The repository interface every store implements, and the values it takes.

Writes go through one unit of work (`WriteBatch`) applied in one transaction, so the caller
decides *what* changes and the store guarantees it lands whole or not at all. Reads are
expressed as a `VisibilityQuery` (scope, kinds, statuses, filters, time) that every read
method honours the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from memsvc.model.filters import FilterNode
from memsvc.model.records import (
    HistoryEntry,
    HistoryEvent,
    MemoryRecord,
    Scope,
    StoredMessage,
    StoreStats,
)

if TYPE_CHECKING:
    from memsvc.storage.graph_store import GraphData


@dataclass(frozen=True)
class VisibilityQuery:
    """Which memories a read may see. The tenant is added by the store, never by the caller."""

    scope: Scope
    kinds: tuple[str, ...] | None = None
    statuses: tuple[str, ...] = ("active",)
    filters: FilterNode | None = None
    as_of: datetime | None = None  # only memories valid (in the world) at that instant


@dataclass(frozen=True)
class HistoryDraft:
    memory_id: str
    event: HistoryEvent
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor: str
    reason: str | None
    created_at: datetime


@dataclass
class WriteBatch:
    """Everything one logical write changes; applied atomically by `MemoryStore.apply`."""

    messages: list[StoredMessage] = field(default_factory=list)
    inserts: list[tuple[MemoryRecord, np.ndarray]] = field(default_factory=list)
    updates: list[tuple[MemoryRecord, np.ndarray | None]] = field(default_factory=list)
    hard_deletes: list[str] = field(default_factory=list)
    history: list[HistoryDraft] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.messages or self.inserts or self.updates or self.hard_deletes or self.history
        )


@dataclass(frozen=True)
class Hit:
    """One channel's candidate: a memory id and the channel's own score (higher is better)."""

    memory_id: str
    score: float


class MemoryStore(Protocol):
    tenant: str

    def apply(self, batch: WriteBatch) -> None: ...

    def get(self, memory_id: str) -> MemoryRecord | None: ...

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]: ...

    def list_memories(
        self, query: VisibilityQuery, *, limit: int, after_id: str | None = None
    ) -> tuple[list[MemoryRecord], int]: ...

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None: ...

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]: ...

    def bm25_search(self, query: VisibilityQuery, match: str, k: int) -> list[Hit]: ...

    def history(self, memory_id: str) -> list[HistoryEntry]: ...

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]: ...

    def record_access(self, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        """Add `count` to each memory's access_count and set its last_accessed_at."""
        ...

    def delete_scope(self, scope: Scope, *, hard: bool, at: datetime, actor: str) -> int: ...

    def reset(self) -> None: ...

    def stats(self) -> StoreStats: ...

    def consistency(self) -> dict[str, Any]: ...

    # -- entity graph and consolidation reads (storage/graph_store.py) --------------------

    def graph_version(self, scope: Scope) -> int: ...

    def graph_data(self, scope: Scope) -> GraphData: ...

    def visible_ids(self, query: VisibilityQuery, memory_ids: Iterable[str]) -> set[str]: ...

    def entities_of(self, memory_ids: Iterable[str]) -> dict[str, list[str]]: ...

    def embeddings(self, memory_ids: Iterable[str]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
