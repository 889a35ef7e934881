"""PostgreSQL backend: `PostgresStore` (pgvector + full text + row-level security) and the
embedded server (`EmbeddedPostgres`) that `memsvc db postgres start` runs."""

from memsvc.storage.postgres.server import EmbeddedPostgres, ServerState, ServerStatus
from memsvc.storage.postgres.store import PostgresStore

__all__ = ["EmbeddedPostgres", "PostgresStore", "ServerState", "ServerStatus"]
