"""Rows of the SQLite tables ↔ the model's records, in one place.

The store, the graph backfill migration (0003) and every read turn rows into the same
records, so a column added to the schema is mapped here once.
"""

from __future__ import annotations

# the mapping both backends share, used through this module by the SQLite store
from memsvc.storage.row_mapping import (  # noqa: F401
    history_from_row,
    history_row,
    memory_row,
    message_from_row,
    message_row,
    record_from_row,
    source_keys,
)

SCOPE_FIELDS = ("user_id", "agent_id", "session_id")
