"""Alembic environment: migrations always run on the connection the store hands over.

The store opens SQLite with sqlite-vec loaded (the vec0 table needs it), so migrations never
open a connection of their own.
"""

from alembic import context

from memsvc.storage.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a bare `alembic` command
    raise RuntimeError("memsvc migrations run through SQLiteStore, which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
