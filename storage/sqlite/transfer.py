"""The SQLite side of `StoreTransfer` (storage/base.py): whole-store dumps for
`memsvc migrate-store`. Every row read passes its integrity check first (`served`), so a
forged row is never carried into another store and re-signed there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, union

from memsvc.model.records import HistoryEntry, StoredMessage
from memsvc.storage.batching import chunks
from memsvc.storage.integrity.guard import StoreIntegrity, history_select, message_select
from memsvc.storage.schema import history, memories, messages
from memsvc.storage.sqlite import rows
from memsvc.storage.table_counts import tenant_counts


class SQLiteTransferMixin:
    """Mixed into `SQLiteStore`: reads of every scope and status of the store's tenant."""

    tenant: str
    integrity: StoreIntegrity

    def _read(self) -> Any:  # provided by SQLiteStore
        raise NotImplementedError

    def transfer_tenants(self) -> list[str]:
        with self._read() as conn:
            found = conn.execute(union(*(select(t.c.tenant)
                                         for t in (memories, messages, history))))
            return sorted(found.scalars())

    def dump_messages(self, *, after_id: str | None, limit: int) -> list[StoredMessage]:
        stmt = message_select().where(messages.c.tenant == self.tenant)
        if after_id is not None:
            stmt = stmt.where(messages.c.id > after_id)
        with self._read() as conn:
            found = conn.execute(stmt.order_by(messages.c.id).limit(limit)).all()
        return [rows.message_from_row(r) for r in self.integrity.served("message", found)]

    def messages_by_id(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        out: dict[str, StoredMessage] = {}
        with self._read() as conn:
            for chunk in chunks(list(message_ids)):
                found = conn.execute(message_select().where(
                    messages.c.tenant == self.tenant, messages.c.id.in_(chunk))).all()
                for r in self.integrity.served("message", found):
                    out[r.id] = rows.message_from_row(r)
        return out

    def dump_history(self, memory_ids: Sequence[str]) -> dict[str, list[HistoryEntry]]:
        out: dict[str, list[HistoryEntry]] = {}
        with self._read() as conn:
            for chunk in chunks(list(memory_ids)):
                found = conn.execute(history_select().where(
                    history.c.tenant == self.tenant, history.c.memory_id.in_(chunk)
                ).order_by(history.c.id)).all()
                for r in self.integrity.served("history", found):
                    out.setdefault(r.memory_id, []).append(rows.history_from_row(r))
        return out

    def transfer_counts(self) -> dict[str, int]:
        with self._read() as conn:
            return tenant_counts(conn, self.tenant, memories)

