"""The durable "extraction pending" mark of a background add, and finding a turn's episode.

A background add (REST ``background: true``) answers 202 once its messages are stored and
extracts them afterwards, in the server process. A crash in between must not lose the
extraction, so the add writes onto each new episode, in the very transaction that stores the
messages, ``metadata.extraction = {"status": "pending", "retry": true, ...}``. Whoever
extracts the turn later takes the mark off in the transaction that writes the extracted
memories: the in-process job (`Memory.infer`), consolidation's retry step (which treats a
pending episode like a failed one), or the server's start-up recovery
(`memsvc.sdk.background`), which finds the marks with `PENDING` after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from memsvc.model.filters import AllOf, Condition, FilterNode
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryRecord, Scope, StoredMessage
from memsvc.storage.base import HistoryDraft, RecordStore, VisibilityQuery, WriteBatch
from memsvc.write.lookup import owner_filter
from memsvc.write.revision import snapshot

MARK_KEY = "extraction"  # the key of memsvc.write.extraction's failure marks too
PENDING_STATUS = "pending"
# the filter that finds pending episodes (a metadata condition, so every backend has it)
PENDING: FilterNode = Condition(f"{MARK_KEY}.status", "eq", PENDING_STATUS, metadata=True)


def pending_mark(extractor: str, now: datetime) -> dict[str, Any]:
    return {"status": PENDING_STATUS, "extractor": extractor, "retry": True, "attempts": 0,
            "since": now.isoformat()}


def is_pending(record: MemoryRecord) -> bool:
    mark = record.metadata.get(MARK_KEY)
    return isinstance(mark, dict) and mark.get("status") == PENDING_STATUS


def mark_pending(batch: WriteBatch, extractor: str, now: datetime) -> None:
    """Mark every episode this batch inserts as waiting for `extractor` (before apply)."""
    for record, _ in batch.inserts:
        if record.kind is MemoryKind.EPISODE:
            record.metadata = {**record.metadata, MARK_KEY: pending_mark(extractor, now)}


def clear_pending(
    batch: WriteBatch, episodes: Iterable[MemoryRecord], extractor: str, actor: str,
    now: datetime,
) -> None:
    """Take the pending mark off these episodes (their extraction is in this batch)."""
    for episode in episodes:
        if not is_pending(episode):
            continue
        metadata = {k: v for k, v in episode.metadata.items() if k != MARK_KEY}
        done = episode.model_copy(update={"metadata": metadata, "updated_at": now})
        batch.updates.append((done, None))
        batch.history.append(HistoryDraft(
            episode.id, HistoryEvent.UPDATE, snapshot(episode), snapshot(done), actor,
            f"background extraction by {extractor} done", now,
        ))


def owned_messages(
    messages: Iterable[StoredMessage], scope: Scope
) -> list[StoredMessage]:
    """The messages a write to `scope` may use: a store reads a scope's missing user as
    "any user", but a scope without a user owns only the messages without one."""
    if scope.user_id is not None:
        return list(messages)
    return [m for m in messages if m.scope.user_id is None]


def episodes_of(
    store: RecordStore, scope: Scope, messages: Sequence[StoredMessage]
) -> dict[str, MemoryRecord]:
    """The stored episode of each message, by message id: the episode of the same owner
    whose source is that very message (not merely one with the same words)."""
    found: dict[str, MemoryRecord] = {}
    owner = owner_filter(scope)
    for message in messages:
        at = Condition("valid_from", "eq", message.timestamp)
        query = VisibilityQuery(
            scope=scope, kinds=(MemoryKind.EPISODE.value,),
            filters=at if owner is None else AllOf((owner, at)),
        )
        cursor = None
        while message.id not in found:
            page, _ = store.list_memories(query, limit=200, after_id=cursor)
            for record in page:
                if record.provenance.source_message_ids == [message.id]:
                    found[message.id] = record
                    break
            if len(page) < 200:
                break
            cursor = page[-1].id
    return found


def pending_by_scope(
    store: RecordStore, scope: Scope | None = None
) -> Mapping[Scope, list[str]]:
    """The message ids of every pending episode, grouped by the exact scope it was added to."""
    query = VisibilityQuery(scope=scope or Scope(), kinds=(MemoryKind.EPISODE.value,),
                            filters=PENDING)
    out: dict[Scope, list[str]] = {}
    cursor = None
    while True:
        page, _ = store.list_memories(query, limit=500, after_id=cursor)
        for record in page:
            out.setdefault(record.scope, []).extend(record.provenance.source_message_ids)
        if len(page) < 500:
            return out
        cursor = page[-1].id
