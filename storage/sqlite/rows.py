"""Rows of the SQLite tables ↔ the model's records, in one place.

The store, the graph backfill migration (0003) and every read turn rows into the same
records, so a column added to the schema is mapped here once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from memsvc.model.records import (
    HistoryEntry,
    Scope,
    StoredMessage,
)
from memsvc.storage.base import HistoryDraft

# the mapping both backends share, used through this module by the SQLite store
from memsvc.storage.row_mapping import memory_row, record_from_row  # noqa: F401

SCOPE_FIELDS = ("user_id", "agent_id", "session_id")




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


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    """`items` in slices of `size`: SQLite caps the parameters of one statement."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
