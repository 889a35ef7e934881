"""The PostgreSQL implementation of `MemoryStore`: one row per memory, vector and text included.

A memory's row (with its vector and generated full-text vector), its graph links and its
history are written in one transaction. Every transaction first scopes itself to the store's
tenant (`set_config('memsvc.tenant', ..., true)`), which the row-level security policies
check, and the store works as an unprivileged role (storage/postgres/engine.py): a query that
forgets its tenant filter still sees only its tenant's rows.

KNN: small scopes (the common case: one user's memories) are searched exactly, without index
scans, so a selective scope can never starve the result; larger ones walk the HNSW index
with pgvector 0.8's iterative scan (`relaxed_order`), the scope applied inside the scan, and
the candidates re-sorted by exact distance. Lexical search: storage/postgres/lexical.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text, update
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
from memsvc.storage.integrity import sealed
from memsvc.storage.integrity.chain import ChainWriter
from memsvc.storage.integrity.codec import scope_key
from memsvc.storage.integrity.guard import StoreIntegrity, history_select, message_select
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.postgres import health, lexical
from memsvc.storage.postgres.engine import APP_ROLE, open_engine, set_tenant
from memsvc.storage.postgres.filters import visibility_clause
from memsvc.storage.postgres.graph import PostgresGraphReads, link_memories, purge_orphans
from memsvc.storage.postgres.integrity import open_integrity
from memsvc.storage.postgres.tables import pg_memories as memories
from memsvc.storage.postgres.tables import unit
from memsvc.storage.postgres.transfer import PostgresTransferMixin
from memsvc.storage.row_mapping import (
    history_from_row,
    memory_row,
    message_from_row,
    message_row,
    record_from_row,
    source_keys,
)
from memsvc.storage.schema import UTCDateTime, history, integrity_heads, messages

_SCOPE_FIELDS = ("user_id", "agent_id", "session_id")
# Scopes with fewer visible rows than this are searched exactly (every distance computed:
# 22 ms for 9k 384-d rows on a loaded 2-core machine, about 2.4 µs a row); larger ones
# through the HNSW index (15 ms there).
EXACT_SEARCH_BELOW = 3000
_EF_SEARCH = 100
_WRITE_ATTEMPTS = 5
_RETRYABLE = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
T = TypeVar("T")

if TYPE_CHECKING:
    from memsvc.storage.postgres.queue import PostgresJobQueue


class PostgresStore(PostgresGraphReads, PostgresTransferMixin):
    """One PostgreSQL database; each instance sees exactly one tenant's rows."""

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "default",
        embedding_dim: int = 384,
        app_role: str = APP_ROLE,
        exact_search_below: int = EXACT_SEARCH_BELOW,
        _engine: Engine | None = None,
        _integrity: StoreIntegrity | None = None,
    ) -> None:
        self.url = url
        self.tenant = tenant
        self.embedding_dim = embedding_dim
        self.exact_search_below = exact_search_below
        self._owns_engine = _engine is None
        self.engine = _engine or open_engine(url, embedding_dim, app_role=app_role)
        try:
            if _integrity is None:  # the key, the store id, the witness
                with self._read() as conn:
                    _integrity = open_integrity(url, conn, self._snapshot_of)
            self.integrity = _integrity
            if tenant not in _integrity.opened_tenants:
                # every scope of this tenant checked before anything of it is served
                with self._read(snapshot=True) as conn:
                    _integrity.check_open(conn, tenant)
                _integrity.opened_tenants.add(tenant)
        except BaseException:
            if self._owns_engine:
                self.engine.dispose()
            raise

    def key_store(self) -> ApiKeyStore:
        """The API keys of every tenant (`api_keys` has no tenant policy: a key is looked up
        before its tenant is known), on this store's pool, with no cache.

        Why no cache, where replicas share the database: a revoked key must be refused by
        every replica at once. LISTEN/NOTIFY clears other replicas' caches only when the
        notification has travelled (a request sent right after the revoke got through in
        our replica test, on a loaded machine), and a version counter in the database costs
        the very round trip the cache would spare (one index probe, like the lookup). So
        each request looks its key up. The per-user graph cache is the other case: its
        version counter (`graph_state`, bumped in every transaction that changes links) is
        one row to read, where a miss means rebuilding a whole graph; it is checked on
        every search, so it follows every replica's writes at once."""
        return ApiKeyStore(self.engine, cache_seconds=0)

    def job_queue(self) -> PostgresJobQueue:
        """The durable queue of background work (procrastinate, in this database; loaded
        only by the processes that use it)."""
        from memsvc.storage.postgres.queue import PostgresJobQueue

        return PostgresJobQueue(self.engine)

    def for_tenant(self, tenant: str) -> PostgresStore:
        """The same database seen by another tenant (shares the connection pool)."""
        return PostgresStore(self.url, tenant=tenant, embedding_dim=self.embedding_dim,
                             exact_search_below=self.exact_search_below, _engine=self.engine,
                             _integrity=self.integrity)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------

    def _transact(self, work: Callable[[Connection, ChainWriter], T]) -> T:
        """Run `work` as one write transaction of this tenant, its rows signed into their
        chains (memsvc.storage.integrity); the witness learns the new heads after the commit.

        A deadlock or serialization failure (concurrent writers of one scope meeting on the
        same entity, BM25 statistics or chain lock) rolls everything back, so the whole
        transaction is simply run again; any other database error surfaces as a StoreError.
        """
        guard = self.integrity
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    set_tenant(conn, self.tenant)
                    chain = guard.writer(conn)
                    result = work(conn, chain)
                    guard.save(conn, chain)
                guard.committed(chain)
                return result
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) in _RETRYABLE and (
                        attempt + 1 < _WRITE_ATTEMPTS):
                    continue
                raise StoreError(f"write failed and was rolled back: {exc.orig}") from exc
        raise AssertionError("unreachable")

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction of this tenant; `snapshot`: one snapshot for all its
        statements (REPEATABLE READ), which comparing a chain head with rows needs."""
        with _reading(self.engine, self.tenant, snapshot) as conn:
            yield conn

    def _snapshot_of(self, tenant: str) -> AbstractContextManager[Connection]:
        return _reading(self.engine, tenant, True)

    # -- writes ---------------------------------------------------------------------------

    def apply(self, batch: WriteBatch) -> None:
        if batch.is_empty():
            return
        tenant, guard = self.tenant, self.integrity

        def work(conn: Connection, chain: ChainWriter) -> None:
            if batch.messages:
                conn.execute(insert(messages), [
                    guard.sign(chain, "message", tenant, scope_key(m.scope.user_id),
                               message_row(tenant, m), event="insert")
                    for m in batch.messages
                ])
            owners = {r.id: r.scope.user_id for r, _ in [*batch.inserts, *batch.updates]}
            if batch.inserts:
                conn.execute(insert(memories), [
                    {**guard.sign(chain, "memory", tenant, scope_key(rec.scope.user_id),
                                  memory_row(tenant, rec), event="insert"),
                     "embedding": unit(emb)}
                    for rec, emb in batch.inserts
                ])
                link_memories(conn, tenant, [r for r, _ in batch.inserts], replace=False)
            for rec, embedding in batch.updates:
                self._update_memory(conn, chain, rec, embedding)
            if batch.updates:
                link_memories(conn, tenant, [r for r, _ in batch.updates], replace=True)
            for memory_id in batch.hard_deletes:
                owners[memory_id] = self._hard_delete(conn, chain, memory_id)
            if batch.history:
                conn.execute(insert(history), sealed.history_rows(
                    conn, guard, chain, tenant, batch.history, owners))

        self._transact(work)

    def _update_memory(
        self, conn: Connection, chain: ChainWriter, rec: MemoryRecord,
        embedding: np.ndarray | None,
    ) -> None:
        extra = {} if embedding is None else {"embedding": unit(embedding)}
        sealed.update_memory(conn, self.integrity, chain, self.tenant, rec, extra)

    def _hard_delete(self, conn: Connection, chain: ChainWriter, memory_id: str) -> str | None:
        """Erase a memory and its history; the chain keeps that it was erased."""
        return sealed.hard_delete(conn, self.integrity, chain, self.tenant, memory_id)[1]

    def record_access(self, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        if not accesses:
            return

        def work(conn: Connection, chain: ChainWriter) -> None:
            del chain  # not signed: reads change them (memsvc.storage.integrity.codec)
            conn.execute(
                update(memories)
                .where(memories.c.tenant == self.tenant, memories.c.id == bindparam("memory_id"))
                .values(
                    access_count=memories.c.access_count + bindparam("count"),
                    last_accessed_at=bindparam("at", type_=UTCDateTime()),
                ),
                [{"memory_id": memory_id, "count": count, "at": at}
                 for memory_id, (count, at) in sorted(accesses.items())],
            )

        self._transact(work)

    def delete_scope(self, scope: Scope, *, hard: bool, at: datetime, actor: str) -> int:
        """Delete every memory of a scope: soft marks them deleted, hard erases all traces."""
        where = visibility_clause(self.tenant, VisibilityQuery(scope=scope, statuses=()))

        def work(conn: Connection, chain: ChainWriter) -> int:
            if hard:
                return sealed.erase(conn, self.integrity, chain, self.tenant, scope, where,
                                    self._message_scope(scope))
            return sealed.mark_deleted(conn, self.integrity, chain, self.tenant, where, at,
                                       actor)

        return self._transact(work)

    def _message_scope(self, scope: Scope) -> list[Any]:
        parts: list[Any] = [messages.c.tenant == self.tenant]
        for name in _SCOPE_FIELDS:
            value = getattr(scope, name)
            if value is not None:
                parts.append(messages.c[name] == value)
        return parts

    def reset(self) -> None:
        """Erase everything this tenant has, from every table; each of its chains is pruned
        to one "erase" entry, so an older copy of the database still shows as older."""
        def work(conn: Connection, chain: ChainWriter) -> None:
            for scope in conn.execute(select(integrity_heads.c.scope)
                                      .where(integrity_heads.c.tenant == self.tenant)).scalars():
                chain.erase(self.tenant, scope)
            for tbl in (memories, messages, history):
                conn.execute(delete(tbl).where(tbl.c.tenant == self.tenant))
            purge_orphans(conn, self.tenant, None)

        self._transact(work)

    # -- reads ----------------------------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        """The memory, None if there is none; IntegrityError if it fails its check."""
        with self._read() as conn:
            found = conn.execute(self._memory_select().where(
                memories.c.tenant == self.tenant, memories.c.id == memory_id)).all()
        served = self.integrity.served("memory", found, strict=True)
        return record_from_row(served[0]) if served else None

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryRecord]:
        """Those that exist and pass their integrity check (the others are refused)."""
        if not memory_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(self.integrity.layout.memories_by_id(),
                                {"tenant": self.tenant, "ids": list(memory_ids)}).all()
        return {row.id: record_from_row(row) for row in self.integrity.served("memory", rows)}

    def source_keys(self, memory_ids: Sequence[str]) -> dict[str, SourceKey]:
        """Kind, validity end and sources of those that exist, unchecked (`SourceKey`)."""
        if not memory_ids:
            return {}
        with self._read() as conn:
            return source_keys(conn, memories, self.tenant, memory_ids)

    def _memory_select(self) -> Any:
        """Memory rows with the chain digest their check needs."""
        return self.integrity.layout.memory_select()

    def list_memories(
        self, query: VisibilityQuery, *, limit: int, after_id: str | None = None
    ) -> tuple[list[MemoryRecord], int]:
        where = visibility_clause(self.tenant, query)
        user = query.scope.user_id
        with self._read(snapshot=user is not None) as conn:
            if user is not None:  # a user's chain: no row missing or added
                self.integrity.check_scope(conn, self.tenant, user, "memories")
            total = conn.execute(select(func.count()).select_from(memories).where(where))
            n = int(total.scalar_one())
            stmt = self._memory_select().where(where)
            if after_id is not None:
                stmt = stmt.where(memories.c.id > after_id)
            rows = conn.execute(stmt.order_by(memories.c.id).limit(limit)).all()
        served = self.integrity.served("memory", rows)
        return [record_from_row(r) for r in served], n - len(rows) + len(served)

    def find_by_hash(self, query: VisibilityQuery, content_hash: str) -> MemoryRecord | None:
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            found = conn.execute(self._memory_select().where(
                where, memories.c.content_hash == content_hash).limit(1)).all()
        served = self.integrity.served("memory", found)
        return record_from_row(served[0]) if served else None

    def vector_search(self, query: VisibilityQuery, embedding: np.ndarray, k: int) -> list[Hit]:
        """The k nearest visible memories by cosine, the scope applied inside the search."""
        if k <= 0:
            return []
        where = visibility_clause(self.tenant, query)
        distance = memories.c.embedding.l2_distance(unit(embedding))
        nearest = select(memories.c.id, distance.label("d")).where(where)
        with self._read() as conn:
            size = conn.execute(select(func.count()).select_from(
                select(memories.c.pk).where(where).limit(self.exact_search_below).subquery()
            )).scalar_one()
            if size < self.exact_search_below:
                # no index scans: the scope's rows come by bitmap (or sequential) scan and
                # every distance is computed — exact, and only the scope's rows are read
                conn.execute(text("SELECT set_config('enable_indexscan', 'off', true)"))
                rows = conn.execute(nearest.order_by(distance, memories.c.id).limit(k)).all()
            else:
                rows = self._index_search(conn, nearest.order_by(distance).limit(k))
                if len(rows) < min(k, size):  # the scan gave up early: be exact instead
                    conn.execute(text("SELECT set_config('enable_indexscan', 'off', true)"))
                    rows = conn.execute(nearest.order_by(distance, memories.c.id).limit(k)).all()
        # L2 between unit vectors → cosine similarity: cos = 1 − d² / 2
        return [Hit(r.id, 1.0 - float(r.d) ** 2 / 2) for r in rows]

    def _index_search(self, conn: Connection, stmt: Any) -> list[Any]:
        """HNSW with pgvector's iterative scan: the filter is applied while walking the
        graph, which continues until k rows pass; relaxed order, so re-sort exactly."""
        conn.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                          "set_config('hnsw.ef_search', :ef, true)"),
                     {"ef": str(_EF_SEARCH)})
        candidates = stmt.cte("candidates").prefix_with("MATERIALIZED")
        return list(conn.execute(select(candidates).order_by(candidates.c.d, candidates.c.id)))

    def bm25_search(self, query: VisibilityQuery, match: str, k: int) -> list[Hit]:
        """BM25 over the scope; `match` is an FTS5 expression of quoted words ORed (only its
        words are used: the ranking is the same OR of terms)."""
        return self._bm25(query, lexical.words_of_match(match), k)

    def lexical_search(self, query: VisibilityQuery, text: str, k: int) -> list[Hit]:
        """BM25 over the scope for a user's raw query text."""
        return self._bm25(query, lexical.words_of_text(text), k)

    def _bm25(self, query: VisibilityQuery, words: list[str], k: int) -> list[Hit]:
        if not words or k <= 0:
            return []
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            stmt, params = lexical.ranked(words, self.tenant, query.scope.user_id, where, k)
            rows = conn.execute(stmt, params).all()
            if len(rows) < k and (not rows or rows[0].pruned):  # pruning left too few
                stmt, params = lexical.ranked(words, self.tenant, query.scope.user_id, where,
                                              k, fill=lexical.FILL)
                rows = conn.execute(stmt, params).all()
        return [Hit(r.id, float(r.score)) for r in rows]

    def history(self, memory_id: str) -> list[HistoryEntry]:
        with self._read() as conn:
            rows = conn.execute(
                history_select()
                .where(history.c.tenant == self.tenant, history.c.memory_id == memory_id)
                .order_by(history.c.id)
            ).all()
        return [history_from_row(r) for r in self.integrity.served("history", rows)]

    def messages(self, scope: Scope, *, limit: int = 1000) -> list[StoredMessage]:
        with self._read(snapshot=scope.user_id is not None) as conn:
            if scope.user_id is not None:
                self.integrity.check_scope(conn, self.tenant, scope.user_id, "messages")
            rows = conn.execute(
                message_select()
                .where(*self._message_scope(scope))
                .order_by(messages.c.timestamp, messages.c.pk)
                .limit(limit)
            ).all()
        return [message_from_row(r) for r in self.integrity.served("message", rows)]

    def stats(self) -> StoreStats:
        with self._read() as conn:
            return health.stats(conn, self.tenant, self.engine.url)

    def consistency(self) -> dict[str, Any]:
        """Do the indexes and the BM25 statistics agree with the rows (storage/postgres/
        health.py)? Counts are of this tenant's rows."""
        with self._read() as conn:
            report = health.consistency(conn)
        report["integrity"] = self.integrity.monitor.summary()
        return report


def open_postgres_key_store(url: str, *, embedding_dim: int | None = None) -> ApiKeyStore:
    """The key store of a database on its own (the `memsvc keys` commands); migrates a new
    database with `embedding_dim` (the default embedder's width when not given)."""
    from memsvc.embedding.embedder import model_dimension
    from memsvc.model.settings import default_embedder_path

    dim = embedding_dim or model_dimension(default_embedder_path())
    if dim is None:
        raise StoreError("cannot tell the embedder's vector width; open the store with Memory")
    return ApiKeyStore(open_engine(url, dim), owns_engine=True, cache_seconds=0)


@contextmanager
def _reading(engine: Engine, tenant: str, snapshot: bool) -> Iterator[Connection]:
    """A read transaction of `tenant` (see `PostgresStore._read`)."""
    source = engine.execution_options(isolation_level="REPEATABLE READ") if snapshot else engine
    with source.begin() as conn:
        set_tenant(conn, tenant)
        yield conn
