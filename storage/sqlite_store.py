"""The SQLite implementation of `MemoryStore`: rows, FTS5 and vec0 in one file.

A memory's row, its vector, its FTS entry (kept by triggers) and its history are written in
one `BEGIN IMMEDIATE` transaction, so a crash leaves all of them or none. WAL mode lets
readers run while a writer commits; the busy timeout makes concurrent writers (threads or
processes) wait rather than fail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_vec
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    column,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from memsvc.model.errors import NotFoundError, StoreError
from memsvc.model.records import (
    HistoryEntry,
    HistoryEvent,
    MemoryRecord,
    MemoryStatus,
    Provenance,
    Scope,
    StoredMessage,
    StoreStats,
)
from memsvc.storage.base import Hit, VisibilityQuery, WriteBatch
from memsvc.storage.driver import sqlite_dbapi
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.graph_store import GraphStoreMixin, link_memories, purge_orphans
from memsvc.storage.schema import (
    UTCDateTime,
    history,
    memories,
    messages,
    scope_token,
    store_meta,
)

_MIGRATIONS = Path(__file__).parent / "migrations"
_fts = table("memory_fts", column("rowid"))
_vec = table("memory_vec", column("rowid"), column("embedding"))
_SCOPE_FIELDS = ("user_id", "agent_id", "session_id")
_MMAP_BYTES = 1 << 30
# memory_vec's second partition key is pk % VECTOR_SHARDS (migration 0004): a scope's vectors
# in halves that one KNN searches at once, one connection and one core each
VECTOR_SHARDS = 2


class _CrossJoin(Join):
    """`left CROSS JOIN right ON …`: the one join SQLite never reorders."""

    inherit_cache = True


@compiles(_CrossJoin, "sqlite")
def _compile_cross_join(element: _CrossJoin, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_join(element, **kw)).replace(" JOIN ", " CROSS JOIN ", 1)


@cache
def _shard_pool() -> ThreadPoolExecutor:
    """Threads for a KNN's shards beyond the first, which runs on the caller's thread."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="memsvc-knn")


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: transactions are begun explicitly in `_on_begin`.
    dbapi_connection.isolation_level = None
    dbapi_connection.enable_load_extension(True)
    sqlite_vec.load(dbapi_connection)
    dbapi_connection.enable_load_extension(False)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A KNN reads every vector of the scope (15 MB at 10k memories) through blob I/O; from a
    # memory map that is a copy instead of a pread per page: vec0 KNN at 10k 6.6 → 4.9 ms.
    # Address space only: pages are shared with the OS cache, not allocated per connection.
    cursor.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    # A write takes the lock up front: a deferred transaction that later upgrades to a write
    # can fail with SQLITE_BUSY at once instead of waiting out the busy timeout.
    immediate = conn.get_execution_options().get("write")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        module=sqlite_dbapi(),
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=16,
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _upgrade(engine: Engine, embedding_dim: int) -> None:
    """Bring the file to the newest schema; a no-op (one query) when it already is."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if MigrationContext.configure(conn).get_current_revision() != head:
            cfg.attributes["connection"] = conn
            cfg.attributes["embedding_dim"] = embedding_dim
            command.upgrade(cfg, "head")
        stored = conn.execute(
            select(store_meta.c.value).where(store_meta.c.key == "embedding_dim")
        ).scalar_one()
    if int(stored) != embedding_dim:
        raise StoreError(
            f"this store holds {stored}-dimensional vectors but the embedder makes "
            f"{embedding_dim}; open it with the embedder it was created with"
        )


def _record(row: Any) -> MemoryRecord:
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


def _row(tenant: str, rec: MemoryRecord) -> dict[str, Any]:
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


def _blob(embedding: np.ndarray) -> bytes:
    """Unit length, always: the vec0 index ranks by L2, which equals cosine only on unit vectors
    (migration 0004), and any embedder may be plugged in."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32).tobytes()


class SQLiteStore(GraphStoreMixin):
    """One SQLite file; each instance sees exactly one tenant's rows."""

    def __init__(
        self,
        path: str | Path,
        *,
        tenant: str = "default",
        embedding_dim: int = 384,
        _engine: Engine | None = None,
    ) -> None:
        self.path = Path(path)
        self.tenant = tenant
        self.embedding_dim = embedding_dim
        if _engine is None:
            _engine = make_engine(self.path)
            try:
                _upgrade(_engine, embedding_dim)
            except DBAPIError as exc:
                _engine.dispose()
                raise StoreError(f"cannot open store at {self.path}: {exc.orig}") from exc
        self.engine = _engine

    def for_tenant(self, tenant: str) -> SQLiteStore:
        """The same file seen by another tenant (shares the connection pool)."""
        return SQLiteStore(
            self.path, tenant=tenant, embedding_dim=self.embedding_dim, _engine=self.engine
        )

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(write=True) as conn, conn.begin():
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"write failed and was rolled back: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _part(self, user_id: str | None) -> str:
        return f"{self.tenant}\x1f{user_id or ''}"

    # -- writes ---------------------------------------------------------------------------

    def apply(self, batch: WriteBatch) -> None:
        if batch.is_empty():
            return
        with self._write() as conn:
            if batch.messages:
                conn.execute(insert(messages), [self._message_row(m) for m in batch.messages])
            if batch.inserts:
                self._insert_memories(conn, batch.inserts)
                link_memories(conn, self.tenant, [r for r, _ in batch.inserts], replace=False)
            for rec, embedding in batch.updates:
                self._update_memory(conn, rec, embedding)
            if batch.updates:
                link_memories(conn, self.tenant, [r for r, _ in batch.updates], replace=True)
            for memory_id in batch.hard_deletes:
                self._hard_delete(conn, memory_id)
            if batch.history:
                conn.execute(
                    insert(history),
                    [
                        {
                            "tenant": self.tenant,
                            "memory_id": h.memory_id,
                            "event": h.event.value,
                            "old": h.old,
                            "new": h.new,
                            "actor": h.actor,
                            "reason": h.reason,
                            "created_at": h.created_at,
                        }
                        for h in batch.history
                    ],
                )

    def _message_row(self, m: StoredMessage) -> dict[str, Any]:
        return {
            "id": m.id,
            "tenant": self.tenant,
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

    def _insert_memories(
        self, conn: Connection, items: list[tuple[MemoryRecord, np.ndarray]]
    ) -> None:
        pks = conn.execute(
            insert(memories).returning(memories.c.pk, sort_by_parameter_order=True),
            [_row(self.tenant, rec) for rec, _ in items],
        ).scalars().all()
        conn.exec_driver_sql(
            "INSERT INTO memory_vec(rowid, embedding, part, shard, tenant, user_id, agent_id, "
            "session_id, kind, status, memory_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    pk,
                    _blob(emb),
                    self._part(rec.scope.user_id),
                    pk % VECTOR_SHARDS,
                    self.tenant,
                    rec.scope.user_id or "",
                    rec.scope.agent_id or "",
                    rec.scope.session_id or "",
                    rec.kind.value,
                    rec.status.value,
                    rec.id,
                )
                for pk, (rec, emb) in zip(pks, items, strict=True)
            ],
        )

    def _update_memory(
        self, conn: Connection, rec: MemoryRecord, embedding: np.ndarray | None
    ) -> None:
        values = _row(self.tenant, rec)
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
        conn.exec_driver_sql(
            "UPDATE memory_vec SET status = ? WHERE rowid = ?", (rec.status.value, pk)
        )
        if embedding is not None:
            conn.exec_driver_sql(
                "UPDATE memory_vec SET embedding = ? WHERE rowid = ?", (_blob(embedding), pk)
            )

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
            rows = conn.execute(select(memories.c.pk, memories.c.id).where(where)).all()
            pks = [r.pk for r in rows]
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
            ids = [r.id for r in rows]
            if hard:
                conn.execute(delete(memories).where(memories.c.pk.in_(pks)))
                purge_orphans(conn, self.tenant, scope)  # links went with the rows (cascade)
                for chunk in _chunks(ids):
                    conn.execute(
                        delete(history).where(
                            history.c.tenant == self.tenant, history.c.memory_id.in_(chunk)
                        )
                    )
                conn.execute(delete(messages).where(*self._message_scope(scope)))
            else:
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
            return len(pks)

    def _message_scope(self, scope: Scope) -> list[Any]:
        parts: list[Any] = [messages.c.tenant == self.tenant]
        for name in _SCOPE_FIELDS:
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
            rows = conn.execute(
                select(memories).where(
                    memories.c.tenant == self.tenant, memories.c.id.in_(list(memory_ids))
                )
            ).all()
        return {row.id: _record(row) for row in rows}

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
            rows = conn.execute(stmt.order_by(memories.c.id).limit(limit)).all()
        return [_record(r) for r in rows], int(total)

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            row = conn.execute(
                select(memories).where(where, memories.c.content_hash == content_hash).limit(1)
            ).first()
        return _record(row) if row is not None else None

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]:
        """KNN restricted to the scope inside the vec0 query (partition + metadata columns).

        With filters or a point in time, the rows that pass them are found first and scored
        exactly, so a selective filter never starves the result the way post-filtering a
        global top-k would.
        """
        blob = _blob(embedding)
        if query.filters is None and query.as_of is None:
            pairs = self._knn(query, blob, k)
        else:
            where = visibility_clause(self.tenant, query)
            distance = func.vec_distance_cosine(_vec.c.embedding, blob).label("d")
            with self._read() as conn:
                pairs = [
                    (r.id, r.d)
                    for r in conn.execute(
                        select(memories.c.id, distance)
                        .select_from(memories.join(_vec, _vec.c.rowid == memories.c.pk))
                        .where(where)
                        .order_by(distance)
                        .limit(k)
                    )
                ]
        return [Hit(memory_id, 1.0 - float(d)) for memory_id, d in pairs]

    def _knn(self, query: VisibilityQuery, blob: bytes, k: int) -> list[tuple[str, float]]:
        """vec0 KNN over each shard of the scope at once, merged: (memory id, cosine distance)."""
        scope = query.scope
        where = ["embedding MATCH ?", "k = ?", "shard = ?"]
        params: list[Any] = []
        if scope.user_id is not None:
            where.append("part = ?")
            params.append(self._part(scope.user_id))
        where.append("tenant = ?")
        params.append(self.tenant)
        for name in ("agent_id", "session_id"):
            value = getattr(scope, name)
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        for name, values in (("status", query.statuses), ("kind", query.kinds)):
            if values:
                where.append(f"{name} IN ({','.join('?' * len(values))})")
                params.extend(values)
        sql = f"SELECT memory_id, distance FROM memory_vec WHERE {' AND '.join(where)}"

        def one_shard(shard: int) -> list[tuple[str, float]]:
            with self._read() as conn:
                return [(r[0], r[1]) for r in conn.exec_driver_sql(sql, (blob, k, shard, *params))]

        others = [_shard_pool().submit(one_shard, shard) for shard in range(1, VECTOR_SHARDS)]
        knn = one_shard(0)
        for future in others:
            knn += future.result()
        # L2 between unit vectors → cosine distance: 1 − cos = d² / 2
        return [(memory_id, d * d / 2) for memory_id, d in sorted(knn, key=lambda r: r[1])[:k]]

    def bm25_search(self, query: VisibilityQuery, match: str, k: int) -> list[Hit]:
        """FTS5 BM25 over the scope; `match` is an FTS5 query the caller has made safe."""
        if not match:
            return []
        # The FTS match must drive the join. Left to itself SQLite's planner walks the scope's
        # rows by index and re-runs the MATCH for each one (seconds at 10k rows), so the
        # matches are materialized first; and even then it preferred walking the scope's 10k
        # rows by index and probing the matches, so a CROSS JOIN pins the order: each match
        # looks its row up by primary key (BM25 at 10k memories in one scope 1.2 → 0.7 ms).
        expression = f"text : ({match})"
        if query.scope.user_id is not None:
            expression += f" AND fts_scope : {scope_token(self.tenant, query.scope.user_id)}"
        matches = (
            # weight 0 for the scope column: it filters, it must not score
            select(_fts.c.rowid, literal_column("bm25(memory_fts, 1.0, 0.0)").label("s"))
            .where(text("memory_fts MATCH :match").bindparams(match=expression))
            .cte("fts_matches")
            .prefix_with("MATERIALIZED")
        )
        stmt = (
            select(memories.c.id, matches.c.s)
            .select_from(_CrossJoin(matches, memories, memories.c.pk == matches.c.rowid))
            .where(visibility_clause(self.tenant, query))
            .order_by(matches.c.s)
            .limit(k)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        # FTS5's bm25() is lower-is-better; flip it so every channel scores higher-is-better.
        return [Hit(r.id, -float(r.s)) for r in rows]

    def history(self, memory_id: str) -> list[HistoryEntry]:
        with self._read() as conn:
            rows = conn.execute(
                select(history)
                .where(history.c.tenant == self.tenant, history.c.memory_id == memory_id)
                .order_by(history.c.id)
            ).all()
        return [
            HistoryEntry(
                id=r.id,
                memory_id=r.memory_id,
                event=r.event,
                old=r.old,
                new=r.new,
                actor=r.actor,
                reason=r.reason,
                created_at=r.created_at,
            )
            for r in rows
        ]

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]:
        with self._read() as conn:
            rows = conn.execute(
                select(messages)
                .where(*self._message_scope(scope))
                .order_by(messages.c.timestamp, messages.c.pk)
                .limit(limit)
            ).all()
        return [
            StoredMessage(
                id=r.id,
                scope=Scope(user_id=r.user_id, agent_id=r.agent_id, session_id=r.session_id),
                role=r.role,
                name=r.name,
                content=r.content,
                timestamp=r.timestamp,
                created_at=r.created_at,
                metadata=r.metadata or {},
            )
            for r in rows
        ]

    def stats(self) -> StoreStats:
        mine = memories.c.tenant == self.tenant
        with self._read() as conn:
            by_kind: dict[str, int] = dict(
                conn.execute(select(memories.c.kind, func.count()).where(mine).group_by("kind"))
                .all()
            )
            by_status: dict[str, int] = dict(
                conn.execute(
                    select(memories.c.status, func.count()).where(mine).group_by("status")
                )
                .all()
            )
            n_messages = conn.execute(
                select(func.count()).select_from(messages).where(messages.c.tenant == self.tenant)
            ).scalar_one()
            n_history = conn.execute(
                select(func.count()).select_from(history).where(history.c.tenant == self.tenant)
            ).scalar_one()
            n_vectors = conn.exec_driver_sql(
                "SELECT count(*) FROM memory_vec WHERE tenant = ?", (self.tenant,)
            ).scalar_one()
            n_fts = conn.exec_driver_sql(
                "SELECT count(*) FROM memory_fts f JOIN memories m ON m.pk = f.rowid "
                "WHERE m.tenant = ?",
                (self.tenant,),
            ).scalar_one()
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"))
            if p.exists()
        )
        return StoreStats(
            memories=sum(by_kind.values()),
            by_kind=by_kind,
            by_status=by_status,
            messages=int(n_messages),
            history=int(n_history),
            vectors=int(n_vectors),
            fts_rows=int(n_fts),
            path=str(self.path),
            size_bytes=size,
        )

    def consistency(self) -> dict[str, Any]:
        """Do the indexes agree with the rows? Used after crashes and by `memsvc stats`."""
        with self._read() as conn:
            integrity = conn.exec_driver_sql("PRAGMA integrity_check").scalar_one()
            n_rows = conn.exec_driver_sql("SELECT count(*) FROM memories").scalar_one()
            n_vec = conn.exec_driver_sql("SELECT count(*) FROM memory_vec").scalar_one()
            vec_missing = conn.exec_driver_sql(
                "SELECT count(*) FROM memories m WHERE NOT EXISTS "
                "(SELECT 1 FROM memory_vec v WHERE v.rowid = m.pk)"
            ).scalar_one()
            status_mismatch = conn.exec_driver_sql(
                "SELECT count(*) FROM memories m JOIN memory_vec v ON v.rowid = m.pk "
                "WHERE v.status != m.status OR v.kind != m.kind"
            ).scalar_one()
            fts_ok = True
            try:
                conn.exec_driver_sql(
                    "INSERT INTO memory_fts(memory_fts, rank) VALUES ('integrity-check', 1)"
                )
            except DBAPIError:
                fts_ok = False
        return {
            "integrity_check": integrity,
            "memories": int(n_rows),
            "vectors": int(n_vec),
            "vectors_missing": int(vec_missing),
            "vector_metadata_mismatch": int(status_mismatch),
            "fts_ok": fts_ok,
            "consistent": integrity == "ok"
            and n_rows == n_vec
            and vec_missing == 0
            and status_mismatch == 0
            and fts_ok,
        }


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
