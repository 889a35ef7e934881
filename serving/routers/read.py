"""`/v1/search`, `/v1/context` and `/v1/export`: reading a scope's memories."""

import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from memsvc.model.records import ExportItem, SearchResponse
from memsvc.retrievers.context import ContextBlock
from memsvc.serving.routers.deps import ERRORS, AppMetrics, Caller
from memsvc.serving.schemas import ContextRequest, SearchRequest

router = APIRouter(tags=["read"])
ScopeId = Annotated[str | None, Query(max_length=256)]
NDJSON = "application/x-ndjson"


@router.post("/v1/search", response_model=SearchResponse, responses=ERRORS)
def search(body: SearchRequest, m: Caller, metrics: AppMetrics) -> SearchResponse:
    """The memories of a scope that best answer `query`, with per-channel scores. `plan` is
    a recipe name or a plan object (channels with weights and depth)."""
    started = time.perf_counter()
    response = m.search(
        body.query, user_id=body.user_id, agent_id=body.agent_id,
        session_id=body.session_id, filters=body.filters,
        kinds=body.kinds, limit=body.limit,
        as_of=body.as_of, plan=body.search_plan(), now=body.now,
        include_archived=body.include_archived, group=body.group,
        min_trust=body.min_trust,
    )
    metrics.search.observe(time.perf_counter() - started)
    return response


@router.post("/v1/context", response_model=ContextBlock, responses=ERRORS)
def context(body: ContextRequest, m: Caller, metrics: AppMetrics) -> ContextBlock:
    """The best memories packed into one prompt block under `max_tokens`."""
    started = time.perf_counter()
    block = m.context(
        body.query, user_id=body.user_id, agent_id=body.agent_id,
        session_id=body.session_id, filters=body.filters,
        kinds=body.kinds, limit=body.limit,
        max_tokens=body.max_tokens, as_of=body.as_of, plan=body.search_plan(), now=body.now,
        include_archived=body.include_archived, group=body.group,
        min_trust=body.min_trust,
    )
    metrics.search.observe(time.perf_counter() - started)
    return block


def _lines(records: Iterator[ExportItem]) -> Iterator[bytes]:
    for record in records:
        yield record.model_dump_json().encode() + b"\n"


@router.get("/v1/export", response_class=StreamingResponse, responses={
    **ERRORS, 200: {"description": "One memory (as `GET /v1/memories/{id}` returns it) per "
                    "line.", "content": {NDJSON: {"schema": {"type": "string"}}}}})
def export(
    m: Caller,
    user_id: ScopeId = None,
    agent_id: ScopeId = None,
    session_id: ScopeId = None,
    include_inactive: bool = True,
    full: bool = False,
) -> StreamingResponse:
    """Every memory of a scope (the whole tenant when none is named) as NDJSON, streamed:
    the records `Memory.export` yields, ready for `POST /v1/import`; with `full`, the
    scope's raw messages and the memories' history too (tagged by `type`)."""
    records = m.export(user_id=user_id, agent_id=agent_id, session_id=session_id,
                       include_inactive=include_inactive, full=full)  # refused before streaming
    return StreamingResponse(_lines(records), media_type=NDJSON)
