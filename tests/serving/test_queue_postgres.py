"""The durable queue of a PostgreSQL store, in one process: what a retry may and may not do.

The replica test (test_replicas_postgres.py) kills a worker before its job commits; here
the harder case is staged directly: the job's work committed, then its worker died before
recording it done, so the queue hands it out again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.records import AddResult
from memsvc.model.settings import Settings
from memsvc.sdk.background import add_for_later
from memsvc.serving.background_work import ADD, CONSOLIDATE, add_payload, run_job
from memsvc.serving.jobs import QueuedJobs
from memsvc.serving.tenancy import Tenancy
from memsvc.storage.base import JobQueue, JobQueueSource, JobRecord
from memsvc.storage.postgres.queue import RETENTION_HOURS

TEXT = "I adopted a dog named Rex last week."


@pytest.fixture
def memory(pg_url: str, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    m = Memory(settings=Settings(db_path=pg_url), embedder=embedder)
    yield m
    m.close()


def _queue(memory: Memory) -> JobQueue:
    assert isinstance(memory.store, JobQueueSource)
    return memory.store.job_queue()


def _derived(memory: Memory, user: str) -> list[str]:
    return sorted(m.text for m in memory.get_all(user_id=user, limit=100).items
                  if m.kind.value != "episode")


def _background_add(memory: Memory, queue: JobQueue, user: str) -> JobRecord:
    first = add_for_later(memory, TEXT, user_id=user)
    scope = {"user_id": user, "agent_id": None, "session_id": None}
    return queue.submit("default", ADD, add_payload(first, scope, extract=True))


def test_a_job_retried_after_its_work_committed_adds_nothing_twice(memory: Memory) -> None:
    queue = _queue(memory)
    tenancy = Tenancy(memory, None, require_keys=False)
    runs: list[str] = []

    def handle(job: JobRecord) -> dict[str, object]:
        runs.append(job.id)
        return run_job(tenancy.memory(job.tenant), job.kind, job.payload)

    job = _background_add(memory, queue, "u1")
    assert queue.get("default", job.id).status == "queued"  # type: ignore[union-attr]
    queue.execute(handle, "default", job.id)  # type: ignore[attr-defined]
    done = queue.get("default", job.id)
    assert done is not None and done.status == "done" and done.attempts == 1
    extracted = _derived(memory, "u1")
    assert extracted and len(AddResult.model_validate(done.result["result"]).results) == 2

    # the worker died after the extraction committed, before the job was marked done
    with memory.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("SELECT set_config('memsvc.tenant', 'default', true)"))
        moved = conn.execute(text("UPDATE background_jobs SET status = 'running' "
                                  "WHERE id = :id"), {"id": job.id})
        assert moved.rowcount == 1
    queue.execute(handle, "default", job.id)  # type: ignore[attr-defined]
    again = queue.get("default", job.id)
    assert again is not None and again.status == "done" and again.attempts == 2
    assert len(runs) == 2
    assert _derived(memory, "u1") == extracted  # nothing extracted twice
    # nor run again at all: no turn was pending, so the extractor was not called (the
    # manager's dedup alone would have "reinforced" the memory a second time)
    assert again.result is not None
    assert [c["event"] for c in again.result["result"]["results"]] == ["ADD"]  # the episode
    # and a job recorded done is not run a third time
    queue.execute(handle, "default", job.id)  # type: ignore[attr-defined]
    assert len(runs) == 2


def test_job_status_is_tenant_private(memory: Memory) -> None:
    queue = _queue(memory)
    job = _background_add(memory, queue, "u2")
    jobs = QueuedJobs(queue)
    assert jobs.get("default", job.id).status == "queued"
    assert queue.get("other", job.id) is None  # row-level security and the tenant filter


def test_a_background_consolidation_is_queued_as_data(memory: Memory) -> None:
    queue = _queue(memory)
    memory.add(TEXT, user_id="u3")
    job = queue.submit("default", CONSOLIDATE, {"user_id": "u3", "steps": ["retry"]})
    queue.execute(lambda j: run_job(memory, j.kind, j.payload), "default",  # type: ignore[attr-defined]
                  job.id)
    done = queue.get("default", job.id)
    assert done is not None and done.status == "done", done
    assert done.result is not None and done.result["report"]["steps"] == ["retry"]


def _age(memory: Memory, tenant: str, job_id: str, status: str, hours: float) -> None:
    with memory.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text("SELECT set_config('memsvc.tenant', :t, true)"), {"t": tenant})
        conn.execute(text("UPDATE background_jobs SET status = :s, "
                          "updated_at = now() - :h * interval '1 hour' WHERE id = :id"),
                     {"s": status, "h": hours, "id": job_id})


def test_finished_jobs_are_pruned_after_the_retention_window(memory: Memory) -> None:
    """A tenant's next submission deletes its own jobs finished before the window; jobs
    still running or queued, recent ones and other tenants' stay answerable."""
    queue = _queue(memory)
    old_done = queue.submit("default", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    old_failed = queue.submit("default", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    old_queued = queue.submit("default", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    recent = queue.submit("default", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    theirs = queue.submit("other", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    past = RETENTION_HOURS + 1
    _age(memory, "default", old_done.id, "done", past)
    _age(memory, "default", old_failed.id, "failed", past)
    _age(memory, "default", old_queued.id, "queued", past)
    _age(memory, "default", recent.id, "done", RETENTION_HOURS - 1)
    _age(memory, "other", theirs.id, "done", past)

    queue.submit("default", CONSOLIDATE, {"user_id": "p", "steps": ["retry"]})
    assert queue.get("default", old_done.id) is None
    assert queue.get("default", old_failed.id) is None
    assert queue.get("default", old_queued.id) is not None  # not finished: kept
    assert queue.get("default", recent.id) is not None
    assert queue.get("other", theirs.id) is not None  # its tenant has not submitted since


def test_a_worker_pointed_at_a_sqlite_file_refuses_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    out = subprocess.run([sys.executable, "-m", "memsvc.cli", "worker", "--db", str(db)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a PostgreSQL store" in lines[0], out.stderr
    assert not db.exists()  # nothing was created
