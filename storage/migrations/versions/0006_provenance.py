"""Provenance: who wrote each memory, through which channel, and how far it is trusted.

- `memories.writer`, `.channel`, `.trust` (memsvc.model.trust). Rows written before this
  revision get ("legacy", "user", 3): they were written before keys had a trust level, by
  callers who could write anything a user can, so user level keeps every existing read
  unchanged (the default read, `min_trust="agent"`, still serves them). The integrity MAC
  of such a row stays the one it was signed with (storage/integrity/codec.py: a row holding
  exactly the legacy values is signed without them; any edit of them breaks the MAC), so no
  re-signing is needed and the witness keeps agreeing.
- `api_keys.trust` (the highest trust a key's writes get; 3 = today's behaviour) and
  `api_keys.user_id` (the one user a key may act for; NULL = any user of its tenant).
- `memory_vec` gains `trust` as a metadata column, so a `min_trust` read is applied inside
  the KNN (like the scope) rather than by post-filtering a global top-k. vec0 cannot alter
  its columns, so the rows go through a plain table and back (as in 0004).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_METADATA = "tenant, user_id, agent_id, session_id, kind, status"
_COLUMNS = (
    "part text partition key, shard integer partition key, tenant text, user_id text, "
    "agent_id text, session_id text, kind text, status text"
)


def _rebuild(with_trust: bool) -> None:
    dim = int(
        op.get_bind().execute(
            text("SELECT value FROM store_meta WHERE key = 'embedding_dim'")
        ).scalar() or 384
    )
    op.execute(
        "CREATE TABLE memory_vec_copy AS SELECT v.rowid AS pk, v.embedding, v.part, v.shard, "
        f"{', '.join('v.' + c for c in _METADATA.split(', '))}, m.trust, v.memory_id "
        "FROM memory_vec v JOIN memories m ON m.pk = v.rowid"
    )
    op.execute("DROP TABLE memory_vec")
    trust_ddl, trust_col = (", trust integer", ", trust") if with_trust else ("", "")
    op.execute(
        f"CREATE VIRTUAL TABLE memory_vec USING vec0(embedding float[{dim}] "
        f"distance_metric=l2, {_COLUMNS}{trust_ddl}, +memory_id text, chunk_size=64)"
    )
    op.execute(
        f"INSERT INTO memory_vec(rowid, embedding, part, shard, {_METADATA}{trust_col}, "
        f"memory_id) SELECT pk, embedding, part, shard, {_METADATA}{trust_col}, memory_id "
        "FROM memory_vec_copy ORDER BY pk"
    )
    op.execute("DROP TABLE memory_vec_copy")


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
    _rebuild(with_trust=True)


def downgrade() -> None:
    _rebuild(with_trust=False)
    # SQLite ≥ 3.35 drops a column in place (a batch copy would lose the FTS triggers)
    for table, column in (("api_keys", "user_id"), ("api_keys", "trust"),
                          ("memories", "trust"), ("memories", "channel"),
                          ("memories", "writer")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
