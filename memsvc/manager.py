"""The write decision: what each candidate memory does to the store.

For every candidate the manager picks ADD, UPDATE, INVALIDATE or NOOP against what the scope
already holds, and records the decision with its reason. Episodes (verbatim turns) are always
added: two people may say the same words twice and both times matter. Other kinds are checked
for exact duplicates within the scope; richer decisions (same subject and predicate with a new
value → INVALIDATE) build on this same entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from memsvc.extractors.base import Candidate
from memsvc.ids import content_hash, new_id
from memsvc.models import (
    HistoryEvent,
    MemoryChange,
    MemoryKind,
    MemoryRecord,
    Provenance,
    Scope,
)
from memsvc.storage.base import HistoryDraft, MemoryStore, VisibilityQuery, WriteBatch


def snapshot(record: MemoryRecord) -> dict[str, object]:
    """The JSON form of a memory as kept in history."""
    return record.model_dump(mode="json")


def record_from_candidate(
    candidate: Candidate,
    scope: Scope,
    *,
    extractor: str,
    extractor_version: str,
    now: datetime,
) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(),
        scope=scope,
        kind=candidate.kind,
        text=candidate.text,
        subject=candidate.subject,
        predicate=candidate.predicate,
        object=candidate.object,
        entities=candidate.entities,
        metadata=candidate.metadata,
        valid_from=candidate.valid_from,
        valid_to=candidate.valid_to,
        created_at=now,
        updated_at=now,
        provenance=Provenance(
            source_message_ids=candidate.source_message_ids,
            extractor=extractor,
            extractor_version=extractor_version,
            confidence=candidate.confidence,
        ),
        importance=candidate.importance,
        content_hash=content_hash(candidate.kind.value, candidate.text),
    )


class WriteManager:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def plan(
        self,
        candidates: Sequence[tuple[Candidate, str, str]],
        embeddings: np.ndarray,
        scope: Scope,
        *,
        now: datetime,
        actor: str,
        batch: WriteBatch,
    ) -> list[MemoryChange]:
        """Add the decisions for `candidates` (each with extractor name, version) to `batch`."""
        changes: list[MemoryChange] = []
        seen_in_batch: dict[str, str] = {}
        for (candidate, extractor, version), embedding in zip(candidates, embeddings, strict=True):
            record = record_from_candidate(
                candidate, scope, extractor=extractor, extractor_version=version, now=now
            )
            duplicate_of = None
            if candidate.kind is not MemoryKind.EPISODE:
                duplicate_of = seen_in_batch.get(record.content_hash)
                if duplicate_of is None:
                    existing = self._store.find_by_hash(
                        VisibilityQuery(scope=scope), record.content_hash
                    )
                    duplicate_of = existing.id if existing else None
            if duplicate_of is not None:
                reason = f"exact duplicate of {duplicate_of}"
                batch.history.append(
                    HistoryDraft(duplicate_of, HistoryEvent.NOOP, None, None, actor, reason, now)
                )
                changes.append(
                    MemoryChange(
                        id=duplicate_of,
                        event=HistoryEvent.NOOP,
                        text=record.text,
                        kind=record.kind,
                        reason=reason,
                    )
                )
                continue
            seen_in_batch[record.content_hash] = record.id
            reason = f"new {record.kind.value} from {extractor}"
            batch.inserts.append((record, embedding))
            batch.history.append(
                HistoryDraft(record.id, HistoryEvent.ADD, None, snapshot(record), actor, reason, now)
            )
            changes.append(
                MemoryChange(
                    id=record.id, event=HistoryEvent.ADD, text=record.text, kind=record.kind,
                    reason=reason,
                )
            )
        return changes


