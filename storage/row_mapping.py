"""The `memories` row of storage/schema.py and `MemoryRecord`, both ways: the mapping both
backends share (they hold the same columns; each adds its own index columns beside them)."""

from __future__ import annotations

from typing import Any

from memsvc.model.records import MemoryRecord, Provenance, Scope
from memsvc.storage.schema import scope_token


def record_from_row(row: Any) -> MemoryRecord:
    return MemoryRecord(
        id=row.id,
        scope=Scope(user_id=row.user_id, agent_id=row.agent_id, session_id=row.session_id),
        kind=row.kind,
        text=row.text,
        subject=row.subject,
        predicate=row.predicate,
        object=row.object,
        entities=row.entities or [],
        metadata=row.metadata or {},
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        created_at=row.created_at,
        updated_at=row.updated_at,
        invalidated_at=row.invalidated_at,
        provenance=Provenance(
            source_message_ids=row.source_message_ids or [],
            extractor=row.extractor,
            extractor_version=row.extractor_version,
            confidence=row.confidence,
        ),
        status=row.status,
        superseded_by=row.superseded_by,
        importance=row.importance,
        access_count=row.access_count,
        last_accessed_at=row.last_accessed_at,
        content_hash=row.content_hash,
        version=row.version,
    )


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
        "fts_scope": scope_token(tenant, rec.scope.user_id),
    }
