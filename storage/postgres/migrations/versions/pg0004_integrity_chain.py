"""Integrity on PostgreSQL: the per-scope chain and its heads, a store id, and signing.

The same tables as SQLite's migration 0005 (`integrity_chain`, `integrity_heads`, created from
storage/schema.py) with the tenant policy every tenant-owned table has (pg0001's), a random
`store_id` in `store_meta` (bound into every MAC), and then every row the store already holds
signed in created order with the key from `MEMSVC_INTEGRITY_KEY` or the config dir (see
memsvc.storage.integrity.keys). The rows are read as this migration's role: run it as the
server's superuser (the embedded `postgres`), which row-level security does not hide rows
from, or as the owner of an empty store.

Revision ID: pg0004
Revises: pg0003
Create Date: 2026-12-02
"""

import uuid

from alembic import op

revision = "pg0004"
down_revision = "pg0003"
branch_labels = None
depends_on = None

def upgrade() -> None:
    from memsvc.storage.postgres.migrations.versions.pg0001_initial import _POLICY
    from memsvc.storage.schema import integrity_chain, integrity_heads

    for table in (integrity_chain, integrity_heads):
        # the shapes SQLite's migration 0005 creates, from storage/schema.py (with the
        # covering index a memory's read looks its latest entry up by)
        table.create(op.get_bind())
        op.execute(_POLICY.format(table=table.name))
    store_id = uuid.uuid4().hex
    op.execute(f"INSERT INTO store_meta(key, value) VALUES ('store_id', '{store_id}')")
    _sign(store_id)


def _sign(store_id: str) -> None:
    from memsvc.storage.integrity import load_keyring
    from memsvc.storage.integrity.whole_store import sign_existing
    from memsvc.storage.postgres.tables import pg_memories

    sign_existing(op.get_bind(), load_keyring(), store_id, pg_memories)


def downgrade() -> None:
    op.drop_table("integrity_heads")
    op.drop_table("integrity_chain")
    op.execute("DELETE FROM store_meta WHERE key = 'store_id'")
    op.execute("UPDATE memories SET chain_seq = NULL, mac = NULL, mac_key = NULL")
    op.execute("UPDATE messages SET chain_seq = NULL, mac = NULL, mac_key = NULL")
    op.execute("UPDATE history SET chain_seq = NULL, mac = NULL, mac_key = NULL, "
               "chain_user = NULL")
