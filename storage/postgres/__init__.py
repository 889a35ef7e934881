"""PostgreSQL backend: `PostgresStore` (pgvector + full text + row-level security) and the
embedded server (`EmbeddedPostgres`) that `memsvc db postgres start` runs.

Names load on first use (PEP 562), so the server's CLI does not import the store's stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memsvc.storage.postgres.server import EmbeddedPostgres, ServerState, ServerStatus
    from memsvc.storage.postgres.store import PostgresStore

_WHERE = {
    "EmbeddedPostgres": "memsvc.storage.postgres.server",
    "ServerState": "memsvc.storage.postgres.server",
    "ServerStatus": "memsvc.storage.postgres.server",
    "PostgresStore": "memsvc.storage.postgres.store",
}
__all__ = ["EmbeddedPostgres", "PostgresStore", "ServerState", "ServerStatus"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
