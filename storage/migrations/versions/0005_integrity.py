"""Integrity: a MAC on every memory, message and history row, per-scope chains and heads.

Adds the columns that place a row in its owner's chain (`chain_seq`, `mac`, `mac_key`; history
also `chain_user`, the user of its memory), the chain (`integrity_chain`) and the heads
(`integrity_heads`), and a random `store_id` (bound into every MAC, and naming the store's
witness file). Then it signs what the store already holds, in created order, with the key
from `MEMSVC_INTEGRITY_KEY` or the config dir (see memsvc.storage.integrity.keys); the
witness learns the new heads when the store is next opened.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SEALED = ("memories", "messages", "history")


def upgrade() -> None:
    for table in _SEALED:
        op.add_column(table, sa.Column("chain_seq", sa.Integer))
        op.add_column(table, sa.Column("mac", sa.String(64)))
        op.add_column(table, sa.Column("mac_key", sa.String(16)))
    op.add_column("history", sa.Column("chain_user", sa.String(256)))
    op.create_index("ix_history_chain", "history", ["tenant", "chain_user"])
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
    store_id = uuid.uuid4().hex
    op.execute(f"INSERT INTO store_meta(key, value) VALUES ('store_id', '{store_id}')")
    _sign(store_id)


def _sign(store_id: str) -> None:
    from memsvc.storage.integrity import load_keyring
    from memsvc.storage.sqlite.audit import sign_existing

    sign_existing(op.get_bind(), load_keyring(), store_id)


def downgrade() -> None:
    op.drop_table("integrity_heads")
    op.drop_table("integrity_chain")
    op.execute("DELETE FROM store_meta WHERE key = 'store_id'")
    op.drop_index("ix_history_chain", "history")
    # SQLite ≥ 3.35 drops a column in place (a batch copy would lose the FTS triggers)
    op.execute("ALTER TABLE history DROP COLUMN chain_user")
    for table in _SEALED:
        for column in ("mac_key", "mac", "chain_seq"):
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
