"""The SQLite implementation of `MemoryStore`: rows, FTS5 and vec0 in one file.

A memory's row, its vector, its FTS entry (kept by triggers) and its history are written in
one `BEGIN IMMEDIATE` transaction, so a crash leaves all of them or none. WAL mode lets
readers run while a writer commits; the busy timeout makes concurrent writers (threads or
processes) wait rather than fail. Each instance sees one tenant; `for_tenant` gives views of
the same file that share the connection pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from memsvc.model.errors import NotFoundError, StoreError
from memsvc.model.records import (
    HistoryEntry,
    HistoryEvent,
    MemoryRecord,
    MemoryStatus,
    Scope,
    StoredMessage,
    StoreStats,
)
from memsvc.storage.base import Hit, VisibilityQuery, WriteBatch
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.schema import UTCDateTime, history, memories, messages
from memsvc.storage.sqlite import diagnostics, lexical, rows, vectors
from memsvc.storage.sqlite.engine import open_engine, reading
from memsvc.storage.sqlite.graph import GraphStoreMixin, link_memories, purge_orphans


class SQLiteStore(GraphStoreMixin):
    """One SQLite file; each instance sees exactly one tenant's rows."""

    def __init__(
        self,
        path: str | Path,
        *,
        tenant: str = "default",
        embedding_dim: int,
        _engine: Engine | None = None,
    ) -> None:
        self.path = Path(path)
        self.tenant = tenant
        self.embedding_dim = embedding_dim
        # a tenant view borrows the engine of the store it came from and never disposes it
        self._owns_engine = _engine is None
        self.engine = open_engine(self.path, embedding_dim) if _engine is None else _engine

    def for_tenant(self, tenant: str) -> SQLiteStore:
        """The same file seen by another tenant (shares the connection pool)."""
        return SQLiteStore(
            self.path, tenant=tenant, embedding_dim=self.embedding_dim, _engine=self.engine
        )

    def key_store(self) -> ApiKeyStore:
        """The API keys of every tenant, on this file's `api_keys` table and pool."""
        return ApiKeyStore(self.engine)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(write=True) as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"write failed and was rolled back: {exc.orig}") from exc

    def _read(self) -> Any:
        return reading(self.engine)

    # -- writes ---------------------------------------------------------------------------

    def apply(self, batch: WriteBatch) -> None:
        if batch.is_empty():
            return
        tenant = self.tenant
        with self._write() as conn:
            if batch.messages:
                conn.execute(insert(messages), [rows.message_row(tenant, m)
                                                for m in batch.messages])
            if batch.inserts:
                self._insert_memories(conn, batch.inserts)
                link_memories(conn, tenant, [r for r, _ in batch.inserts], replace=False)
            for rec, embedding in batch.updates:
                self._update_memory(conn, rec, embedding)
            if batch.updates:
                link_memories(conn, tenant, [r for r, _ in batch.updates], replace=True)
            for memory_id in batch.hard_deletes:
                self._hard_delete(conn, memory_id)
            if batch.history:
                conn.execute(insert(history), [rows.history_row(tenant, h)
                                               for h in batch.history])

    def _insert_memories(
        self, conn: Connection, items: list[tuple[MemoryRecord, np.ndarray]]
    ) -> None:
        pks = conn.execute(
            insert(memories).returning(memories.c.pk, sort_by_parameter_order=True),
            [rows.memory_row(self.tenant, rec) for rec, _ in items],
        ).scalars().all()
        vectors.insert_vectors(conn, self.tenant, pks, items)

    def _update_memory(
        self, conn: Connection, rec: MemoryRecord, embedding: np.ndarray | None
    ) -> None:
        values = rows.memory_row(self.tenant, rec)
        for fixed in ("id", "tenant", "created_at"):
            values.pop(fixed)
        pk = conn.execute(
            update(memories)
            .where(memories.c.tenant == self.tenant, memories.c.id == rec.id)
            .values(**values)
            .returning(memories.c.pk)
        ).scalar_one_or_none()
        if pk is None:
            raise NotFoundError(f"no memory with id {rec.id!r}", field="id")
        vectors.update_vector(conn, pk, rec.status.value, embedding)

    def _hard_delete(self, conn: Connection, memory_id: str) -> None:
        pk = conn.execute(
            delete(memories)
            .where(memories.c.tenant == self.tenant, memories.c.id == memory_id)
            .returning(memories.c.pk)
        ).scalar_one_or_none()
        if pk is None:
            raise NotFoundError(f"no memory with id {memory_id!r}", field="id")
        conn.exec_driver_sql("DELETE FROM memory_vec WHERE rowid = ?", (pk,))
        conn.execute(
            delete(history).where(history.c.tenant == self.tenant, history.c.memory_id == memory_id)
        )

    def record_access(self, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        if not accesses:
            return
        with self._write() as conn:
            conn.execute(
                update(memories)
                .where(memories.c.tenant == self.tenant, memories.c.id == bindparam("memory_id"))
                .values(
                    access_count=memories.c.access_count + bindparam("count"),
                    last_accessed_at=bindparam("at", type_=UTCDateTime()),
                ),
                [
                    {"memory_id": memory_id, "count": count, "at": at}
                    for memory_id, (count, at) in accesses.items()
                ],
            )

    def delete_scope(self, scope: Scope, *, hard: bool, at: datetime, actor: str) -> int:
        """Delete every memory of a scope: soft marks them deleted, hard erases all traces."""
        where = visibility_clause(self.tenant, VisibilityQuery(scope=scope, statuses=()))
        with self._write() as conn:
            found = conn.execute(select(memories.c.pk, memories.c.id).where(where)).all()
            pks = [r.pk for r in found]
            if not pks:
                if hard:
                    conn.execute(delete(messages).where(*self._message_scope(scope)))
                return 0
            # vec0 rejects multi-row UPDATEs on a partitioned table, so go row by row.
            conn.exec_driver_sql(
                "DELETE FROM memory_vec WHERE rowid = ?"
                if hard
                else "UPDATE memory_vec SET status = 'deleted' WHERE rowid = ?",
                [(pk,) for pk in pks],
            )
            if hard:
                self._erase(conn, scope, pks, [r.id for r in found])
            else:
                self._mark_deleted(conn, pks, at, actor)
            return len(pks)

    def _erase(self, conn: Connection, scope: Scope, pks: list[int], ids: list[str]) -> None:
        conn.execute(delete(memories).where(memories.c.pk.in_(pks)))
        purge_orphans(conn, self.tenant, scope)  # links went with the rows (cascade)
        for chunk in rows.chunks(ids):
            conn.execute(
                delete(history).where(
                    history.c.tenant == self.tenant, history.c.memory_id.in_(chunk)
                )
            )
        conn.execute(delete(messages).where(*self._message_scope(scope)))

    def _mark_deleted(self, conn: Connection, pks: list[int], at: datetime, actor: str) -> None:
        active = [
            r.id
            for r in conn.execute(
                select(memories.c.id).where(
                    memories.c.pk.in_(pks), memories.c.status != MemoryStatus.DELETED
                )
            )
        ]
        conn.execute(
            update(memories)
            .where(memories.c.pk.in_(pks))
            .values(status=MemoryStatus.DELETED.value, invalidated_at=at, updated_at=at)
        )
        if active:
            conn.execute(
                insert(history),
                [
                    {
                        "tenant": self.tenant,
                        "memory_id": mid,
                        "event": HistoryEvent.DELETE.value,
                        "old": None,
                        "new": {"status": MemoryStatus.DELETED.value},
                        "actor": actor,
                        "reason": "delete_all",
                        "created_at": at,
                    }
                    for mid in active
                ],
            )

    def _message_scope(self, scope: Scope) -> list[Any]:
        parts: list[Any] = [messages.c.tenant == self.tenant]
        for name in rows.SCOPE_FIELDS:
            value = getattr(scope, name)
            if value is not None:
                parts.append(messages.c[name] == value)
        return parts

    def reset(self) -> None:
        """Erase everything this tenant has, from every table and index."""
        with self._write() as conn:
            conn.exec_driver_sql("DELETE FROM memory_vec WHERE tenant = ?", (self.tenant,))
            for tbl in (memories, messages, history):
                conn.execute(delete(tbl).where(tbl.c.tenant == self.tenant))
            purge_orphans(conn, self.tenant, None)

    # -- reads ----------------------------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        return self.get_many([memory_id]).get(memory_id)

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]:
        if not memory_ids:
            return {}
        with self._read() as conn:
            found = conn.execute(
                select(memories).where(
                    memories.c.tenant == self.tenant, memories.c.id.in_(list(memory_ids))
                )
            ).all()
        return {row.id: rows.record_from_row(row) for row in found}

    def list_memories(
        self, query: VisibilityQuery, *, limit: int, after_id: str | None = None
    ) -> tuple[list[MemoryRecord], int]:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            count = select(func.count()).select_from(memories).where(where)
            total = conn.execute(count).scalar_one()
            stmt = select(memories).where(where)
            if after_id is not None:
                stmt = stmt.where(memories.c.id > after_id)
            found = conn.execute(stmt.order_by(memories.c.id).limit(limit)).all()
        return [rows.record_from_row(r) for r in found], int(total)

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            row = conn.execute(
                select(memories).where(where, memories.c.content_hash == content_hash).limit(1)
            ).first()
        return rows.record_from_row(row) if row is not None else None

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]:
        """KNN restricted to the scope inside the vec0 query (partition + metadata columns).

        With filters or a point in time, the rows that pass them are found first and scored
        exactly, so a selective filter never starves the result the way post-filtering a
        global top-k would.
        """
        vector = vectors.blob(embedding)
        if query.filters is None and query.as_of is None:
            pairs = vectors.knn(self.engine, self.tenant, query, vector, k)
        else:
            with self._read() as conn:
                pairs = vectors.exact_search(conn, self.tenant, query, vector, k)
        return [Hit(memory_id, 1.0 - float(d)) for memory_id, d in pairs]

    def embeddings(self, memory_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of some memories (consolidation compares them, never re-embeds)."""
        with self._read() as conn:
            return vectors.read_embeddings(conn, self.tenant, memory_ids)

    def lexical_search(self, query: VisibilityQuery, text: str, k: int) -> list[Hit]:
        """BM25 over the scope for the user's `text` (made into a safe FTS5 query here)."""
        return self.bm25_search(query, lexical.fts5_match(text), k)

    def bm25_search(self, query: VisibilityQuery, match: str, k: int) -> list[Hit]:
        """FTS5 BM25 over the scope for a ready FTS5 `match` (SQLite only; tests use it)."""
        if not match:
            return []
        with self._read() as conn:
            return lexical.bm25(conn, self.tenant, query, match, k)

    def history(self, memory_id: str) -> list[HistoryEntry]:
        with self._read() as conn:
            found = conn.execute(
                select(history)
                .where(history.c.tenant == self.tenant, history.c.memory_id == memory_id)
                .order_by(history.c.id)
            ).all()
        return [rows.history_from_row(r) for r in found]

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]:
        with self._read() as conn:
            found = conn.execute(
                select(messages)
                .where(*self._message_scope(scope))
                .order_by(messages.c.timestamp, messages.c.pk)
                .limit(limit)
            ).all()
        return [rows.message_from_row(r) for r in found]

    def stats(self) -> StoreStats:
        with self._read() as conn:
            return diagnostics.store_stats(conn, self.tenant, self.path)

    def consistency(self) -> dict[str, Any]:
        """Do the indexes agree with the rows? Used after crashes and by `memsvc stats`."""
        with self._read() as conn:
            return diagnostics.consistency_report(conn)


def open_sqlite_key_store(path: str | Path) -> ApiKeyStore:
    """The key store of a file on its own (the `memsvc keys` commands): it accepts the file's
    vector width whatever it is, and closing it closes its engine."""
    return ApiKeyStore(open_engine(Path(path), None), owns_engine=True)
