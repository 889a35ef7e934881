"""The REST API (FastAPI), with the MCP endpoint and the memory explorer in the same app.

Every route is a thin call of the `Memory` method of the same name on the caller's tenant's
`Memory` (serving/tenancy.py), so behaviour and validation are the SDK's. The routes live in
one router per area (serving/routers/); this module assembles them with the error handlers
(serving/errors.py), the MCP endpoint, the explorer and the middleware.
"""


import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import memsvc
from memsvc.sdk.memory import Memory
from memsvc.serving.chat import ChatService, chat_router
from memsvc.serving.docs import mount_offline_docs
from memsvc.serving.errors import install_error_handlers
from memsvc.serving.http_guard import BodyGuard, error_body
from memsvc.serving.jobs import BackgroundJobs, JobRunner, QueuedJobs
from memsvc.serving.mcp_server import build_mcp
from memsvc.serving.metrics import Metrics
from memsvc.serving.origin_guard import OriginGuard
from memsvc.serving.recovery import recover_pending
from memsvc.serving.routers import manage, memories, ops, read
from memsvc.serving.tenancy import AuthError, Tenancy
from memsvc.storage.base import JobQueueSource, KeyStore

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_BODY = 1024 * 1024
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
    jobs: BackgroundJobs
    if isinstance(memory.store, JobQueueSource):  # PostgreSQL: `memsvc worker` runs them
        jobs = QueuedJobs(memory.store.job_queue())
    else:
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
        if isinstance(jobs, JobRunner):  # background adds a crash left unextracted
            recover_pending(tenancy, jobs)
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
    app.state.chat = chat_service = chat or ChatService.from_settings(memory.settings)
    app.include_router(chat_router(chat_service))
    install_error_handlers(app)
    for router in (memories.router, read.router, manage.router, ops.router):
        app.include_router(router)

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
    # outermost: a foreign Host (DNS rebinding) or a cross-site write never gets further
    app.add_middleware(OriginGuard, keys_required=tenancy.keys_required, hosts=(host,))
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

