"""What a background job does, described as data so that any process can run it.

The same two kinds run in the server's own thread pool (SQLite: serving/jobs.py) or on a
`memsvc worker` process (PostgreSQL: storage/postgres/queue.py), so a job is a `kind` and a
JSON `payload`, never a closure:

- ``add``: extract a background add's messages. Idempotent (`infer_pending` extracts only
  the turns still marked "extraction pending"), so a retry after a crash adds nothing twice.
- ``consolidate``: one consolidation run (its own steps are idempotent), e.g. the LLM
  extraction retries of `steps: ["retry"]`.

`run_job` returns the JSON the job's status reports: ``{"result": AddResult}`` or
``{"report": ConsolidationReport}``.
"""

from __future__ import annotations

from typing import Any

from memsvc.consolidate import STEPS, ConsolidationConfig, ConsolidationReport
from memsvc.model.errors import InvalidInputError
from memsvc.model.records import AddResult
from memsvc.model.validation import make_scope, parse_timestamp
from memsvc.sdk.background import infer_pending
from memsvc.sdk.memory import Memory
from memsvc.serving.schemas import ConsolidateRequest, JobInfo
from memsvc.storage.base import JobRecord

ADD = "add"
CONSOLIDATE = "consolidate"


def add_payload(first: AddResult, scope: dict[str, str | None], *, extract: bool) -> dict[str, Any]:
    """An add whose messages (`first`) are stored; `extract` when its extraction is pending."""
    return {"scope": scope, "message_ids": first.message_ids, "extract": extract,
            "first": first.model_dump(mode="json")}


def consolidate_payload(body: ConsolidateRequest) -> dict[str, Any]:
    """The run a request asks for, checked now, so bad input is a 4xx and not a failed job."""
    payload = body.model_dump(mode="json", exclude={"background"})
    consolidation_kwargs(payload)
    return payload


def consolidation_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """`Memory.consolidate` arguments from a request's fields (validated)."""
    config = payload.get("config")
    try:
        built = ConsolidationConfig(**config) if config is not None else None
    except TypeError as exc:
        raise InvalidInputError(f"config: {exc}", field="config") from exc
    steps = payload.get("steps")
    if steps is not None and (not steps or any(s not in STEPS for s in steps)):
        raise InvalidInputError(f"steps must be among {list(STEPS)}", field="steps")
    parse_timestamp(payload.get("now"), field="now")
    make_scope(payload.get("user_id"), payload.get("agent_id"), None, required=False)
    return {"user_id": payload.get("user_id"), "agent_id": payload.get("agent_id"),
            "now": payload.get("now"), "steps": steps, "config": built}


def run_job(memory: Memory, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Do one job for the tenant of `memory`; the JSON its status reports."""
    if kind == ADD:
        first = AddResult.model_validate(payload["first"])
        if not payload.get("extract"):
            return {"result": first.model_dump(mode="json")}
        scope = make_scope(**payload["scope"])
        later = infer_pending(memory, first.message_ids, scope)
        done = AddResult(message_ids=first.message_ids, results=first.results + later.results)
        return {"result": done.model_dump(mode="json")}
    if kind == CONSOLIDATE:
        report: ConsolidationReport = memory.consolidate(**consolidation_kwargs(payload))
        return {"report": report.model_dump(mode="json")}
    raise InvalidInputError(f"unknown job kind {kind!r}", field="kind")


def job_info(record: JobRecord) -> JobInfo:
    """The REST view of a job record."""
    out = record.result or {}
    return JobInfo.model_validate({
        "id": record.id, "kind": record.kind, "status": record.status,
        "message_ids": record.payload.get("message_ids", []), "result": out.get("result"),
        "report": out.get("report"), "error": record.error,
    })
