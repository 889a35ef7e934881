"""The durable job queue of a PostgreSQL store: procrastinate underneath, memsvc's jobs on top.

Why procrastinate: it is a maintained PostgreSQL-only task queue (no broker to run beside the
database the operator already backs up), it defers a job inside the caller's transaction,
workers wake on LISTEN/NOTIFY, and it records each worker's heartbeat, so the jobs of a
worker that died (SIGKILL, lost machine) can be found and handed back (`get_stalled_jobs` +
`retry_job`: procrastinate does not do that on its own, the reaper below does).

Two tables per job (migration pg0005): procrastinate's `procrastinate_jobs` row schedules it;
memsvc's `background_jobs` row (tenant row-level security) says what it is and how far it
got, so `GET /v1/jobs/{id}` answers from the database on any replica, after any restart.
`submit` writes both in one transaction.

Exactly once, in effect: a job runs under a transaction-level advisory lock on its id (held
on its own connection for the whole run, released by PostgreSQL if the worker dies), so a
retried job never runs beside a still-living first attempt; and the handlers are idempotent
(an extraction only extracts episodes still marked pending: serving/worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from procrastinate import App, PsycopgConnector, RetryStrategy, SyncPsycopgConnector
from procrastinate.jobs import Job
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text

from memsvc.model.errors import MemsvcError
from memsvc.model.ids import new_id
from memsvc.storage.base import JobHandler, JobRecord
from memsvc.storage.postgres.engine import libpq_url, set_tenant

log = logging.getLogger("memsvc.worker")

QUEUE = "memsvc"
TASK = "memsvc.run"
MAX_ATTEMPTS = 3  # a job failing with an unexpected error is tried this often in all
STALLED_AFTER_HEARTBEATS = 3  # a worker silent for this many heartbeats is presumed dead
# A finished job (done or failed) is answered by `GET /v1/jobs/{id}` for this long, then its
# rows go: memsvc's `background_jobs` row when its tenant next submits a job (row-level
# security lets a transaction see one tenant only, so each tenant prunes its own), and
# procrastinate's row and events by any worker, every `PRUNE_EVERY` seconds.
RETENTION_HOURS = 24 * 7
PRUNE_EVERY = 3600.0
_COLUMNS = "id, tenant, kind, status, payload, result, error, attempts"


class PostgresJobQueue:
    """`JobQueue` on a PostgreSQL store's engine (the unprivileged app role)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conninfo = libpq_url(engine.url)
        # deferring needs no pool: it runs on the caller's connection
        self._deferrer = App(connector=SyncPsycopgConnector(conninfo=self.conninfo))

    # -- the replica's side ---------------------------------------------------------------

    def submit(self, tenant: str, kind: str, payload: dict[str, Any]) -> JobRecord:
        job_id = new_id()
        with self.engine.begin() as conn:
            set_tenant(conn, tenant)
            prune_finished(conn, tenant)
            conn.execute(text(
                "INSERT INTO background_jobs (id, tenant, kind, status, payload) "
                "VALUES (:id, :tenant, :kind, 'queued', :payload)"
            ), {"id": job_id, "tenant": tenant, "kind": kind, "payload": Jsonb(payload)})
            deferred = self._deferrer.job_manager.defer_job(
                Job(queue=QUEUE, lock=None, queueing_lock=None, task_name=TASK,
                    task_kwargs={"job_id": job_id, "tenant": tenant}),
                connection=conn.connection.driver_connection,
            )
            conn.execute(text("UPDATE background_jobs SET queue_job_id = :q WHERE id = :id"),
                         {"q": deferred.id, "id": job_id})
        return JobRecord(id=job_id, tenant=tenant, kind=kind, status="queued", payload=payload)

    def get(self, tenant: str, job_id: str) -> JobRecord | None:
        with self.engine.begin() as conn:
            set_tenant(conn, tenant)
            return _fetch(conn, tenant, job_id)

    # -- the worker's side ----------------------------------------------------------------

    def run_worker(self, handler: JobHandler, *, concurrency: int = 1,
                   heartbeat_seconds: float = 10.0) -> None:
        """Run jobs until SIGINT/SIGTERM (a graceful stop lets running jobs finish)."""
        app = App(connector=PsycopgConnector(conninfo=self.conninfo, min_size=1,
                                             max_size=concurrency + 2))

        # memsvc's own count decides when to give up (`execute`); procrastinate's limit is
        # only a backstop, since its count also moves when a stalled job is handed back
        @app.task(name=TASK, queue=QUEUE,
                  retry=RetryStrategy(max_attempts=3 * MAX_ATTEMPTS, wait=2))
        def run(job_id: str, tenant: str) -> None:
            self.execute(handler, tenant, job_id)

        asyncio.run(self._work(app, concurrency, heartbeat_seconds))

    async def _work(self, app: App, concurrency: int, heartbeat: float) -> None:
        stalled_after = heartbeat * STALLED_AFTER_HEARTBEATS
        async with app.open_async():
            reaper = asyncio.create_task(_retry_stalled(app, stalled_after, heartbeat))
            pruner = asyncio.create_task(_prune_queue(app, PRUNE_EVERY))
            try:
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=concurrency,
                    update_heartbeat_interval=heartbeat, stalled_worker_timeout=stalled_after,
                )
            finally:
                for task in (reaper, pruner):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def execute(self, handler: JobHandler, tenant: str, job_id: str) -> None:
        """Run one job under its advisory lock and record the outcome.

        A job already done (a retry after the first attempt committed its work and died
        before procrastinate heard of it) is left alone. A `MemsvcError` is the job's own
        fault (bad input, a memory deleted meanwhile): it fails at once. Anything else is
        raised for procrastinate to retry; after `MAX_ATTEMPTS` started attempts (dead
        workers' included) the job fails.
        """
        with self.engine.begin() as lock:
            lock.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                         {"k": f"memsvc-job:{job_id}"})
            job = self._claim(tenant, job_id)
            if job is None or job.status in ("done", "failed"):
                return
            if job.attempts > MAX_ATTEMPTS:  # its workers keep dying (killed, out of memory)
                self._finish(tenant, job_id, "failed", error={
                    "code": "internal", "message": f"gave up after {MAX_ATTEMPTS} attempts"})
                return
            try:
                result = handler(job)
            except MemsvcError as exc:
                self._finish(tenant, job_id, "failed", error=exc.to_dict())
                return
            except Exception as exc:
                last = job.attempts >= MAX_ATTEMPTS
                error = {"code": "internal", "message": f"{type(exc).__name__} in job {job_id}"}
                self._finish(tenant, job_id, "failed" if last else "queued", error=error)
                log.exception("background job %s (attempt %d) failed", job_id, job.attempts)
                if last:
                    return
                raise
            self._finish(tenant, job_id, "done", result=result)

    def _claim(self, tenant: str, job_id: str) -> JobRecord | None:
        with self.engine.begin() as conn:
            set_tenant(conn, tenant)
            conn.execute(text(
                "UPDATE background_jobs SET status = 'running', attempts = attempts + 1, "
                "updated_at = :now WHERE id = :id AND status NOT IN ('done', 'failed')"
            ), {"id": job_id, "now": datetime.now(UTC)})
            return _fetch(conn, tenant, job_id)

    def _finish(self, tenant: str, job_id: str, status: str, *,
                result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            set_tenant(conn, tenant)
            conn.execute(text(
                "UPDATE background_jobs SET status = :status, result = :result, "
                "error = :error, updated_at = :now WHERE id = :id"
            ), {"id": job_id, "status": status, "now": datetime.now(UTC),
                "result": None if result is None else Jsonb(result),
                "error": None if error is None else Jsonb(error)})


def prune_finished(conn: Connection, tenant: str, *,
                   older_than_hours: float = RETENTION_HOURS) -> int:
    """Delete `tenant`'s jobs that finished more than `older_than_hours` ago; how many."""
    return conn.execute(text(
        "DELETE FROM background_jobs WHERE tenant = :tenant AND status IN ('done', 'failed') "
        "AND updated_at < now() - :hours * interval '1 hour'"
    ), {"tenant": tenant, "hours": older_than_hours}).rowcount


def _fetch(conn: Connection, tenant: str, job_id: str) -> JobRecord | None:
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM background_jobs "
                            "WHERE tenant = :tenant AND id = :id"),
                       {"tenant": tenant, "id": job_id}).first()
    if row is None:
        return None
    return JobRecord(id=row.id, tenant=row.tenant, kind=row.kind, status=row.status,
                     payload=row.payload, result=row.result, error=row.error,
                     attempts=row.attempts)


async def _prune_queue(app: App, every: float) -> None:
    """procrastinate's rows of memsvc jobs finished before the retention window, forever
    (every worker runs this; deleting twice is harmless)."""
    while True:
        try:
            await app.job_manager.delete_old_jobs(
                nb_hours=RETENTION_HOURS, queue=QUEUE, include_failed=True)
        except Exception:  # the pruner must outlive a lost connection
            log.exception("pruning finished jobs failed")
        await asyncio.sleep(every)


async def _retry_stalled(app: App, stalled_after: float, every: float) -> None:
    """Hand the jobs of dead workers back to the queue, forever (every worker runs this;
    two retrying one job at once is harmless: the second finds it no longer 'doing')."""
    while True:
        await asyncio.sleep(every)
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                queue=QUEUE, seconds_since_heartbeat=stalled_after)
            for job in stalled:
                log.warning("retrying job %s of a worker presumed dead", job.id)
                with contextlib.suppress(Exception):
                    await app.job_manager.retry_job(job)
        except Exception:  # the reaper must outlive a lost connection
            log.exception("looking for stalled jobs failed")
