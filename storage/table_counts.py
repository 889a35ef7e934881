"""One tenant's row counts over the shared tables (`StoreTransfer.transfer_counts`): what
`memsvc migrate-store` compares between the source and the copy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from memsvc.storage.schema import entities, entity_relations, history, memory_entities, messages


def tenant_counts(conn: Connection, tenant: str, memory_table: Any) -> dict[str, int]:
    """Counts keyed by `storage.base.TRANSFER_COUNTS`; `memory_table` is the backend's own
    `memories` table (PostgreSQL's carries the vector columns)."""

    def count(table: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table)
                                .where(table.c.tenant == tenant)).scalar_one())

    return {"memories": count(memory_table), "messages": count(messages),
            "history": count(history), "entities": count(entities),
            "links": count(memory_entities), "relations": count(entity_relations)}
