"""The durable job queue: procrastinate's tables and memsvc's `background_jobs`.

procrastinate (storage/postgres/queue.py) keeps the queue itself: which job is to do, which
worker holds it, its heartbeats and retries. `background_jobs` keeps what memsvc reports for a
job (`GET /v1/jobs/{id}` on any replica): its tenant, kind, payload, status and result, under
the same tenant row-level security policy as every other tenant table.

procrastinate's schema script is not idempotent (it creates types and functions without IF
NOT EXISTS), so it runs only when its jobs table is not in this schema yet; the migration
itself runs under the store's migration advisory lock (storage/postgres/engine.py). Later
procrastinate releases bring their own migration scripts: they become pgNNNN revisions.
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy import text

revision = "pg0005"
down_revision = "pg0004"
branch_labels = None
depends_on = None

_JOBS = """
CREATE TABLE background_jobs (
    id varchar(64) PRIMARY KEY,
    tenant varchar(128) NOT NULL,
    kind varchar(32) NOT NULL,
    status varchar(16) NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    error jsonb,
    attempts integer NOT NULL DEFAULT 0,
    queue_job_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_background_jobs_tenant ON background_jobs (tenant, created_at);
ALTER TABLE background_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE background_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON background_jobs
    USING (tenant = current_setting('memsvc.tenant', true))
    WITH CHECK (tenant = current_setting('memsvc.tenant', true));
"""


def upgrade() -> None:
    op.execute(_JOBS)
    present = op.get_bind().execute(
        text("SELECT to_regclass(current_schema() || '.procrastinate_jobs') IS NOT NULL")
    ).scalar_one()
    if not present:
        # straight to psycopg without parameters, so the script's '%' is not a placeholder
        driver = op.get_bind().connection.driver_connection
        assert driver is not None
        driver.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.execute("DROP TABLE background_jobs")
