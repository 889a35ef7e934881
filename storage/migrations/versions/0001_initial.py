"""Initial schema: memories, messages, history, store_meta, FTS5 and vec0 indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.String(27)


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(26), nullable=False, unique=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("agent_id", sa.String(256)),
        sa.Column("session_id", sa.String(256)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("predicate", sa.Text),
        sa.Column("object", sa.Text),
        sa.Column("entities", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("valid_from", _TIME),
        sa.Column("valid_to", _TIME),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("invalidated_at", _TIME),
        sa.Column("source_message_ids", sa.JSON, nullable=False),
        sa.Column("extractor", sa.String(64), nullable=False),
        sa.Column("extractor_version", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("superseded_by", sa.String(26)),
        sa.Column("importance", sa.Float, nullable=False),
        sa.Column("access_count", sa.Integer, nullable=False),
        sa.Column("last_accessed_at", _TIME),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fts_scope", sa.String(24), nullable=False),
    )
    # Lookups by id always carry the tenant too; without this index (and without ANALYZE
    # statistics) SQLite answers `tenant = ? AND id IN (...)` by walking the tenant's rows.
    op.create_index("ix_memories_tenant_id", "memories", ["tenant", "id"], unique=True)
    op.create_index("ix_memories_user", "memories", ["tenant", "user_id", "status"])
    op.create_index("ix_memories_agent", "memories", ["tenant", "agent_id", "status"])
    op.create_index("ix_memories_session", "memories", ["tenant", "session_id", "status"])
    op.create_index("ix_memories_hash", "memories", ["tenant", "content_hash"])

    op.create_table(
        "messages",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(26), nullable=False, unique=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("agent_id", sa.String(256)),
        sa.Column("session_id", sa.String(256)),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("timestamp", _TIME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
    )
    op.create_index("ix_messages_scope", "messages", ["tenant", "user_id", "session_id"])

    op.create_table(
        "history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("memory_id", sa.String(26), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("old", sa.JSON),
        sa.Column("new", sa.JSON),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_history_memory", "history", ["tenant", "memory_id"])

    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )

    # BM25 index over memory text, an external-content FTS5 table kept in step by triggers,
    # so a row and its index entry are written by the same statement, in the same transaction.
    # `fts_scope` is one opaque token per tenant+user: ANDed into the MATCH, it makes FTS5
    # intersect posting lists with the user's rows instead of scoring every user's matches.
    op.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5(text, fts_scope, content='memories', "
        "content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN "
        "INSERT INTO memory_fts(rowid, text, fts_scope) VALUES (new.pk, new.text, new.fts_scope); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, text, fts_scope) "
        "VALUES ('delete', old.pk, old.text, old.fts_scope); END"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_au AFTER UPDATE OF text, fts_scope ON memories BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, text, fts_scope) "
        "VALUES ('delete', old.pk, old.text, old.fts_scope); "
        "INSERT INTO memory_fts(rowid, text, fts_scope) VALUES (new.pk, new.text, new.fts_scope); "
        "END"
    )

    # Vector index. `part` (tenant + user) is the partition key so a user's KNN only touches
    # that user's vectors; the other scope fields, kind and status are metadata columns that
    # sqlite-vec filters inside the KNN query itself. Chunks of 128 vectors keep a new user's
    # partition small (the default 1,024 would allocate 1.5 MB per user).
    dim = int(context.config.attributes.get("embedding_dim", 384))
    op.execute(
        f"CREATE VIRTUAL TABLE memory_vec USING vec0(embedding float[{dim}] "
        "distance_metric=cosine, part text partition key, tenant text, user_id text, "
        "agent_id text, session_id text, kind text, status text, chunk_size=128)"
    )
    op.execute(f"INSERT INTO store_meta(key, value) VALUES ('embedding_dim', '{dim}')")


def downgrade() -> None:
    op.execute("DROP TABLE memory_vec")
    op.execute("DROP TRIGGER memories_fts_au")
    op.execute("DROP TRIGGER memories_fts_ad")
    op.execute("DROP TRIGGER memories_fts_ai")
    op.execute("DROP TABLE memory_fts")
    for table in ("store_meta", "history", "messages", "memories"):
        op.drop_table(table)
