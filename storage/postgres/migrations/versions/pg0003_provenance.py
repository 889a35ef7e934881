"""Provenance columns (as SQLite migration 0006): `memories.writer`, `.channel`, `.trust`
and `api_keys.trust`, `api_keys.user_id`.

Existing rows get ("legacy", "user", 3) and keys trust 3 with no user binding: what callers
could do before keys had a trust level. `trust` is a plain column of `memories`, so a
`min_trust` read is one more condition in the WHERE the vector, BM25, graph and temporal
reads already share (storage/filter_sql.py).

Revision ID: pg0003
Revises: pg0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pg0003"
down_revision = "pg0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("memories", sa.Column("writer", sa.String(64), nullable=False,
                                        server_default="legacy"))
    op.add_column("memories", sa.Column("channel", sa.String(16), nullable=False,
                                        server_default="user"))
    op.add_column("memories", sa.Column("trust", sa.Integer, nullable=False,
                                        server_default="3"))
    op.add_column("api_keys", sa.Column("trust", sa.Integer, nullable=False,
                                        server_default="3"))
    op.add_column("api_keys", sa.Column("user_id", sa.String(256)))


def downgrade() -> None:
    op.drop_column("api_keys", "user_id")
    op.drop_column("api_keys", "trust")
    for column in ("trust", "channel", "writer"):
        op.drop_column("memories", column)
