"""Entity graph: entities with aliases, memory↔entity links, entity↔entity relations.

Links and relations reference `memories.id` with ON DELETE CASCADE, so erasing a memory
(hard delete, delete_all, reset) erases its edges in the same statement. `graph_state` holds
one version counter per (tenant, user) that every link change bumps in the writing
transaction: a cached in-memory graph compares it to know when to rebuild.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.String(27)


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),  # '' when the scope has none
        sa.Column("agent_id", sa.String(256), nullable=False),
        sa.Column("norm", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("aliases", sa.JSON, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.UniqueConstraint("tenant", "user_id", "agent_id", "norm", name="uq_entities_scope_norm"),
    )
    op.create_table(
        "memory_entities",
        sa.Column(
            "memory_id",
            sa.String(26),
            sa.ForeignKey("memories.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "entity_pk",
            sa.Integer,
            sa.ForeignKey("entities.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tenant", sa.String(128), nullable=False),
    )
    op.create_index("ix_memory_entities_entity", "memory_entities", ["entity_pk"])
    op.create_table(
        "entity_relations",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column(
            "src_pk", sa.Integer, sa.ForeignKey("entities.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "dst_pk", sa.Integer, sa.ForeignKey("entities.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("predicate", sa.Text, nullable=False),
        sa.Column(
            "memory_id",
            sa.String(26),
            sa.ForeignKey("memories.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index("ix_entity_relations_memory", "entity_relations", ["memory_id"])
    op.create_index("ix_entity_relations_src", "entity_relations", ["src_pk"])
    op.create_index("ix_entity_relations_dst", "entity_relations", ["dst_pk"])
    op.create_table(
        "graph_state",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


    _backfill()


def _backfill() -> None:
    """Link the memories a store already holds, so an upgraded file has its graph too."""
    from memsvc.storage.schema import memories
    from memsvc.storage.sqlite.graph import link_memories
    from memsvc.storage.sqlite.rows import record_from_row

    conn = op.get_bind()
    # only the columns this file has now: later migrations add more to the model
    present = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(memories)")}
    columns = [c for c in memories.c if c.name in present]
    last_pk = 0
    while True:
        rows = conn.execute(
            sa.select(*columns)
            .where(memories.c.pk > last_pk, sa.func.json_array_length(memories.c.entities) > 0)
            .order_by(memories.c.pk)
            .limit(500)
        ).all()
        if not rows:
            return
        by_tenant: dict[str, list] = {}
        for row in rows:
            by_tenant.setdefault(row.tenant, []).append(record_from_row(row))
        for tenant, records in by_tenant.items():
            link_memories(conn, tenant, records, replace=False)
        last_pk = rows[-1].pk


def downgrade() -> None:
    for table in ("graph_state", "entity_relations", "memory_entities", "entities"):
        op.drop_table(table)
