"""How errors leave the server: `{"error": {code, message, field}}` with the status the
exception class names, which is what lets `MemoryClient` raise the same typed exception as
the embedded SDK.

An unexpected exception (a bug, a driver error) is a 500 whose body says only that it
happened and under which id the server log has the details: its text can hold SQL, paths or
data of another request, none of which a caller should see.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memsvc.model.errors import MemsvcError
from memsvc.model.ids import new_id
from memsvc.serving.tenancy import AuthError

log = logging.getLogger("memsvc.serving")


def report_internal(exc: BaseException, where: str) -> dict[str, Any]:
    """Log an unexpected exception under a fresh id; the error body that names only the id."""
    error_id = new_id()
    log.error("internal error %s in %s", error_id, where, exc_info=exc)
    return {"code": "internal", "field": None, "id": error_id,
            "message": f"internal error; the server log has the details under id {error_id}"}


def install_error_handlers(app: FastAPI) -> None:
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

    # innermost of the middleware, so the metrics count these 500s like any answer
    app.add_middleware(InternalErrors)


class InternalErrors:
    """Answer an unexpected exception with the 500 body of `report_internal`.

    Not an `exception_handler(Exception)`: Starlette re-raises after such a handler, and
    uvicorn then drops the connection, so a keep-alive client (`MemoryClient`) would see its
    *next* call fail with a connection reset. Here the exception ends with the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # a stream broke half-way: nothing sane can be sent any more
                raise
            body = json.dumps({"error": report_internal(exc, f"{scope['method']} "
                                                                f"{scope['path']}")}).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
