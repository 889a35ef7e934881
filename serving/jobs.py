"""Background writes: `202 Accepted` once the raw messages are durable, extraction later.

The request thread stores the messages (and their episode memories) in one transaction
before answering, so an acknowledged write survives a crash; only the extraction step runs
in the background. Job state is kept in this process (bounded), because it is a progress
report, not data: after a restart a job id is unknown (404), while its messages are stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from memsvc.model.errors import MemsvcError, NotFoundError
from memsvc.model.ids import new_id
from memsvc.model.records import AddResult
from memsvc.serving.errors import report_internal
from memsvc.serving.schemas import JobInfo

_MAX_JOBS = 10_000


class JobRunner:
    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memsvc-job")
        self._jobs: OrderedDict[tuple[str, str], JobInfo] = OrderedDict()
        self._lock = threading.Lock()

    def submit(
        self, tenant: str, first: AddResult, work: Callable[[], AddResult]
    ) -> JobInfo:
        """Record a job whose messages (`first`) are stored, and run `work` after it."""
        job = JobInfo(id=new_id(), status="queued", message_ids=first.message_ids)
        with self._lock:
            self._jobs[(tenant, job.id)] = job
            while len(self._jobs) > _MAX_JOBS:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, tenant, job.id, first, work)
        return job.model_copy()

    def _run(
        self, tenant: str, job_id: str, first: AddResult, work: Callable[[], AddResult]
    ) -> None:
        self._set(tenant, job_id, status="running")
        try:
            later = work()
        except MemsvcError as exc:
            self._set(tenant, job_id, status="failed", error=exc.to_dict())
            return
        except Exception as exc:  # a job must report, not vanish (its text only to the log)
            self._set(tenant, job_id, status="failed",
                      error=report_internal(exc, f"background job {job_id}"))
            return
        result = AddResult(message_ids=first.message_ids, results=first.results + later.results)
        self._set(tenant, job_id, status="done", result=result)

    def _set(self, tenant: str, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs.get((tenant, job_id))
            if job is not None:
                self._jobs[(tenant, job_id)] = job.model_copy(update=changes)

    def get(self, tenant: str, job_id: str) -> JobInfo:
        """A job of this tenant only: another tenant's job id is a 404 like any unknown id."""
        with self._lock:
            job = self._jobs.get((tenant, job_id))
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r}", field="job_id")
        return job

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
