"""`memsvc worker`: execute the background jobs of a PostgreSQL store, in any number of
processes on any machine.

A worker holds a `Memory` like a server does (the embedder, the extractor and decider of
its own `MEMSVC_*` settings) and runs each job for the job's tenant through that tenant's
view of the store (serving/tenancy.py), so row-level security applies to the worker too.
The queue itself (claiming, heartbeats, retrying the jobs of dead workers) is the store's
(storage/postgres/queue.py); what a job does is serving/background_work.py's.
"""

from __future__ import annotations

import logging
from typing import Any

from memsvc.model.errors import InvalidInputError
from memsvc.sdk.memory import Memory
from memsvc.serving.background_work import run_job
from memsvc.serving.tenancy import Tenancy
from memsvc.storage.base import JobQueueSource, JobRecord

NOT_A_QUEUE = ("memsvc worker needs a PostgreSQL store (--db postgresql+psycopg://...); "
               "with a SQLite file, `memsvc serve` runs background jobs itself")


def run_worker(memory: Memory, *, concurrency: int = 1, heartbeat_seconds: float = 10.0) -> None:
    """Run jobs until interrupted (SIGINT/SIGTERM let the running jobs finish)."""
    store = memory.store
    if not isinstance(store, JobQueueSource):
        raise InvalidInputError(NOT_A_QUEUE, field="db")
    tenancy = Tenancy(memory, None, require_keys=False)

    def handle(job: JobRecord) -> dict[str, Any]:
        return run_job(tenancy.memory(job.tenant), job.kind, job.payload)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        store.job_queue().run_worker(handle, concurrency=concurrency,
                                     heartbeat_seconds=heartbeat_seconds)
    finally:
        tenancy.close()
