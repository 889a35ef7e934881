"""The integrity columns the shared tables gained (SQLite migration 0005), left empty here.

The tables of storage/schema.py are shared by both backends, so PostgreSQL needs the columns
to read and write rows at all. PostgreSQL stores do not sign their rows yet (tamper evidence
is SQLite's so far; `memsvc verify` refuses a PostgreSQL URL): the columns stay NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pg0002"
down_revision = "pg0001"
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


def downgrade() -> None:
    op.drop_index("ix_history_chain", table_name="history")
    op.drop_column("history", "chain_user")
    for table in _SEALED:
        for column in ("mac_key", "mac", "chain_seq"):
            op.drop_column(table, column)
