"""A candidate turned into a stored record, and a known record said once more.

The record forms every write path shares (the manager's decisions, consolidation's steps,
the SDK's own writes): the JSON snapshot history keeps, a new record built from a candidate,
and the reinforced copy of a memory that was said again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memsvc.extractors.base import Candidate
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Provenance, Scope


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
    """A new memory in `scope` for `candidate`, backed by its turns and its extractor."""
    metadata = dict(candidate.metadata)
    if candidate.kind is not MemoryKind.EPISODE:
        metadata.setdefault("extractor", f"{extractor}/{extractor_version}")
    return MemoryRecord(
        id=new_id(),
        scope=scope,
        kind=candidate.kind,
        text=candidate.text,
        subject=candidate.subject,
        predicate=candidate.predicate,
        object=candidate.object,
        entities=candidate.entities,
        metadata=metadata,
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


MAX_SOURCES = 50


def _merged_sources(provenance: Provenance, sources: Sequence[str]) -> Provenance:
    """The provenance of a memory said again: the new turns also back it (capped)."""
    merged = list(provenance.source_message_ids)
    merged += [s for s in sources if s not in merged]
    return provenance.model_copy(update={"source_message_ids": merged[:MAX_SOURCES]})


def reinforced(record: MemoryRecord, sources: Sequence[str], now: datetime) -> MemoryRecord:
    """A copy of `record` that remembers being said once more, and by which turns."""
    metadata = dict(record.metadata)
    metadata["reinforced"] = int(metadata.get("reinforced", 0)) + 1
    return record.model_copy(
        update={
            "metadata": metadata,
            "provenance": _merged_sources(record.provenance, sources),
            "importance": min(1.0, round(record.importance + 0.05, 4)),
            "updated_at": now,
        }
    )


def reinforce_in_place(record: MemoryRecord, sources: Sequence[str]) -> None:
    """Reinforce a memory that is still only a pending insert of this batch."""
    record.metadata["reinforced"] = int(record.metadata.get("reinforced", 0)) + 1
    record.provenance = _merged_sources(record.provenance, sources)
    record.importance = min(1.0, round(record.importance + 0.05, 4))
