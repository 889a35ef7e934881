"""The PostgreSQL store's `stats()` and `consistency()`: counts and self-checks.

On PostgreSQL a memory's vector and full-text vector live in its row (NOT NULL / generated),
so nothing can be missing the way a vec0 or FTS5 entry can; what can go wrong is an index
left invalid (a failed concurrent build) or BM25 statistics drifting from the rows (a
trigger dropped by hand). Both are checked. Row-level security limits every count to the
transaction's tenant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Connection, func, select, text

from memsvc.model.records import StoreStats
from memsvc.storage.postgres.tables import pg_memories as memories


def stats(conn: Connection, tenant: str, url: URL) -> StoreStats:
    mine = memories.c.tenant == tenant
    by_kind: dict[str, int] = {k: int(n) for k, n in conn.execute(
        select(memories.c.kind, func.count()).where(mine).group_by(memories.c.kind))}
    by_status: dict[str, int] = {s: int(n) for s, n in conn.execute(
        select(memories.c.status, func.count()).where(mine).group_by(memories.c.status))}
    counts = conn.execute(text(
        "SELECT (SELECT count(*) FROM messages WHERE tenant = :t), "
        "(SELECT count(*) FROM history WHERE tenant = :t), "
        "(SELECT count(embedding) FROM memories WHERE tenant = :t), "
        "(SELECT count(tsv) FROM memories WHERE tenant = :t), "
        "pg_database_size(current_database())"), {"t": tenant}).one()
    return StoreStats(
        memories=sum(by_kind.values()), by_kind=by_kind, by_status=by_status,
        messages=int(counts[0]), history=int(counts[1]), vectors=int(counts[2]),
        fts_rows=int(counts[3]), path=url.render_as_string(hide_password=True),
        size_bytes=int(counts[4]),
    )


def consistency(conn: Connection) -> dict[str, Any]:
    n_rows, n_vec, n_fts = conn.execute(text(
        "SELECT count(*), count(embedding), count(tsv) FROM memories")).one()
    invalid = conn.execute(text(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'memories'::regclass "
        "AND NOT (indisvalid AND indisready)"
    )).scalar_one()
    drift = conn.execute(text(_STATS_DRIFT)).scalar_one()
    missing = int(n_rows) - int(n_vec)
    fts_ok = int(n_fts) == int(n_rows) and drift == 0
    return {
        "integrity_check": "ok" if invalid == 0 else f"{invalid} invalid indexes",
        "memories": int(n_rows),
        "vectors": int(n_vec),
        "vectors_missing": missing,
        "vector_metadata_mismatch": 0,  # status and kind live in the same row
        "fts_stats_drift": int(drift),
        "fts_ok": fts_ok,
        "consistent": invalid == 0 and missing == 0 and fts_ok,
    }


# BM25 statistics rows that differ from a recount of the memories (storage/postgres/lexical.py)
_STATS_DRIFT = """
SELECT
  (SELECT count(*) FROM (
     SELECT tenant, coalesce(user_id, '') AS user_id, lexeme, count(*) AS df
     FROM memories, unnest(tsvector_to_array(tsv)) AS lexeme GROUP BY 1, 2, 3) want
   FULL JOIN (SELECT tenant, user_id, lexeme, df FROM fts_terms WHERE df <> 0) have
   USING (tenant, user_id, lexeme) WHERE want.df IS DISTINCT FROM have.df)
+ (SELECT count(*) FROM (
     SELECT tenant, coalesce(user_id, '') AS user_id, count(*) AS n, sum(fts_len) AS len
     FROM memories GROUP BY 1, 2) want
   FULL JOIN (SELECT tenant, user_id, n_docs AS n, total_len AS len FROM fts_scopes
              WHERE n_docs <> 0) have
   USING (tenant, user_id) WHERE (want.n, want.len) IS DISTINCT FROM (have.n, have.len))
"""
