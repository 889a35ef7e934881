"""Alembic environment of the PostgreSQL chain: runs on the connection the store hands over.

This chain is separate from the SQLite one (storage/migrations): the PostgreSQL schema keeps
vectors, the full-text vector and row-level security in the tables themselves, where SQLite
needs virtual tables and triggers, so the two share table *shapes* (storage/schema.py) but
not DDL. Revisions here are numbered pg0001, pg0002, ...
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a bare `alembic` command
    raise RuntimeError("memsvc migrations run through PostgresStore, which passes a connection")

context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
