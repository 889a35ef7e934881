"""The vec0 vector index: how vectors are stored, searched by KNN and read back.

`memory_vec` is partitioned by (tenant, user) and by shard (pk % VECTOR_SHARDS, migration
0004), and carries the scope, status and trust (0006) as metadata columns, so a KNN is
restricted to the caller's scope and trust inside the vec0 query itself instead of
post-filtering a global top-k.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, column, func, select, table

from memsvc.model.records import MemoryRecord
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.batching import chunks
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.schema import memories
from memsvc.storage.sqlite.engine import reading

_vec = table("memory_vec", column("rowid"), column("embedding"))
# memory_vec's second partition key is pk % VECTOR_SHARDS (migration 0004): a scope's vectors
# in halves that one KNN searches at once, one connection and one core each
VECTOR_SHARDS = 2
# A user's partition of fewer vectors is searched by one statement over both shards: a second
# connection and transaction, a hop to a pool thread and k rows more to merge cost more
# than searching half the vectors saves (`evals/bench_store.py` measures the big scopes).
SPLIT_FROM = 4096
_MAX_KNOWN_SCOPES = 10_000  # partition sizes remembered (`ScopeSizes`)


@cache
def _shard_pool() -> ThreadPoolExecutor:
    """Threads for a KNN's shards beyond the first, which runs on the caller's thread."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="memsvc-knn")


def partition(tenant: str, user_id: str | None) -> str:
    """The vec0 partition key of a (tenant, user)."""
    return f"{tenant}\x1f{user_id or ''}"


def blob(embedding: np.ndarray) -> bytes:
    """Unit length, always: the vec0 index ranks by L2, which equals cosine only on unit vectors
    (migration 0004), and any embedder may be plugged in."""
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32).tobytes()


def insert_vectors(
    conn: Connection,
    tenant: str,
    pks: Sequence[int],
    items: Sequence[tuple[MemoryRecord, np.ndarray]],
) -> None:
    """The vec0 rows of just-inserted memories (`pks` in the order of `items`)."""
    conn.exec_driver_sql(
        "INSERT INTO memory_vec(rowid, embedding, part, shard, tenant, user_id, agent_id, "
        "session_id, kind, status, trust, memory_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                pk,
                blob(emb),
                partition(tenant, rec.scope.user_id),
                pk % VECTOR_SHARDS,
                tenant,
                rec.scope.user_id or "",
                rec.scope.agent_id or "",
                rec.scope.session_id or "",
                rec.kind.value,
                rec.status.value,
                rec.trust,
                rec.id,
            )
            for pk, (rec, emb) in zip(pks, items, strict=True)
        ],
    )


def update_vector(
    conn: Connection, pk: int, status: str, trust: int, embedding: np.ndarray | None
) -> None:
    conn.exec_driver_sql(
        "UPDATE memory_vec SET status = ?, trust = ? WHERE rowid = ?", (status, trust, pk)
    )
    if embedding is not None:
        conn.exec_driver_sql(
            "UPDATE memory_vec SET embedding = ? WHERE rowid = ?", (blob(embedding), pk)
        )


def exact_search(
    conn: Connection, tenant: str, query: VisibilityQuery, vector: bytes, k: int
) -> list[tuple[str, float]]:
    """Score exactly the rows that pass the query (filters, a point in time): a selective
    filter then never starves the result. (memory id, cosine distance), nearest first."""
    where = visibility_clause(tenant, query)
    distance = func.vec_distance_cosine(_vec.c.embedding, vector).label("d")
    return [
        (r.id, r.d)
        for r in conn.execute(
            select(memories.c.id, distance)
            .select_from(memories.join(_vec, _vec.c.rowid == memories.c.pk))
            .where(where)
            .order_by(distance)
            .limit(k)
        )
    ]


def knn(
    engine: Engine, tenant: str, query: VisibilityQuery, vector: bytes, k: int,
    sizes: ScopeSizes | None = None,
) -> list[tuple[str, float]]:
    """vec0 KNN over the scope, merged over its shards: (memory id, cosine distance).

    A user's partition smaller than `SPLIT_FROM` vectors (by `sizes`, when given) is searched
    by one statement over both shards; a bigger one, or a scope of no user, by one
    statement per shard at once, each on its own connection and core.
    """
    scope = query.scope
    where = ["embedding MATCH ?", "k = ?"]
    params: list[Any] = []
    if scope.user_id is not None:
        where.append("part = ?")
        params.append(partition(tenant, scope.user_id))
    where.append("tenant = ?")
    params.append(tenant)
    for name in ("agent_id", "session_id"):
        value = getattr(scope, name)
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    for name, values in (("status", query.statuses), ("kind", query.kinds)):
        if values:
            where.append(f"{name} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if query.min_trust is not None:  # inside the KNN: k trusted hits, not k filtered away
        where.append("trust >= ?")
        params.append(query.min_trust)
    sql = f"SELECT memory_id, distance, rowid FROM memory_vec WHERE {' AND '.join(where)}"
    by_shard = f"{sql} AND shard = ?"

    def one_shard(shard: int) -> list[Any]:
        with reading(engine) as conn:
            return conn.exec_driver_sql(by_shard, (vector, k, *params, shard)).fetchall()

    with reading(engine) as conn:
        if (sizes is not None and scope.user_id is not None
                and sizes.of(conn, tenant, scope.user_id) < SPLIT_FROM):
            # ties in the order the shards' results merge in (shard 0's first)
            ranked = sorted(conn.exec_driver_sql(sql, (vector, k, *params)).fetchall(),
                            key=lambda r: (r[1], r[2] % VECTOR_SHARDS))
        else:
            others = [_shard_pool().submit(one_shard, shard)
                      for shard in range(1, VECTOR_SHARDS)]
            found = conn.exec_driver_sql(by_shard, (vector, k, *params, 0)).fetchall()
            for future in others:
                found += future.result()
            ranked = sorted(found, key=lambda r: r[1])[:k]
    # L2 between unit vectors → cosine distance: 1 − cos = d² / 2
    return [(r[0], r[1] * r[1] / 2) for r in ranked]


class ScopeSizes:
    """How many vectors each user's partition holds, counted again after `ttl` seconds: a
    KNN is split over shards by it, which needs the size only roughly."""

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._known: dict[tuple[str, str], tuple[int, float]] = {}

    def of(self, conn: Connection, tenant: str, user_id: str) -> int:
        now = self._clock()
        known = self._known.get((tenant, user_id))
        if known is not None and known[1] > now:
            return known[0]
        # every row of the user has its vector (memory_vec keeps the deleted and superseded)
        count = conn.exec_driver_sql(
            "SELECT count(*) FROM memories WHERE tenant = ? AND user_id = ?", (tenant, user_id)
        ).scalar_one()
        if len(self._known) >= _MAX_KNOWN_SCOPES:  # a store of many users: start again
            self._known.clear()
        self._known[(tenant, user_id)] = (count, now + self._ttl)
        return int(count)


def read_embeddings(
    conn: Connection, tenant: str, memory_ids: Iterable[str]
) -> dict[str, np.ndarray]:
    """The stored (unit-length) vectors of some memories."""
    out: dict[str, np.ndarray] = {}
    for chunk in chunks(list(dict.fromkeys(memory_ids))):
        marks = ",".join("?" * len(chunk))
        for mid, stored in conn.exec_driver_sql(
            f"SELECT m.id, v.embedding FROM memories m JOIN memory_vec v "
            f"ON v.rowid = m.pk WHERE m.tenant = ? AND m.id IN ({marks})",
            (tenant, *chunk),
        ):
            out[mid] = np.frombuffer(stored, dtype=np.float32).copy()
    return out
