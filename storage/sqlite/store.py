"""The SQLite implementation of `MemoryStore`: rows, FTS5 and vec0 in one file.

A memory's row, its vector, its FTS entry (kept by triggers) and its history are written in
one `BEGIN IMMEDIATE` transaction, so a crash leaves all of them or none. WAL mode lets
readers run while a writer commits; the busy timeout makes concurrent writers (threads or
processes) wait rather than fail. Each instance sees one tenant; `for_tenant` gives views of
the same file that share the connection pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from memsvc.model.errors import StoreError
from memsvc.model.records import (
    HistoryEntry,
    MemoryRecord,
    Scope,
    StoredMessage,
    StoreStats,
)
from memsvc.storage.base import Hit, SourceKey, VisibilityQuery, WriteBatch
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.integrity import ChainWriter, scope_key
from memsvc.storage.integrity import sealed as sealed_writes
from memsvc.storage.integrity.guard import StoreIntegrity, history_select, message_select
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.schema import UTCDateTime, history, integrity_heads, memories, messages
from memsvc.storage.sqlite import diagnostics, lexical, rows, vectors
from memsvc.storage.sqlite.engine import open_engine, reading
from memsvc.storage.sqlite.graph import GraphStoreMixin, link_memories, purge_orphans
from memsvc.storage.sqlite.integrity import open_integrity
from memsvc.storage.sqlite.transfer import SQLiteTransferMixin


class SQLiteStore(GraphStoreMixin, SQLiteTransferMixin):
    """One SQLite file; each instance sees exactly one tenant's rows."""

    def __init__(
        self,
        path: str | Path,
        *,
        tenant: str = "default",
        embedding_dim: int,
        _engine: Engine | None = None,
        _integrity: StoreIntegrity | None = None,
    ) -> None:
        self.path = Path(path)
        self.tenant = tenant
        self.embedding_dim = embedding_dim
        # a tenant view borrows the engine of the store it came from and never disposes it
        self._owns_engine = _engine is None
        self.engine = open_engine(self.path, embedding_dim) if _engine is None else _engine
        if _integrity is None:
            try:  # the key, the witness, and every scope checked before anything is served
                _integrity = open_integrity(self.engine)
                with self._read() as conn:
                    _integrity.check_open(conn)
            except BaseException:
                if self._owns_engine:
                    self.engine.dispose()
                raise
        self.integrity = _integrity
        self._scope_sizes = vectors.ScopeSizes()  # whether a KNN splits over shards
        # the layout's `memories_by_id` with the ids as one JSON parameter: nothing expanded
        # per execution, one compiled statement whatever the number of ids
        json_ids: Any = select(column("value")).select_from(func.json_each(bindparam("ids")))
        self._memories_by_id = self._memory_select().where(
            memories.c.tenant == bindparam("tenant"), memories.c.id.in_(json_ids)
        )

    def for_tenant(self, tenant: str) -> SQLiteStore:
        """The same file seen by another tenant (shares the connection pool)."""
        return SQLiteStore(
            self.path, tenant=tenant, embedding_dim=self.embedding_dim, _engine=self.engine,
            _integrity=self.integrity,
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

    def _memory_select(self) -> Any:
        """Memory rows with the chain digest their check needs."""
        return self.integrity.layout.memory_select()


    # -- writes ---------------------------------------------------------------------------

    def apply(self, batch: WriteBatch) -> None:
        """One transaction; every row written is signed and appended to its owner's chain
        (memsvc.storage.integrity), and the witness learns the new heads after the commit."""
        if batch.is_empty():
            return
        tenant, guard = self.tenant, self.integrity
        with self._write() as conn:
            chain = guard.writer(conn)
            if batch.messages:
                conn.execute(insert(messages), [
                    guard.sign(chain, "message", tenant, scope_key(m.scope.user_id),
                               rows.message_row(tenant, m), event="insert")
                    for m in batch.messages
                ])
            owners = {r.id: r.scope.user_id for r, _ in [*batch.inserts, *batch.updates]}
            if batch.inserts:
                self._insert_memories(conn, chain, batch.inserts)
                link_memories(conn, tenant, [r for r, _ in batch.inserts], replace=False)
            for rec, embedding in batch.updates:
                self._update_memory(conn, chain, rec, embedding)
            if batch.updates:
                link_memories(conn, tenant, [r for r, _ in batch.updates], replace=True)
            for memory_id in batch.hard_deletes:
                owners[memory_id] = self._hard_delete(conn, chain, memory_id)
            if batch.history:
                conn.execute(insert(history), sealed_writes.history_rows(
                    conn, guard, chain, tenant, batch.history, owners
                ))
            guard.save(conn, chain)
        guard.committed(chain)

    def _insert_memories(
        self, conn: Connection, chain: ChainWriter, items: list[tuple[MemoryRecord, np.ndarray]]
    ) -> None:
        pks = conn.execute(
            insert(memories).returning(memories.c.pk, sort_by_parameter_order=True),
            [
                self.integrity.sign(chain, "memory", self.tenant, scope_key(rec.scope.user_id),
                                    rows.memory_row(self.tenant, rec), event="insert")
                for rec, _ in items
            ],
        ).scalars().all()
        vectors.insert_vectors(conn, self.tenant, pks, items)

    def _update_memory(
        self, conn: Connection, chain: ChainWriter, rec: MemoryRecord,
        embedding: np.ndarray | None,
    ) -> None:
        pk = sealed_writes.update_memory(conn, self.integrity, chain, self.tenant, rec, {})
        vectors.update_vector(conn, pk, rec.status.value, rec.trust, embedding)

    def _hard_delete(self, conn: Connection, chain: ChainWriter, memory_id: str) -> str | None:
        """Erase a memory, its vector and history; the chain keeps that it was erased."""
        pk, user_id = sealed_writes.hard_delete(conn, self.integrity, chain, self.tenant,
                                                memory_id)
        self.integrity.layout.drop_vectors(conn, [pk])
        return user_id

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
            chain = self.integrity.writer(conn)
            if hard:
                n = sealed_writes.erase(conn, self.integrity, chain, self.tenant, scope, where,
                                        self._message_scope(scope))
            else:
                n = sealed_writes.mark_deleted(conn, self.integrity, chain, self.tenant, where,
                                               at, actor)
            self.integrity.save(conn, chain)
        self.integrity.committed(chain)
        return n

    def _message_scope(self, scope: Scope) -> list[Any]:
        parts: list[Any] = [messages.c.tenant == self.tenant]
        for name in rows.SCOPE_FIELDS:
            value = getattr(scope, name)
            if value is not None:
                parts.append(messages.c[name] == value)
        return parts

    def reset(self) -> None:
        """Erase everything this tenant has, from every table and index; each of its chains
        is pruned to one "erase" entry, so an older copy of the file still shows as older."""
        with self._write() as conn:
            chain = self.integrity.writer(conn)
            for scope in conn.execute(select(integrity_heads.c.scope)
                                      .where(integrity_heads.c.tenant == self.tenant)).scalars():
                chain.erase(self.tenant, scope)
            conn.exec_driver_sql("DELETE FROM memory_vec WHERE tenant = ?", (self.tenant,))
            for tbl in (memories, messages, history):
                conn.execute(delete(tbl).where(tbl.c.tenant == self.tenant))
            purge_orphans(conn, self.tenant, None)
            self.integrity.save(conn, chain)
        self.integrity.committed(chain)

    # -- reads ----------------------------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        """The memory, None if there is none; IntegrityError if it fails its check."""
        with self._read() as conn:
            found = conn.execute(self._memory_select().where(
                memories.c.tenant == self.tenant, memories.c.id == memory_id
            )).all()
        served = self.integrity.served("memory", found, strict=True)
        return rows.record_from_row(served[0]) if served else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]:
        """Those that exist and pass their integrity check (the others are refused)."""
        if not memory_ids:
            return {}
        with self._read() as conn:
            found = conn.execute(self._memories_by_id, {
                "tenant": self.tenant, "ids": json.dumps(list(memory_ids))}).all()
        return {row.id: rows.record_from_row(row)
                for row in self.integrity.served("memory", found)}

    def source_keys(self, memory_ids: Sequence[str]) -> dict[str, SourceKey]:
        """Kind, validity end and sources of those that exist, unchecked (`SourceKey`)."""
        if not memory_ids:
            return {}
        with self._read() as conn:
            return rows.source_keys(conn, self.tenant, memory_ids)

    def list_memories(
        self, query: VisibilityQuery, *, limit: int, after_id: str | None = None
    ) -> tuple[list[MemoryRecord], int]:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            if query.scope.user_id is not None:  # a user's chain: no row missing or added
                self.integrity.check_scope(conn, self.tenant, query.scope.user_id, "memories")
            count = select(func.count()).select_from(memories).where(where)
            total = conn.execute(count).scalar_one()
            stmt = self._memory_select().where(where)
            if after_id is not None:
                stmt = stmt.where(memories.c.id > after_id)
            found = conn.execute(stmt.order_by(memories.c.id).limit(limit)).all()
        served = self.integrity.served("memory", found)
        return [rows.record_from_row(r) for r in served], int(total) - len(found) + len(served)

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            found = conn.execute(
                self._memory_select().where(where, memories.c.content_hash == content_hash).limit(1)
            ).all()
        served = self.integrity.served("memory", found)
        return rows.record_from_row(served[0]) if served else None

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]:
        """KNN restricted to the scope inside the vec0 query (partition + metadata columns).

        With filters or a point in time, the rows that pass them are found first and scored
        exactly, so a selective filter never starves the result the way post-filtering a
        global top-k would.
        """
        vector = vectors.blob(embedding)
        if query.filters is None and query.as_of is None:
            pairs = vectors.knn(self.engine, self.tenant, query, vector, k,
                                 self._scope_sizes)
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
                history_select()
                .where(history.c.tenant == self.tenant, history.c.memory_id == memory_id)
                .order_by(history.c.id)
            ).all()
        return [rows.history_from_row(r) for r in self.integrity.served("history", found)]

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]:
        with self._read() as conn:
            if scope.user_id is not None:
                self.integrity.check_scope(conn, self.tenant, scope.user_id, "messages")
            found = conn.execute(
                message_select()
                .where(*self._message_scope(scope))
                .order_by(messages.c.timestamp, messages.c.pk)
                .limit(limit)
            ).all()
        return [rows.message_from_row(r) for r in self.integrity.served("message", found)]

    def stats(self) -> StoreStats:
        with self._read() as conn:
            return diagnostics.store_stats(conn, self.tenant, self.path)

    def consistency(self) -> dict[str, Any]:
        """Do the indexes agree with the rows? Used after crashes and by `memsvc stats`."""
        with self._read() as conn:
            report = diagnostics.consistency_report(conn)
        report["integrity"] = self.integrity.monitor.summary()
        return report


def open_sqlite_key_store(path: str | Path) -> ApiKeyStore:
    """The key store of a file on its own (the `memsvc keys` commands): it accepts the file's
    vector width whatever it is, and closing it closes its engine."""
    return ApiKeyStore(open_engine(Path(path), None), owns_engine=True)
