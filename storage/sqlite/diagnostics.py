"""What a SQLite store holds and whether its indexes agree with its rows.

`stats` counts one tenant's rows in every table and index; `consistency` checks the whole
file (rows ↔ vec0 rows ↔ FTS5), which is what a crash test or `memsvc stats` needs to know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from memsvc.model.records import StoreStats
from memsvc.storage.schema import history, memories, messages


def store_stats(conn: Connection, tenant: str, path: Path) -> StoreStats:
    mine = memories.c.tenant == tenant
    by_kind: dict[str, int] = dict(
        conn.execute(select(memories.c.kind, func.count()).where(mine).group_by("kind")).all()
    )
    by_status: dict[str, int] = dict(
        conn.execute(select(memories.c.status, func.count()).where(mine).group_by("status"))
        .all()
    )
    n_messages = conn.execute(
        select(func.count()).select_from(messages).where(messages.c.tenant == tenant)
    ).scalar_one()
    n_history = conn.execute(
        select(func.count()).select_from(history).where(history.c.tenant == tenant)
    ).scalar_one()
    n_vectors = conn.exec_driver_sql(
        "SELECT count(*) FROM memory_vec WHERE tenant = ?", (tenant,)
    ).scalar_one()
    n_fts = conn.exec_driver_sql(
        "SELECT count(*) FROM memory_fts f JOIN memories m ON m.pk = f.rowid WHERE m.tenant = ?",
        (tenant,),
    ).scalar_one()
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return StoreStats(
        memories=sum(by_kind.values()),
        by_kind=by_kind,
        by_status=by_status,
        messages=int(n_messages),
        history=int(n_history),
        vectors=int(n_vectors),
        fts_rows=int(n_fts),
        path=str(path),
        size_bytes=size,
    )


def consistency_report(conn: Connection) -> dict[str, Any]:
    """Do the indexes agree with the rows? "consistent" sums it up."""
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
