"""A store's writes that touch many rows at once, each row signed into its chain (both
backends; what differs comes from the store's `Layout`).

Kept apart from the stores so they stay about their shape: history rows (each in
the chain of its memory's user), a scope's hard erase (the chain records every memory that
went and adjusts the live counts its head keeps) and a scope's soft delete (every row that
passes its check is re-signed; one that fails is left alone: never re-signed, so never
laundered, and still not served).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from memsvc.model.errors import NotFoundError
from memsvc.model.records import HistoryEvent, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import HistoryDraft
from memsvc.storage.batching import chunks
from memsvc.storage.integrity.chain import ChainWriter
from memsvc.storage.integrity.codec import scope_key
from memsvc.storage.integrity.guard import StoreIntegrity
from memsvc.storage.row_mapping import history_row, memory_row
from memsvc.storage.schema import history, messages


def note_erased(
    chain: ChainWriter,
    tenant: str,
    erased_memories: Sequence[tuple[str, str | None]],
    erased_history: Sequence[str | None],
) -> None:
    """The chain records each erased memory; the heads' live counts go down."""
    for memory_id, user_id in erased_memories:
        chain.note(tenant, scope_key(user_id), f"mem:{memory_id}", "delete")
        chain.count(tenant, scope_key(user_id), "memories", -1)
    for user, n in Counter(erased_history).items():
        chain.count(tenant, scope_key(user), "history", -n)


def update_memory(
    conn: Connection, guard: StoreIntegrity, chain: ChainWriter, tenant: str,
    rec: MemoryRecord, extra: Mapping[str, Any],
) -> int:
    """Rewrite a memory's row (plus the backend's `extra` columns), re-signed; a memory moved
    to another user leaves one chain for the other. Returns its pk."""
    memories = guard.layout.memories
    stored = conn.execute(
        select(memories.c.pk, memories.c.created_at, memories.c.user_id)
        .where(memories.c.tenant == tenant, memories.c.id == rec.id)
    ).first()
    if stored is None:
        raise NotFoundError(f"no memory with id {rec.id!r}", field="id")
    scope, was = scope_key(rec.scope.user_id), scope_key(stored.user_id)
    if scope != was:
        chain.note(tenant, was, f"mem:{rec.id}", "move")
        chain.count(tenant, was, "memories", -1)
        chain.count(tenant, scope, "memories", +1)
    values = memory_row(tenant, rec)
    values["created_at"] = stored.created_at  # fixed at insert; signed as stored
    values = guard.sign(chain, "memory", tenant, scope, values, event="update")
    for fixed in ("id", "tenant", "created_at"):
        values.pop(fixed)
    conn.execute(update(memories).where(memories.c.pk == stored.pk)
                 .values(**values, **extra))
    return int(stored.pk)


def hard_delete(
    conn: Connection, guard: StoreIntegrity, chain: ChainWriter, tenant: str, memory_id: str
) -> tuple[int, str | None]:
    """Erase a memory and its history (the chain keeps that it was erased); returns its pk
    (for the backend's vector index) and user."""
    memories = guard.layout.memories
    gone = conn.execute(
        delete(memories)
        .where(memories.c.tenant == tenant, memories.c.id == memory_id)
        .returning(memories.c.pk, memories.c.user_id)
    ).first()
    if gone is None:
        raise NotFoundError(f"no memory with id {memory_id!r}", field="id")
    erased = conn.execute(
        delete(history)
        .where(history.c.tenant == tenant, history.c.memory_id == memory_id)
        .returning(history.c.chain_user)
    ).scalars().all()
    note_erased(chain, tenant, [(memory_id, gone.user_id)], erased)
    return int(gone.pk), gone.user_id


def history_rows(
    conn: Connection,
    guard: StoreIntegrity,
    chain: ChainWriter,
    tenant: str,
    drafts: Sequence[HistoryDraft],
    owners: dict[str, str | None],
) -> list[dict[str, Any]]:
    """Signed history rows, each in the chain of its memory's user (looked up when the
    write does not carry the memory)."""
    memories = guard.layout.memories
    missing = list({h.memory_id for h in drafts} - owners.keys())
    for chunk in chunks(missing):
        owners.update((row.id, row.user_id) for row in conn.execute(
            select(memories.c.id, memories.c.user_id)
            .where(memories.c.tenant == tenant, memories.c.id.in_(chunk))
        ))
    out = []
    for h in drafts:
        scope = scope_key(owners.get(h.memory_id))
        values = {**history_row(tenant, h), "chain_user": scope}
        out.append(guard.sign(chain, "history", tenant, scope, values, event="insert",
                              ref=h.memory_id))
    return out


def erase(
    conn: Connection,
    guard: StoreIntegrity,
    chain: ChainWriter,
    tenant: str,
    scope: Scope,
    where: Any,
    message_scope: list[Any],
) -> int:
    """Hard-delete a scope: its memories, their vectors, links and history, its messages.
    Nothing is signed: erased rows leave only their chain entries."""
    layout = guard.layout
    memories = layout.memories
    found = conn.execute(select(memories.c.pk, memories.c.id, memories.c.user_id)
                         .where(where)).all()
    erased_history: list[str | None] = []
    if found:
        layout.drop_vectors(conn, [r.pk for r in found])
        for chunk in chunks([r.pk for r in found]):
            conn.execute(delete(memories).where(memories.c.pk.in_(chunk)))
        layout.purge_orphans(conn, tenant, scope)  # links went with the rows (cascade)
        for chunk in chunks([r.id for r in found]):
            erased_history += conn.execute(
                delete(history)
                .where(history.c.tenant == tenant, history.c.memory_id.in_(chunk))
                .returning(history.c.chain_user)
            ).scalars().all()
    note_erased(chain, tenant, [(r.id, r.user_id) for r in found], erased_history)
    erased_messages = conn.execute(
        delete(messages).where(*message_scope).returning(messages.c.user_id)
    ).scalars().all()
    for user, n in Counter(erased_messages).items():
        chain.count(tenant, scope_key(user), "messages", -n)
    return len(found)


def mark_deleted(
    conn: Connection,
    guard: StoreIntegrity,
    chain: ChainWriter,
    tenant: str,
    where: Any,
    at: datetime,
    actor: str,
) -> int:
    """Soft-delete a scope: status `deleted`, re-signed, with a history entry each."""
    memories = guard.layout.memories
    found = guard.served("memory", conn.execute(guard.layout.memory_select().where(where)))
    if not found:
        return 0
    guard.layout.vectors_deleted(conn, [r.pk for r in found])
    drafts = []
    for row in found:
        if row.status != MemoryStatus.DELETED:
            drafts.append(HistoryDraft(row.id, HistoryEvent.DELETE, None,
                                       {"status": MemoryStatus.DELETED.value}, actor,
                                       "delete_all", at))
        changes = {"status": MemoryStatus.DELETED.value, "invalidated_at": at,
                   "updated_at": at}
        stored = {k: v for k, v in row._mapping.items() if k != "chain_digest"}
        sealed = guard.sign(chain, "memory", tenant, scope_key(row.user_id),
                            {**stored, **changes}, event="update")
        conn.execute(update(memories).where(memories.c.pk == row.pk).values(
            **changes, chain_seq=sealed["chain_seq"], mac=sealed["mac"],
            mac_key=sealed["mac_key"],
        ))
    if drafts:
        owners = {row.id: row.user_id for row in found}
        conn.execute(insert(history), history_rows(conn, guard, chain, tenant, drafts, owners))
    return len(found)
