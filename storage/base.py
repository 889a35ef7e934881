"""The repository interface every store backend implements, and the values it takes.

Writes go through one unit of work (`WriteBatch`) applied in one transaction, so the caller
decides *what* changes and the store guarantees it lands whole or not at all. Reads are
expressed as a `VisibilityQuery` (scope, kinds, statuses, filters, time) that every read
method honours the same way.

The interface is a handful of small protocols, one per capability, so a caller can ask for
only what it uses (the BM25 channel needs `LexicalSearch`, nothing else) and a new backend
(PostgreSQL) knows exactly what to implement. `MemoryStore` is all of them together: what
`Memory` and the server hold. Stores are opened by `memsvc.storage.open_store`; nothing
outside `storage/` imports a backend module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from memsvc.model.filters import FilterNode
from memsvc.model.records import (
    DEFAULT_IMPORTANCE,
    HistoryEntry,
    HistoryEvent,
    MemoryRecord,
    Scope,
    StoredMessage,
    StoreStats,
)
from memsvc.storage.graph_model import GraphData


@dataclass(frozen=True)
class VisibilityQuery:
    """Which memories a read may see. The tenant is added by the store, never by the caller."""

    scope: Scope
    kinds: tuple[str, ...] | None = None
    statuses: tuple[str, ...] = ("active",)
    filters: FilterNode | None = None
    as_of: datetime | None = None  # only memories valid (in the world) at that instant
    min_trust: int | None = None  # only memories at least this trusted (memsvc.model.trust)


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


class ApiKeyInfo(BaseModel):
    """What may be shown about an API key after creation: never the key itself."""

    id: str
    name: str
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    trust: int = 3  # the highest trust its writes get (memsvc.model.trust)
    user_id: str | None = None  # the one user it may act for; None: any of its tenant


@dataclass(frozen=True)
class KeyGrant:
    """What an active key lets its caller do: act in `tenant`, as writer `key_id`, with
    writes trusted at most `trust`, for `user_id` only when set."""

    key_id: str
    tenant: str
    trust: int = 3
    user_id: str | None = None


@dataclass(frozen=True)
class SourceKey:
    """What a search needs to decide which memories it serves, before fetching them: kind,
    end of validity, source messages, importance (it weighs on rank). Read *unchecked* (no
    integrity check, no record), so a search fetches and checks only the records it serves;
    the caller compares these with the checked records and falls back to the full read if
    any differ."""

    kind: str
    valid_to: datetime | None
    source_message_ids: tuple[str, ...]
    importance: float = DEFAULT_IMPORTANCE


@runtime_checkable
class RecordStore(Protocol):
    """The core: one tenant's memories, messages and history, written only through `apply`.

    Why one write method: the write path (sdk, write manager, consolidation) decides what
    changes and the backend makes it atomic, so a crash never leaves a row without its
    vector, index entry or history. `tenant` is fixed per instance: isolation is the store's
    job, never the caller's (a PostgreSQL store can enforce it with row-level security).
    """

    tenant: str

    def apply(self, batch: WriteBatch) -> None: ...

    def get(self, memory_id: str) -> MemoryRecord | None: ...

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]: ...

    def source_keys(self, memory_ids: Sequence[str]) -> dict[str, SourceKey]:
        """The unchecked `SourceKey` of those that exist (see there: never served)."""
        ...

    def list_memories(
        self, query: VisibilityQuery, *, limit: int, after_id: str | None = None
    ) -> tuple[list[MemoryRecord], int]:
        """A page ordered by id (keyset: ids after `after_id`) and the total that match."""
        ...

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None: ...

    def history(self, memory_id: str) -> list[HistoryEntry]: ...

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]:
        """The scope's messages, oldest first (by timestamp, then insertion)."""
        ...

    def delete_scope(self, scope: Scope, *, hard: bool, at: datetime, actor: str) -> int:
        """Soft: mark the scope's memories deleted (with history). Hard: erase them, their
        history, links and the scope's messages. Returns how many memories it touched."""
        ...

    def reset(self) -> None:
        """Erase everything this tenant has, from every table and index."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class VectorSearch(Protocol):
    """Nearest neighbours by cosine, restricted to what the query may see.

    Why separate: the vector channel and the write manager's duplicate check need only this,
    and each backend has its own index (sqlite-vec vec0, pgvector).
    """

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]:
        """Best first; `Hit.score` is the cosine similarity (1 − cosine distance)."""
        ...

    def embeddings(self, memory_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors (unit length) of those memories that exist; consolidation
        compares them instead of re-embedding."""
        ...


@runtime_checkable
class LexicalSearch(Protocol):
    """Full-text ranking of the user's own words, restricted to what the query may see.

    Why the raw text: turning it into a query language (an FTS5 MATCH string, a PostgreSQL
    tsquery) and making it safe is the backend's business, so callers never build one.
    """

    def lexical_search(self, query: VisibilityQuery, text: str, k: int) -> list[Hit]:
        """Best first, higher score better; [] when `text` has no content word."""
        ...


@runtime_checkable
class GraphReader(Protocol):
    """The entity graph's reads, for the graph channel and the graph explorer.

    Why: the graph channel builds an in-memory graph per scope from `graph_data` and keeps
    it while `graph_version` is unchanged; links are written by `apply` with the memories.
    """

    def graph_version(self, scope: Scope) -> int:
        """A number that changes whenever a link of the scope's users changes (any process)."""
        ...

    def graph_data(self, scope: Scope) -> GraphData:
        """The entities, memory links and relations of a scope (its user and agent)."""
        ...

    def visible_ids(self, query: VisibilityQuery, memory_ids: Iterable[str]) -> set[str]:
        """Which of `memory_ids` the query may see (scope, status, kind, time, filters)."""
        ...

    def entities_of(self, memory_ids: Iterable[str]) -> dict[str, list[str]]:
        """memory id -> the display names of the entities it is linked to."""
        ...


@runtime_checkable
class AccessCounter(Protocol):
    """Why: searches count their hits (feeding decay) in batches, off the read path."""

    def record_access(self, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        """Add `count` to each memory's access_count and set its last_accessed_at."""
        ...


@runtime_checkable
class StoreDiagnostics(Protocol):
    """What a store holds and whether its indexes agree (`memsvc stats`, crash tests)."""

    def stats(self) -> StoreStats:
        """This tenant's counts; `path` names the location (never a password)."""
        ...

    def consistency(self) -> dict[str, Any]:
        """Backend-specific checks; the key "consistent" (bool) sums them up."""
        ...


class StoredApiKey(ApiKeyInfo):
    """A key as its store keeps it: the info plus the hash (never the key itself)."""

    key_hash: str


@runtime_checkable
class KeyStore(Protocol):
    """The server's API keys, across tenants: each key maps to one tenant.

    Why a protocol: the server resolves every request's key through it, the CLI manages
    keys through it, and neither should care which database holds them.
    """

    def create(
        self, name: str, tenant: str, *, trust: int = 3, user_id: str | None = None
    ) -> tuple[ApiKeyInfo, str]:
        """A new key (trust ceiling, optional user binding); returns its info and the
        plaintext key, shown only now."""
        ...

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke by id or shown prefix (NotFoundError if none)."""
        ...

    def count_active(self) -> int: ...

    def dump_keys(self) -> list[StoredApiKey]:
        """Every key of every tenant with its hash (`memsvc migrate-store` copies them)."""
        ...

    def restore_keys(self, keys: Sequence[StoredApiKey]) -> int:
        """Insert the keys whose id is not here yet, in one transaction; how many were."""
        ...

    def resolve(self, key: str) -> str | None:
        """The tenant of an active key, or None (may be cached for a few seconds)."""
        ...

    def grant(self, key: str) -> KeyGrant | None:
        """Everything an active key grants, or None (cached like `resolve`)."""
        ...

    def clear_cache(self) -> None: ...

    def close(self) -> None:
        """Release what this key store opened itself (nothing, if it shares a store's)."""
        ...

    def list(self, *, include_revoked: bool = False) -> list[ApiKeyInfo]: ...


@runtime_checkable
class TenantViews(Protocol):
    """Why: the server holds one store and hands each request a view confined to the
    caller's tenant, sharing the connection pool; closing a view leaves the store open."""

    def for_tenant(self, tenant: str) -> MemoryStore: ...


@runtime_checkable
class KeyStoreSource(Protocol):
    """Why: the server keeps its API keys in the store's own database and pool."""

    def key_store(self) -> KeyStore:
        """The keys of every tenant (admin: call it on the server's base store only)."""
        ...


TRANSFER_COUNTS = ("memories", "messages", "history", "entities", "links", "relations")


@runtime_checkable
class StoreTransfer(Protocol):
    """Why: `memsvc migrate-store` copies a whole store between backends through this and
    the record protocols only (storage/transfer.py), never through a backend's rows. A dump
    reads in keyset pages ordered by id; a restore is `apply`, so the destination signs,
    indexes and links every row itself (integrity data is re-made, not copied)."""

    def transfer_tenants(self) -> list[str]:
        """Every tenant with memories, messages or history in this store (a PostgreSQL role
        bound by row-level security sees only the tenants it can learn from API keys)."""
        ...

    def dump_messages(self, *, after_id: str | None, limit: int) -> list[StoredMessage]:
        """This tenant's messages of every scope, ordered by id (keyset page)."""
        ...

    def messages_by_id(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """Those of `message_ids` this tenant holds."""
        ...

    def dump_history(self, memory_ids: Sequence[str]) -> dict[str, list[HistoryEntry]]:
        """memory id -> its history, oldest first (ids without history are left out)."""
        ...

    def transfer_counts(self) -> dict[str, int]:
        """This tenant's row counts, every status, keyed by `TRANSFER_COUNTS` (links: memory →
        entity links; relations: entity relations)."""
        ...


@runtime_checkable
class MemoryStore(
    RecordStore,
    VectorSearch,
    LexicalSearch,
    GraphReader,
    AccessCounter,
    StoreDiagnostics,
    TenantViews,
    KeyStoreSource,
    StoreTransfer,
    Protocol,
):
    """Everything a store backend offers: what `Memory`, serving and the evals hold."""



@dataclass(frozen=True)
class JobRecord:
    """A background job as the queue keeps it: what to do (`kind`, `payload`) for whom
    (`tenant`), and how far it got. `result` and `error` are JSON objects."""

    id: str
    tenant: str
    kind: str
    status: str  # queued, running, done, failed
    payload: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0


JobHandler = Callable[[JobRecord], dict[str, Any]]


@runtime_checkable
class JobQueue(Protocol):
    """Why: background work must outlive the process that accepted it when several replicas
    share a database; the server submits and reports, `memsvc worker` processes execute."""

    def submit(self, tenant: str, kind: str, payload: dict[str, Any]) -> JobRecord:
        """Record and enqueue a job in one transaction; it is durable when this returns."""
        ...

    def get(self, tenant: str, job_id: str) -> JobRecord | None:
        """A job of this tenant (None for another tenant's or an unknown id)."""
        ...

    def run_worker(self, handler: JobHandler, *, concurrency: int = 1,
                   heartbeat_seconds: float = 10.0) -> None:
        """Execute jobs with `handler` until interrupted; retry the jobs of dead workers."""
        ...


@runtime_checkable
class JobQueueSource(Protocol):
    """Why: only a shared database (PostgreSQL) has a durable queue; a SQLite store has
    none, and the server then runs background work in its own process."""

    def job_queue(self) -> JobQueue: ...
