"""The vec0 vector index: how vectors are stored, searched by KNN and read back.

`memory_vec` is partitioned by (tenant, user) and by shard (pk % VECTOR_SHARDS, migration
0004), and carries the scope, status and trust (0006) as metadata columns, so a KNN is
restricted to the caller's scope and trust inside the vec0 query itself instead of
post-filtering a global top-k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    engine: Engine, tenant: str, query: VisibilityQuery, vector: bytes, k: int
) -> list[tuple[str, float]]:
    """vec0 KNN over each shard of the scope at once, merged: (memory id, cosine distance)."""
    scope = query.scope
    where = ["embedding MATCH ?", "k = ?", "shard = ?"]
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
    sql = f"SELECT memory_id, distance FROM memory_vec WHERE {' AND '.join(where)}"

    def one_shard(shard: int) -> list[tuple[str, float]]:
        with reading(engine) as conn:
            return [(r[0], r[1]) for r in conn.exec_driver_sql(sql, (vector, k, shard, *params))]

    others = [_shard_pool().submit(one_shard, shard) for shard in range(1, VECTOR_SHARDS)]
    found = one_shard(0)
    for future in others:
        found += future.result()
    # L2 between unit vectors → cosine distance: 1 − cos = d² / 2
    return [(memory_id, d * d / 2) for memory_id, d in sorted(found, key=lambda r: r[1])[:k]]


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
