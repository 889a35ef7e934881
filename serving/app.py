"""The REST API (FastAPI), with the MCP endpoint and the memory explorer in the same app.

Every route is a thin call of the `Memory` method of the same name on the caller's tenant's
`Memory` (serving/tenancy.py), so behaviour and validation are the SDK's. Errors leave as
`{"error": {code, message, field}}` with the status the exception class names, which is
what lets `MemoryClient` raise the same typed exception as the embedded SDK.
"""


import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.staticfiles import StaticFiles
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import memsvc
from memsvc.consolidate import ConsolidationConfig, ConsolidationReport
from memsvc.model.errors import InvalidFilterError, InvalidInputError, MemsvcError
from memsvc.model.records import (
    AddResult,
    HistoryEntry,
    MemoryKind,
    MemoryRecord,
    Page,
    SearchResponse,
    StoredMessage,
    StoreStats,
)
from memsvc.retrievers.context import ContextBlock
from memsvc.sdk.memory import Memory
from memsvc.serving.chat import ChatService, chat_router
from memsvc.serving.docs import mount_offline_docs
from memsvc.serving.graph_view import memory_graph
from memsvc.serving.http_guard import BodyGuard, error_body
from memsvc.serving.jobs import JobRunner
from memsvc.serving.mcp_server import build_mcp
from memsvc.serving.metrics import Metrics
from memsvc.serving.schemas import (
    AddRequest,
    ConsolidateRequest,
    ContextRequest,
    DeleteResult,
    ErrorResponse,
    Health,
    JobInfo,
    MemoryGraph,
    SearchRequest,
    UpdateRequest,
)
from memsvc.serving.tenancy import AuthError, Tenancy
from memsvc.storage.base import KeyStore

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 1024 * 1024
_ERR = {"model": ErrorResponse}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _ERR, 401: _ERR, 413: _ERR, 415: _ERR, 422: _ERR, 503: _ERR
}
ID_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: _ERR}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

_bearer = HTTPBearer(auto_error=False, description="An API key from `memsvc keys create`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def create_app(
    memory: Memory,
    *,
    keys: KeyStore | None = None,
    require_keys: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    host: str = "127.0.0.1",
    chat: ChatService | None = None,
) -> FastAPI:
    """The whole server around one base `Memory` (its store's file holds every tenant)."""
    tenancy = Tenancy(memory, keys, require_keys=require_keys)
    metrics = Metrics(memory.settings.db_path)
    jobs = JobRunner()

    def resolve_mcp(ctx: Context | None) -> Memory:
        headers = (ctx.headers if ctx is not None else None) or {}
        return tenancy.memory_for({k.lower(): v for k, v in headers.items()})

    mcp = build_mcp(resolve_mcp)
    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        if host in _LOOPBACK
        else TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    mcp.streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=host)
    mcp_asgi = StreamableHTTPASGIApp(mcp.session_manager)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield
        jobs.close()
        tenancy.close()

    app = FastAPI(
        title="memsvc",
        version=memsvc.__version__,
        description="Long-term memory for AI agents. Authenticate with "
        "`Authorization: Bearer <key>` (keys from `memsvc keys create`). MCP (streamable "
        "HTTP) is at `/mcp`, the memory explorer at `/ui`.",
        lifespan=lifespan,
        docs_url=None,  # served from local files below: the default page needs a CDN
        redoc_url=None,
    )
    app.state.tenancy = tenancy
    app.state.jobs = jobs
    app.state.metrics = metrics
    app.state.mcp = mcp
    # POST /v1/chat over the LLM of MEMSVC_LLM_BASE_URL (default: `memsvc llm start`'s)
    chat_service = chat or ChatService.from_settings(memory.settings)
    app.include_router(chat_router(chat_service))

    # -- errors ---------------------------------------------------------------------------

    @app.exception_handler(MemsvcError)
    async def memsvc_error(_: Request, exc: MemsvcError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": message, "field": field}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail), "field": None}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}",
                       "field": None}},
            status_code=500,
        )

    # -- who is calling -------------------------------------------------------------------

    def caller(
        request: Request,
        _b: Annotated[Any, Security(_bearer)] = None,
        _k: Annotated[Any, Security(_api_key)] = None,
    ) -> Memory:
        return tenancy.memory_for(request.headers)

    def caller_tenant(
        request: Request,
        _b: Annotated[Any, Security(_bearer)] = None,
        _k: Annotated[Any, Security(_api_key)] = None,
    ) -> str:
        return tenancy.tenant_for(request.headers)

    Caller = Annotated[Memory, Depends(caller)]

    # -- memories -------------------------------------------------------------------------

    @app.post("/v1/memories", response_model=AddResult, status_code=201, tags=["memories"],
              responses={**ERRORS, 202: {"model": JobInfo}})
    def add_memories(body: AddRequest, m: Caller,
                     tenant: Annotated[str, Depends(caller_tenant)]) -> Any:
        """Store messages verbatim (each an episode); with `infer`, extract memories too."""
        started = time.perf_counter()
        scope = {"user_id": body.user_id, "agent_id": body.agent_id,
                 "session_id": body.session_id}
        infer_later = body.background and body.infer
        result = m.add(body.message_dicts(), metadata=body.metadata, timestamp=body.timestamp,
                       infer=body.infer and not infer_later, **scope)
        metrics.ingest.observe(time.perf_counter() - started)
        if not body.background:
            return result
        if infer_later:
            job = jobs.submit(tenant, result, lambda: m.infer(result.message_ids, **scope))
        else:
            job = jobs.submit(tenant, result, lambda: AddResult())
        return JSONResponse(job.model_dump(mode="json"), status_code=202)

    @app.get("/v1/jobs/{job_id}", response_model=JobInfo, tags=["memories"],
             responses=ID_ERRORS)
    def get_job(job_id: str, tenant: Annotated[str, Depends(caller_tenant)]) -> JobInfo:
        """Progress of a background write (`background: true`)."""
        return jobs.get(tenant, job_id)

    @app.get("/v1/memories", response_model=Page, tags=["memories"], responses=ERRORS)
    def list_memories(
        m: Caller,
        user_id: Annotated[str | None, Query(max_length=256)] = None,
        agent_id: Annotated[str | None, Query(max_length=256)] = None,
        session_id: Annotated[str | None, Query(max_length=256)] = None,
        kinds: Annotated[list[MemoryKind] | None, Query()] = None,
        filters: Annotated[str | None, Query(description="A filter object as JSON.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=256)] = None,
        include_inactive: bool = False,
        include_archived: bool = False,
    ) -> Page:
        """One page of a scope's memories, oldest first; pass `next_cursor` for the next."""
        return m.get_all(
            user_id=user_id, agent_id=agent_id, session_id=session_id,
            filters=_json_param(filters, "filters"),
            kinds=[k.value for k in kinds] if kinds else None, limit=limit, cursor=cursor,
            include_inactive=include_inactive, include_archived=include_archived,
        )

    @app.delete("/v1/memories", response_model=DeleteResult, tags=["memories"],
                responses=ERRORS)
    def delete_all(
        m: Caller,
        user_id: Annotated[str | None, Query(max_length=256)] = None,
        agent_id: Annotated[str | None, Query(max_length=256)] = None,
        session_id: Annotated[str | None, Query(max_length=256)] = None,
        hard: bool = False,
    ) -> DeleteResult:
        """Delete every memory of a scope (at least one of the ids is required)."""
        return DeleteResult(deleted=m.delete_all(user_id=user_id, agent_id=agent_id,
                                                 session_id=session_id, hard=hard))

    @app.get("/v1/memories/{memory_id}", response_model=MemoryRecord, tags=["memories"],
             responses=ID_ERRORS)
    def get_memory(memory_id: str, m: Caller) -> MemoryRecord:
        return m.get(memory_id)

    @app.patch("/v1/memories/{memory_id}", response_model=MemoryRecord, tags=["memories"],
               responses=ID_ERRORS)
    def update_memory(memory_id: str, body: UpdateRequest, m: Caller) -> MemoryRecord:
        """A new version of the memory; the old one stays in its history."""
        return m.update(memory_id, body.text, metadata=body.metadata,
                        importance=body.importance)

    @app.delete("/v1/memories/{memory_id}", status_code=204, tags=["memories"],
                responses=ID_ERRORS)
    def delete_memory(memory_id: str, m: Caller, hard: bool = False) -> Response:
        """Soft delete (kept in history) or, with `hard=true`, erase from every index."""
        m.delete(memory_id, hard=hard)
        return Response(status_code=204)

    @app.get("/v1/memories/{memory_id}/history", response_model=list[HistoryEntry],
             tags=["memories"], responses=ID_ERRORS)
    def memory_history(memory_id: str, m: Caller) -> list[HistoryEntry]:
        return m.history(memory_id)

    @app.get("/v1/memories/{memory_id}/graph", response_model=MemoryGraph, tags=["memories"],
             responses=ID_ERRORS)
    def graph(memory_id: str, m: Caller,
              max_memories: Annotated[int, Query(ge=1, le=200)] = 25) -> MemoryGraph:
        """The entity graph one hop around a memory (for the explorer)."""
        return memory_graph(m, memory_id, max_memories=max_memories)

    @app.get("/v1/messages", response_model=list[StoredMessage], tags=["memories"],
             responses=ERRORS)
    def list_messages(
        m: Caller,
        user_id: Annotated[str | None, Query(max_length=256)] = None,
        agent_id: Annotated[str | None, Query(max_length=256)] = None,
        session_id: Annotated[str | None, Query(max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[StoredMessage]:
        """The raw messages of a scope in time order: the provenance behind memories."""
        return m.messages(user_id=user_id, agent_id=agent_id, session_id=session_id,
                          limit=limit)

    # -- read -----------------------------------------------------------------------------

    @app.post("/v1/search", response_model=SearchResponse, tags=["read"], responses=ERRORS)
    def search(body: SearchRequest, m: Caller) -> SearchResponse:
        """The memories of a scope that best answer `query`, with per-channel scores."""
        started = time.perf_counter()
        response = m.search(
            body.query, user_id=body.user_id, agent_id=body.agent_id,
            session_id=body.session_id, filters=body.filters,
            kinds=body.kinds, limit=body.limit,
            as_of=body.as_of, plan=body.plan, now=body.now,
            include_archived=body.include_archived,
        )
        metrics.search.observe(time.perf_counter() - started)
        return response

    @app.post("/v1/context", response_model=ContextBlock, tags=["read"], responses=ERRORS)
    def context(body: ContextRequest, m: Caller) -> ContextBlock:
        """The best memories packed into one prompt block under `max_tokens`."""
        started = time.perf_counter()
        block = m.context(
            body.query, user_id=body.user_id, agent_id=body.agent_id,
            session_id=body.session_id, filters=body.filters,
            kinds=body.kinds, limit=body.limit,
            max_tokens=body.max_tokens, as_of=body.as_of, plan=body.plan, now=body.now,
            include_archived=body.include_archived,
        )
        metrics.search.observe(time.perf_counter() - started)
        return block

    # -- manage ---------------------------------------------------------------------------

    @app.post("/v1/consolidate", response_model=ConsolidationReport, tags=["manage"],
              responses=ERRORS)
    def consolidate(m: Caller, body: ConsolidateRequest | None = None) -> ConsolidationReport:
        """Offline upkeep of a scope (the whole tenant when none is named): retry failed
        extractions, merge near-duplicates, summaries, decay/archive, profiles. Idempotent."""
        body = body or ConsolidateRequest()
        try:
            config = ConsolidationConfig(**body.config) if body.config is not None else None
        except TypeError as exc:
            raise InvalidInputError(f"config: {exc}", field="config") from exc
        report = m.consolidate(user_id=body.user_id, agent_id=body.agent_id, now=body.now,
                               steps=body.steps, config=config)
        chat_service.after_consolidate(m, report)  # pre-warm rewritten profiles
        return report

    @app.delete("/v1/users/{user_id}", response_model=DeleteResult, tags=["manage"],
                responses=ERRORS)
    def delete_user(user_id: str, m: Caller) -> DeleteResult:
        """Erase everything of a user (memories, vectors, FTS rows, history, messages) in one
        transaction."""
        return DeleteResult(deleted=m.delete_all(user_id=user_id, hard=True))

    @app.get("/v1/stats", response_model=StoreStats, tags=["manage"], responses=ERRORS)
    def stats(m: Caller) -> StoreStats:
        return m.stats()

    # -- operations -----------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        return Health(status="ok", version=memsvc.__version__,
                      auth="api_key" if require_keys else "none")

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def prometheus() -> Response:
        return metrics.render()

    # -- MCP and UI -----------------------------------------------------------------------

    app.router.routes.append(
        Route("/mcp", endpoint=McpGate(tenancy, mcp_asgi), methods=["GET", "POST", "DELETE"])
    )
    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    mount_offline_docs(app)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.middleware("http")(metrics.middleware)
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, json_prefixes=("/v1/",))
    return app


class McpGate:
    """The MCP endpoint behind the same API keys as REST (an ASGI app, not a function, so
    Starlette hands it the raw scope and the SDK streams its own responses)."""

    def __init__(self, tenancy: Tenancy, inner: StreamableHTTPASGIApp) -> None:
        self.tenancy = tenancy
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        try:
            self.tenancy.tenant_for(headers)
        except AuthError as exc:
            body = error_body(401, exc.code, exc.message)
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.inner(scope, receive, send)


def _json_param(raw: str | None, field: str) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"{field} is not valid JSON: {exc.msg}", field=field) from exc
