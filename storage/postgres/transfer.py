"""The PostgreSQL side of `StoreTransfer` (storage/base.py): whole-store dumps for
`memsvc migrate-store`.

Listing the tenants is the one read that must cross tenants, which the row-level security
policies forbid to the store's own role; it runs as the URL's role (the owner), which sees
every row when it is privileged (the embedded server's `postgres`). An unprivileged owner is
bound by the policies too (FORCE ROW LEVEL SECURITY), so then the tenants are those named by
API keys, plus the store's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from sqlalchemy import Connection, create_engine, select, union
from sqlalchemy.pool import NullPool

from memsvc.model.records import HistoryEntry, StoredMessage
from memsvc.storage.batching import chunks
from memsvc.storage.postgres.tables import pg_memories
from memsvc.storage.row_mapping import history_from_row, message_from_row
from memsvc.storage.schema import api_keys, history, messages
from memsvc.storage.table_counts import tenant_counts


class PostgresTransferMixin:
    """Mixed into `PostgresStore`: reads of every scope and status of the store's tenant."""

    tenant: str
    url: str

    def _read(self) -> AbstractContextManager[Connection]:  # provided by PostgresStore
        raise NotImplementedError

    def transfer_tenants(self) -> list[str]:
        owner = create_engine(self.url, poolclass=NullPool)
        try:
            with owner.connect() as conn:
                found = set(conn.execute(union(
                    *(select(t.c.tenant) for t in (pg_memories, messages, history)),
                    select(api_keys.c.tenant),
                )).scalars())
        finally:
            owner.dispose()
        with self._read() as conn:  # the store's own tenant, if it has anything
            if conn.execute(select(pg_memories.c.pk).limit(1)).first() or conn.execute(
                    select(messages.c.pk).limit(1)).first():
                found.add(self.tenant)
        return sorted(found)

    def dump_messages(self, *, after_id: str | None, limit: int) -> list[StoredMessage]:
        stmt = select(messages).where(messages.c.tenant == self.tenant)
        if after_id is not None:
            stmt = stmt.where(messages.c.id > after_id)
        with self._read() as conn:
            found = conn.execute(stmt.order_by(messages.c.id).limit(limit)).all()
        return [message_from_row(r) for r in found]

    def messages_by_id(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        out: dict[str, StoredMessage] = {}
        with self._read() as conn:
            for chunk in chunks(message_ids):
                for r in conn.execute(select(messages).where(
                        messages.c.tenant == self.tenant, messages.c.id.in_(chunk))):
                    out[r.id] = message_from_row(r)
        return out

    def dump_history(self, memory_ids: Sequence[str]) -> dict[str, list[HistoryEntry]]:
        out: dict[str, list[HistoryEntry]] = {}
        with self._read() as conn:
            for chunk in chunks(memory_ids):
                for r in conn.execute(select(history).where(
                        history.c.tenant == self.tenant, history.c.memory_id.in_(chunk)
                ).order_by(history.c.id)):
                    out.setdefault(r.memory_id, []).append(history_from_row(r))
        return out

    def transfer_counts(self) -> dict[str, int]:
        with self._read() as conn:
            return tenant_counts(conn, self.tenant, pg_memories)


