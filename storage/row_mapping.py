"""The rows of storage/schema.py's shared tables and their models, both ways: `memories` ↔
`MemoryRecord`, `messages` ↔ `StoredMessage`, `history` ↔ `HistoryEntry`. Both backends use
these (they hold the same columns; each adds its own index columns beside them)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, select

from memsvc.model.records import HistoryEntry, MemoryRecord, Provenance, Scope, StoredMessage
from memsvc.storage.base import HistoryDraft, SourceKey
from memsvc.storage.schema import scope_token


def record_from_row(row: Any) -> MemoryRecord:
    """A memory row (a SQLAlchemy `Row`) as its record. The row is read as a dict once: a
    `Row`'s attributes cost more than the record's validation on a search's fetch."""
    v = row._asdict()
    return MemoryRecord(
        id=v["id"],
        scope=Scope(user_id=v["user_id"], agent_id=v["agent_id"], session_id=v["session_id"]),
        kind=v["kind"],
        text=v["text"],
        subject=v["subject"],
        predicate=v["predicate"],
        object=v["object"],
        entities=v["entities"] or [],
        metadata=v["metadata"] or {},
        valid_from=v["valid_from"],
        valid_to=v["valid_to"],
        created_at=v["created_at"],
        updated_at=v["updated_at"],
        invalidated_at=v["invalidated_at"],
        provenance=Provenance(
            source_message_ids=v["source_message_ids"] or [],
            extractor=v["extractor"],
            extractor_version=v["extractor_version"],
            confidence=v["confidence"],
        ),
        status=v["status"],
        superseded_by=v["superseded_by"],
        importance=v["importance"],
        access_count=v["access_count"],
        last_accessed_at=v["last_accessed_at"],
        content_hash=v["content_hash"],
        version=v["version"],
        # a file migrating through 0003 has no provenance columns yet (0006 adds them)
        writer=v.get("writer", "legacy"),
        channel=v.get("channel", "user"),
        trust=v.get("trust", 3),
    )


def source_keys(conn: Connection, table: Table, tenant: str, memory_ids: Sequence[str]
                ) -> dict[str, SourceKey]:
    """The `SourceKey` of each of `memory_ids` in `table` (a backend's `memories`) that
    exists: four columns, unchecked, no record built."""
    found = conn.execute(_source_key_select(table),
                         {"tenant": tenant, "ids": list(memory_ids)})
    return {row.id: SourceKey(row.kind, row.valid_to, tuple(row.source_message_ids or ()),
                              row.importance)
            for row in found}


@cache
def _source_key_select(table: Table) -> Select[Any]:
    """Built once per table (a search runs it each time); the values are bound on execute."""
    c = table.c
    return select(c.id, c.kind, c.valid_to, c.source_message_ids, c.importance).where(
        c.tenant == bindparam("tenant"), c.id.in_(bindparam("ids", expanding=True)))


def memory_row(tenant: str, rec: MemoryRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "tenant": tenant,
        "user_id": rec.scope.user_id,
        "agent_id": rec.scope.agent_id,
        "session_id": rec.scope.session_id,
        "kind": rec.kind.value,
        "text": rec.text,
        "subject": rec.subject,
        "predicate": rec.predicate,
        "object": rec.object,
        "entities": rec.entities,
        "metadata": rec.metadata,
        "valid_from": rec.valid_from,
        "valid_to": rec.valid_to,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "invalidated_at": rec.invalidated_at,
        "source_message_ids": rec.provenance.source_message_ids,
        "extractor": rec.provenance.extractor,
        "extractor_version": rec.provenance.extractor_version,
        "confidence": rec.provenance.confidence,
        "status": rec.status.value,
        "superseded_by": rec.superseded_by,
        "importance": rec.importance,
        "access_count": rec.access_count,
        "last_accessed_at": rec.last_accessed_at,
        "content_hash": rec.content_hash,
        "version": rec.version,
        "writer": rec.writer,
        "channel": rec.channel,
        "trust": rec.trust,
        "fts_scope": scope_token(tenant, rec.scope.user_id),
    }


def message_row(tenant: str, m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "tenant": tenant,
        "user_id": m.scope.user_id,
        "agent_id": m.scope.agent_id,
        "session_id": m.scope.session_id,
        "role": m.role,
        "name": m.name,
        "content": m.content,
        "timestamp": m.timestamp,
        "created_at": m.created_at,
        "metadata": m.metadata,
    }


def message_from_row(r: Any) -> StoredMessage:
    return StoredMessage(
        id=r.id,
        scope=Scope(user_id=r.user_id, agent_id=r.agent_id, session_id=r.session_id),
        role=r.role,
        name=r.name,
        content=r.content,
        timestamp=r.timestamp,
        created_at=r.created_at,
        metadata=r.metadata or {},
    )


def history_row(tenant: str, h: HistoryDraft) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "memory_id": h.memory_id,
        "event": h.event.value,
        "old": h.old,
        "new": h.new,
        "actor": h.actor,
        "reason": h.reason,
        "created_at": h.created_at,
    }


def history_from_row(r: Any) -> HistoryEntry:
    return HistoryEntry(
        id=r.id,
        memory_id=r.memory_id,
        event=r.event,
        old=r.old,
        new=r.new,
        actor=r.actor,
        reason=r.reason,
        created_at=r.created_at,
    )
