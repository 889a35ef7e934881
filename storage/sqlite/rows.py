"""Rows of the SQLite tables ↔ the model's records, in one place.

The store, the graph backfill migration (0003) and every read turn rows into the same
records, so a column added to the schema is mapped here once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection

from memsvc.storage.base import SourceKey

# the mapping both backends share, used through this module by the SQLite store
from memsvc.storage.row_mapping import (  # noqa: F401
    history_from_row,
    history_row,
    memory_row,
    message_from_row,
    message_row,
    record_from_row,
)
from memsvc.storage.schema import UTCDateTime

SCOPE_FIELDS = ("user_id", "agent_id", "session_id")

_TIME = UTCDateTime()
_SOURCE_KEYS = (
    "SELECT id, kind, valid_to, source_message_ids, importance FROM memories "
    "WHERE tenant = ? AND id IN (SELECT value FROM json_each(?))"
)


def source_keys(conn: Connection, tenant: str, memory_ids: Sequence[str]
                ) -> dict[str, SourceKey]:
    """The `SourceKey` of each of `memory_ids` that exists (`row_mapping.source_keys` on
    SQLite): the ids as one JSON parameter and the two typed columns read here, where the
    composed statement expanded its IN list and typed the rows on every search."""
    found = conn.exec_driver_sql(_SOURCE_KEYS, (tenant, json.dumps(list(memory_ids))))
    return {
        memory_id: SourceKey(kind, _TIME.process_result_value(valid_to, None),
                             tuple((json.loads(sources) if sources is not None else None) or ()),
                             importance)
        for memory_id, kind, valid_to, sources, importance in found.fetchall()
    }
