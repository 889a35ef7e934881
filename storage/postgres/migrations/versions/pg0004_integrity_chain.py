"""Integrity on PostgreSQL: the per-scope chain and its heads, a store id, and signing.

The same tables as SQLite's migration 0005 (`integrity_chain`, `integrity_heads`, shapes from
storage/schema.py) with the tenant policy every tenant-owned table has (pg0001), a random
`store_id` in `store_meta` (bound into every MAC), and then every row the store already holds
signed in created order with the key from `MEMSVC_INTEGRITY_KEY` or the config dir (see
memsvc.storage.integrity.keys). The rows are read as this migration's role: run it as the
server's superuser (the embedded `postgres`), which row-level security does not hide rows
from, or as the owner of an empty store.

Revision ID: pg0004
Revises: pg0002
Create Date: 2026-12-02
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "pg0004"
down_revision = "pg0002"
branch_labels = None
depends_on = None

_POLICY = """
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {table}
    USING (tenant = current_setting('memsvc.tenant', true))
    WITH CHECK (tenant = current_setting('memsvc.tenant', true));
"""


def upgrade() -> None:
    op.create_table(
        "integrity_chain",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("scope", sa.String(256), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("ref", sa.String(300), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("mac_key", sa.String(16), nullable=False),
    )
    # a memory's latest entry (its digest) is looked up by its id on every read: covering
    op.create_index(
        "ix_integrity_chain_ref", "integrity_chain", ["tenant", "ref", "scope", "seq", "digest"]
    )
    op.create_table(
        "integrity_heads",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("scope", sa.String(256), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("base", sa.Integer, nullable=False),
        sa.Column("base_tag", sa.String(64), nullable=False),
        sa.Column("memories", sa.Integer, nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("history", sa.Integer, nullable=False),
        sa.Column("mac_key", sa.String(16), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    for table in ("integrity_chain", "integrity_heads"):
        op.execute(_POLICY.format(table=table))
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
