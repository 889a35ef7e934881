"""Keep web pages of other sites away from the server: DNS rebinding and cross-site writes.

Without API keys the server trusts whoever can reach 127.0.0.1, which a browser can be made
to do: a page of attacker.example re-points its own name at 127.0.0.1 (DNS rebinding), and
its scripts then read and write the key-less server as same-origin, with
``Host: attacker.example``. So while no keys are required (`Tenancy.keys_required`, checked
per request: a key created after start-up turns this off, because the key then does the
job), every route answers a Host that is not a loopback name or address, or the host the
server was configured with, with 421 Misdirected Request.

Independently of keys, a state-changing request (anything but GET, HEAD, OPTIONS) that a
browser marks as coming from another site (``Sec-Fetch-Site: cross-site``, or an ``Origin``
that is not this server's own) is refused with 403: the API has no CORS, so no other site has
a reason to send one, and a form post or a `no-cors` fetch could otherwise still land.
Clients that are not browsers (the SDK, curl) send neither header and are not affected.
A pure ASGI middleware, so it runs before a body is read or a route is reached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from memsvc.serving.http_guard import error_body

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost"})


def host_name(host_header: str) -> str:
    """The name or address of a Host header, lower case, without port or trailing dot."""
    value = host_header.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class OriginGuard:
    def __init__(
        self, app: ASGIApp, *, keys_required: Callable[[], bool], hosts: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.keys_required = keys_required
        # a configured host the server was bound to (not a wildcard) is its own name too
        self.hosts = frozenset(host_name(h) for h in hosts if h not in ("0.0.0.0", "::", ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host and not self._allowed_host(host) and not self.keys_required():
            await _refuse(send, 421, "misdirected_request",
                          "this server answers only to its loopback address without API "
                          "keys; use http://127.0.0.1 (or create a key to serve other hosts)")
            return
        if scope.get("method", "GET") not in _SAFE_METHODS and _cross_site(headers, host):
            await _refuse(send, 403, "cross_site_request",
                          "a state-changing request from another site is refused")
            return
        await self.app(scope, receive, send)

    def _allowed_host(self, host: str) -> bool:
        name = host_name(host)
        return is_loopback(name) or name in self.hosts


def _cross_site(headers: dict[str, str], host: str) -> bool:
    """Did a browser send this from another site (or an opaque origin)?"""
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False  # not from a browser page (browsers send Origin on every write)
    parts = urlsplit(origin.strip())
    return not parts.netloc or parts.netloc.lower() != host.strip().lower()


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(status, code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
