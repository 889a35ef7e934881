"""Background jobs: in the server's process (SQLite), or on a durable queue (PostgreSQL).

A job is a kind and a JSON payload (serving/background_work.py), so where it runs is the
server's choice, not the route's:

- `JobRunner` (a SQLite store: one server process per file): a small thread pool in this
  process. Job state is kept here (bounded), as a progress report, not data: after a
  restart a job id is unknown (404), while its messages are stored and its extraction is
  recovered from the durable "extraction pending" mark (serving/recovery.py).
- `QueuedJobs` (a store with a `JobQueue`, i.e. PostgreSQL): the job is recorded and queued
  in the database before the 202, `memsvc worker` processes run it, and its status is read
  from the database, so any replica answers for it, after any restart.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from memsvc.model.errors import MemsvcError, NotFoundError
from memsvc.model.ids import new_id
from memsvc.sdk.memory import Memory
from memsvc.serving.background_work import job_info, run_job
from memsvc.serving.errors import report_internal
from memsvc.serving.schemas import JobInfo
from memsvc.storage.base import JobQueue, JobRecord

_MAX_JOBS = 10_000


class BackgroundJobs(Protocol):
    def submit(self, tenant: str, memory: Memory, kind: str,
               payload: dict[str, Any]) -> JobInfo:
        """Accept a job of `tenant` (`memory` is that tenant's, for in-process runs)."""
        ...

    def get(self, tenant: str, job_id: str) -> JobInfo:
        """A job of this tenant only: another tenant's job id is a 404 like any unknown id."""
        ...

    def close(self) -> None: ...


class JobRunner:
    """Jobs in this process's thread pool."""

    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memsvc-job")
        self._jobs: OrderedDict[tuple[str, str], JobRecord] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, tenant: str, memory: Memory, kind: str,
               payload: dict[str, Any]) -> JobInfo:
        job = JobRecord(id=new_id(), tenant=tenant, kind=kind, status="queued",
                        payload=payload)
        with self._lock:
            self._jobs[(tenant, job.id)] = job
            while len(self._jobs) > _MAX_JOBS:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, memory, job)
        return job_info(job)

    def _run(self, memory: Memory, job: JobRecord) -> None:
        self._set(job, status="running", attempts=1)
        try:
            result = run_job(memory, job.kind, job.payload)
        except MemsvcError as exc:
            self._set(job, status="failed", error=exc.to_dict())
            return
        except Exception as exc:  # a job must report, not vanish (its text only to the log)
            self._set(job, status="failed",
                      error=report_internal(exc, f"background job {job.id}"))
            return
        self._set(job, status="done", result=result)

    def _set(self, job: JobRecord, **changes: Any) -> None:
        key = (job.tenant, job.id)
        with self._lock:
            current = self._jobs.get(key)
            if current is not None:
                self._jobs[key] = dataclasses.replace(current, **changes)

    def get(self, tenant: str, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get((tenant, job_id))
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r}", field="job_id")
        return job_info(job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class QueuedJobs:
    """Jobs on the store's durable queue, run by `memsvc worker` processes."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def submit(self, tenant: str, memory: Memory, kind: str,
               payload: dict[str, Any]) -> JobInfo:
        return job_info(self.queue.submit(tenant, kind, payload))

    def get(self, tenant: str, job_id: str) -> JobInfo:
        job = self.queue.get(tenant, job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r}", field="job_id")
        return job_info(job)

    def close(self) -> None:
        """Nothing to stop: the jobs live in the database."""
