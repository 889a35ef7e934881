"""`/v1/memories`, `/v1/messages` and `/v1/jobs`: writing, listing and editing memories."""

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from memsvc.model.records import (
    AddResult,
    HistoryEntry,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Page,
    StoredMessage,
)
from memsvc.sdk.background import add_for_later
from memsvc.serving.background_work import ADD, add_payload
from memsvc.serving.graph_view import memory_graph
from memsvc.serving.routers.deps import (
    ERRORS,
    ID_ERRORS,
    AppJobs,
    AppMetrics,
    Caller,
    Tenant,
    json_param,
)
from memsvc.serving.schemas import (
    AddRequest,
    DeleteResult,
    InferRequest,
    JobInfo,
    MemoryGraph,
    ReviewRequest,
    UpdateRequest,
)

router = APIRouter(tags=["memories"])
ScopeId = Annotated[str | None, Query(max_length=256)]


@router.post("/v1/memories", response_model=AddResult, status_code=201,
             responses={**ERRORS, 202: {"model": JobInfo}})
def add_memories(body: AddRequest, m: Caller, tenant: Tenant, jobs: AppJobs,
                 metrics: AppMetrics) -> Any:
    """Store messages verbatim (each an episode); with `infer`, extract memories too."""
    started = time.perf_counter()
    scope = {"user_id": body.user_id, "agent_id": body.agent_id,
             "session_id": body.session_id}
    infer_later = body.background and body.infer
    if infer_later:  # stored with a durable "extraction pending" mark, before the 202
        result = add_for_later(m, body.message_dicts(), metadata=body.metadata,
                               timestamp=body.timestamp, **scope)
    else:
        result = m.add(body.message_dicts(), metadata=body.metadata, timestamp=body.timestamp,
                       infer=body.infer, **scope)
    metrics.ingest.observe(time.perf_counter() - started)
    if not body.background:
        return result
    job = jobs.submit(tenant, m, ADD, add_payload(result, scope, extract=infer_later))
    return JSONResponse(job.model_dump(mode="json"), status_code=202)


@router.post("/v1/infer", response_model=AddResult, responses=ERRORS)
def infer(body: InferRequest, m: Caller) -> AddResult:
    """Run the extractor over messages stored earlier by an add without `infer` (what a
    background add does after its 202)."""
    return m.infer(body.message_ids, user_id=body.user_id, agent_id=body.agent_id,
                   session_id=body.session_id)


@router.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=ID_ERRORS)
def get_job(job_id: str, tenant: Tenant, jobs: AppJobs) -> JobInfo:
    """Progress of a background job (`background: true` add or consolidation); with a
    PostgreSQL store, answered from the database by any replica."""
    return jobs.get(tenant, job_id)


@router.get("/v1/memories", response_model=Page, responses=ERRORS)
def list_memories(
    m: Caller,
    user_id: ScopeId = None,
    agent_id: ScopeId = None,
    session_id: ScopeId = None,
    kinds: Annotated[list[MemoryKind] | None, Query()] = None,
    filters: Annotated[str | None, Query(description="A filter object as JSON.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    include_inactive: bool = False,
    include_archived: bool = False,
    status: Annotated[MemoryStatus | None, Query(
        description="Only memories of this status (e.g. quarantined, for review).")] = None,
    min_trust: Literal["user", "agent", "external"] = "agent",
) -> Page:
    """One page of a scope's memories, oldest first; pass `next_cursor` for the next."""
    return m.get_all(
        user_id=user_id, agent_id=agent_id, session_id=session_id,
        filters=json_param(filters, "filters"),
        kinds=[k.value for k in kinds] if kinds else None, limit=limit, cursor=cursor,
        include_inactive=include_inactive, include_archived=include_archived,
        status=status.value if status is not None else None,
        min_trust=min_trust,
    )


@router.delete("/v1/memories", response_model=DeleteResult, responses=ERRORS)
def delete_all(
    m: Caller,
    user_id: ScopeId = None,
    agent_id: ScopeId = None,
    session_id: ScopeId = None,
    hard: bool = False,
) -> DeleteResult:
    """Delete every memory of a scope (at least one of the ids is required)."""
    return DeleteResult(deleted=m.delete_all(user_id=user_id, agent_id=agent_id,
                                             session_id=session_id, hard=hard))


@router.get("/v1/memories/{memory_id}", response_model=MemoryRecord, responses=ID_ERRORS)
def get_memory(memory_id: str, m: Caller) -> MemoryRecord:
    return m.get(memory_id)


@router.patch("/v1/memories/{memory_id}", response_model=MemoryRecord, responses=ID_ERRORS)
def update_memory(memory_id: str, body: UpdateRequest, m: Caller) -> MemoryRecord:
    """A new version of the memory; the old one stays in its history."""
    return m.update(memory_id, body.text, metadata=body.metadata, importance=body.importance)


@router.post("/v1/memories/{memory_id}/review", response_model=MemoryRecord,
             responses=ID_ERRORS)
def review_memory(memory_id: str, body: ReviewRequest, m: Caller) -> MemoryRecord:
    """Decide on a quarantined memory: `release` it (active again) or `delete` it."""
    return m.review(memory_id, body.action)


@router.delete("/v1/memories/{memory_id}", status_code=204, responses=ID_ERRORS)
def delete_memory(memory_id: str, m: Caller, hard: bool = False) -> Response:
    """Soft delete (kept in history) or, with `hard=true`, erase from every index."""
    m.delete(memory_id, hard=hard)
    return Response(status_code=204)


@router.get("/v1/memories/{memory_id}/history", response_model=list[HistoryEntry],
            responses=ID_ERRORS)
def memory_history(memory_id: str, m: Caller) -> list[HistoryEntry]:
    return m.history(memory_id)


@router.get("/v1/memories/{memory_id}/graph", response_model=MemoryGraph, responses=ID_ERRORS)
def graph(memory_id: str, m: Caller,
          max_memories: Annotated[int, Query(ge=1, le=200)] = 25) -> MemoryGraph:
    """The entity graph one hop around a memory (for the explorer)."""
    return memory_graph(m, memory_id, max_memories=max_memories)


@router.get("/v1/messages", response_model=list[StoredMessage], responses=ERRORS)
def list_messages(
    m: Caller,
    user_id: ScopeId = None,
    agent_id: ScopeId = None,
    session_id: ScopeId = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[StoredMessage]:
    """The raw messages of a scope in time order: the provenance behind memories."""
    return m.messages(user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit)
