"""Refuse oversized bodies (413), non-JSON requests (415) and URLs that are not UTF-8 (400)
before any route runs.

A pure ASGI middleware, so a body is counted while it streams in (a chunked upload with no
Content-Length is cut off at the limit too) and a refused request never reaches the store.
A path or query string whose percent-escapes are not UTF-8 (``%FF``, or ``%ED%A0%80``, a
lone surrogate) would otherwise be decoded with U+FFFD in place of each bad byte, so two
different ids could name the same user; such a request is refused instead.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DRAIN_LIMIT = 64 * 1024 * 1024


def error_body(status: int, code: str, message: str, field: str | None = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_bytes: int, json_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefixes = json_prefixes  # paths whose bodies must be JSON

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _utf8_url(scope):
            await _reply(send, 400, "invalid_encoding",
                         "the URL's path or query is not UTF-8 once its %-escapes are decoded")
            return
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _drain(receive)
            await _reply(send, 413, "body_too_large",
                         f"request body is larger than {self.max_bytes} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > self.max_bytes:
                if more:
                    await _drain(receive)
                await _reply(send, 413, "body_too_large",
                             f"request body is larger than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        path: str = scope["path"]
        # JSON only, even for an empty body: a browser sends `application/json` cross-site
        # only after a CORS preflight this server never grants, so no other site can make a
        # visitor's browser post here (a bodiless POST would otherwise reach the route).
        if path.startswith(self.json_prefixes):
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                await _reply(send, 415, "unsupported_media_type",
                             f"send the body as application/json, not {media or 'no type'!r}",
                             "content-type")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _utf8_url(scope: Scope) -> bool:
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    try:
        unquote_to_bytes(bytes(raw_path)).decode("utf-8")
        unquote_to_bytes(bytes(query).replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _drain(receive: Receive, limit: int = _DRAIN_LIMIT) -> None:
    """Read and drop the rest of a refused body, so the client gets the 413 rather than a
    connection reset while it is still sending (up to a limit; past it, the reset)."""
    seen = 0
    while seen < limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reply(send: Send, status: int, code: str, message: str, field: Any = None) -> None:
    payload = error_body(status, code, message, field)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
