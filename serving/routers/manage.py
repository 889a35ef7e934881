"""`/v1/consolidate`, `/v1/stats`, `/v1/import`, and erasing: a user, or the whole tenant."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.responses import Response

from memsvc.consolidate import ConsolidationReport
from memsvc.model.records import StoreStats
from memsvc.serving.background_work import (
    CONSOLIDATE,
    consolidate_payload,
    consolidation_kwargs,
)
from memsvc.serving.routers.deps import ERRORS, AppChat, AppJobs, Caller, Tenant
from memsvc.serving.schemas import (
    ConsolidateRequest,
    DeleteResult,
    ImportRequest,
    ImportResult,
    JobInfo,
    ResetRequest,
)

router = APIRouter(tags=["manage"])


@router.post("/v1/consolidate", response_model=ConsolidationReport,
             responses={**ERRORS, 202: {"model": JobInfo}})
def consolidate(m: Caller, chat: AppChat, tenant: Tenant, jobs: AppJobs,
                body: ConsolidateRequest | None = None) -> Any:
    """Offline upkeep of a scope (the whole tenant when none is named): retry failed
    extractions, merge near-duplicates, summaries, decay/archive, profiles. Idempotent.
    With `background`, 202 and a job id (a worker runs it when the store is PostgreSQL)."""
    body = body or ConsolidateRequest()
    if body.background:
        job = jobs.submit(tenant, m, CONSOLIDATE, consolidate_payload(body))
        return JSONResponse(job.model_dump(mode="json"), status_code=202)
    kwargs = consolidation_kwargs(body.model_dump(mode="json", exclude={"background"}))
    report = m.consolidate(**kwargs)
    chat.after_consolidate(m, report)  # pre-warm rewritten profiles
    return report


@router.delete("/v1/users/{user_id}", response_model=DeleteResult, responses=ERRORS)
def delete_user(user_id: str, m: Caller) -> DeleteResult:
    """Erase everything of a user (memories, vectors, FTS rows, history, messages) in one
    transaction."""
    return DeleteResult(deleted=m.delete_all(user_id=user_id, hard=True))


@router.post("/v1/reset", status_code=204, responses=ERRORS)
def reset(body: ResetRequest, m: Caller) -> Response:
    """Erase everything the caller's tenant has stored. The body must be a JSON object
    (`{}`), so no cross-site form or bodiless request can trigger it."""
    m.reset()
    return Response(status_code=204)


@router.post("/v1/import", response_model=ImportResult, response_model_exclude_none=True,
             responses=ERRORS)
def import_records(body: ImportRequest, m: Caller) -> ImportResult:
    """Load memories as `GET /v1/export` writes them: every record is checked before any is
    written; ids already present are skipped, vectors are recomputed."""
    return ImportResult(**m.import_records(body.records))


# the file's path and size are every tenant's business together: the operator's, not a caller's
TENANT_PRIVATE = frozenset({"path", "size_bytes"})


@router.get("/v1/stats", response_model=StoreStats, responses=ERRORS,
            response_model_exclude=set(TENANT_PRIVATE))
def stats(m: Caller) -> StoreStats:
    """The caller's tenant's counts (no file path or size: see `memsvc stats` for those)."""
    return m.stats()
