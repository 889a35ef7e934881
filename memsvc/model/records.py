"""The data model: one typed memory, its scope, its history, and what a search returns.

Every interface (SDK, REST, MCP, CLI) speaks these pydantic models, so a memory looks the same
whether it came from the embedded store or over HTTP. Time lives on the record itself
(bi-temporal: when it was true in the world, and when the service learnt and retired it).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class MemoryKind(StrEnum):
    EPISODE = "episode"
    FACT = "fact"
    PREFERENCE = "preference"
    EVENT = "event"
    PROCEDURE = "procedure"
    SUMMARY = "summary"
    PROFILE = "profile"


class MemoryStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ARCHIVED = "archived"
    DELETED = "deleted"
    #: Written from text that reads as instructions to a model, or is keyword-stuffed
    #: (``memsvc.text.screening``): kept for review, never served by default.
    QUARANTINED = "quarantined"


class HistoryEvent(StrEnum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    INVALIDATE = "INVALIDATE"
    NOOP = "NOOP"
    DELETE = "DELETE"
    ARCHIVE = "ARCHIVE"
    RESTORE = "RESTORE"


class Scope(BaseModel):
    """Who a memory belongs to. A search never crosses the scope it names."""

    model_config = ConfigDict(frozen=True)

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def is_empty(self) -> bool:
        return not (self.user_id or self.agent_id or self.session_id)


class StoredMessage(BaseModel):
    """A raw message as kept verbatim: the source of truth behind every memory."""

    id: str
    scope: Scope
    role: str
    name: str | None
    content: str
    timestamp: datetime
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


class Provenance(BaseModel):
    source_message_ids: list[str] = Field(default_factory=list)
    extractor: str = "episode"
    extractor_version: str = "1"
    confidence: float = 1.0


# A memory's importance unless its writer says otherwise: what decay starts from, and the
# level at which a search neither lowers nor keeps its rank (`retrievers.importance`).
DEFAULT_IMPORTANCE = 0.5


class MemoryRecord(BaseModel):
    """One memory with its validity, provenance and lifecycle."""

    id: str
    scope: Scope
    kind: MemoryKind
    text: str
    subject: str | None = None
    predicate: str | None = None
    object: str | None = None
    entities: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    created_at: datetime
    updated_at: datetime
    invalidated_at: datetime | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    status: MemoryStatus = MemoryStatus.ACTIVE
    superseded_by: str | None = None
    importance: float = DEFAULT_IMPORTANCE
    access_count: int = 0
    last_accessed_at: datetime | None = None
    content_hash: str
    version: int = 1
    # who wrote it, through which channel, how far it is trusted (memsvc.model.trust): set
    # by the write path from the writing API key and the source messages' roles, never
    # from the caller's input
    writer: str = "local"
    channel: str = "user"
    trust: int = 3


class ScoredMemory(BaseModel):
    """A search hit: the memory, its fused score, and what each channel said (explain).

    `related`: the lower-ranked memories derived from the same source messages (a fact and
    the episode it came from), folded into this hit so a search returns distinct evidence;
    empty for a flat search (`group=False`).
    """

    memory: MemoryRecord
    score: float
    channel_scores: dict[str, float] = Field(default_factory=dict)
    channel_ranks: dict[str, int] = Field(default_factory=dict)
    related: list[ScoredMemory] = Field(default_factory=list)


class SearchResponse(BaseModel):
    query: str
    results: list[ScoredMemory]
    plan: dict[str, Any] = Field(default_factory=dict)
    timing_ms: dict[str, float] = Field(default_factory=dict)


class HistoryEntry(BaseModel):
    id: int
    memory_id: str
    event: HistoryEvent
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    actor: str
    reason: str | None = None
    created_at: datetime


class ExportedMessage(StoredMessage):
    """A raw message in an export file (one JSON line, tagged `"type": "message"`; memory
    lines carry no tag, as export files always wrote them)."""

    type: Literal["message"] = "message"


class ExportedHistory(HistoryEntry):
    """A history entry of an exported memory (tagged `"type": "history"`). Its id is the
    exporting store's, ignored on import: the importing store numbers its own rows."""

    type: Literal["history"] = "history"
    id: int | None = None  # type: ignore[assignment]


ExportItem = MemoryRecord | ExportedMessage | ExportedHistory


class AddResult(BaseModel):
    """What one `add` call did: the raw messages kept and each memory decision taken."""

    message_ids: list[str] = Field(default_factory=list)
    results: list[MemoryChange] = Field(default_factory=list)


class MemoryChange(BaseModel):
    id: str
    event: HistoryEvent
    text: str
    kind: MemoryKind
    reason: str | None = None


class Page(BaseModel):
    items: list[MemoryRecord]
    next_cursor: str | None = None
    total: int


class StoreStats(BaseModel):
    """One tenant's counts. `path` and `size_bytes` describe the whole file (every tenant's),
    so only the operator's view has them (embedded `Memory.stats`, `memsvc stats`); the
    server leaves them out of `GET /v1/stats`, where they read None."""

    memories: int
    by_kind: dict[str, int]
    by_status: dict[str, int]
    messages: int
    history: int
    vectors: int
    fts_rows: int
    path: str | None = None
    size_bytes: int | None = None


AddResult.model_rebuild()
