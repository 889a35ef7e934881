"""Prometheus metrics of one app: request counts and latencies per route, store size,
ingest and search timings.

Each app gets its own registry (not the process-global one), so several apps in one process
(the tests start many) never collide, and `/metrics` shows only this server's numbers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, db_path: Path | str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "memsvc_http_requests", "HTTP requests by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "memsvc_http_request_seconds", "HTTP request latency by route template and method",
            ["route", "method"], buckets=_BUCKETS, registry=self.registry,
        )
        self.ingest = Histogram(
            "memsvc_ingest_seconds", "Time of one add() (validation, embedding, transaction)",
            buckets=_BUCKETS, registry=self.registry,
        )
        self.search = Histogram(
            "memsvc_search_seconds", "Time of one search() including fusion",
            buckets=_BUCKETS, registry=self.registry,
        )
        self.store_bytes = Gauge(
            "memsvc_store_bytes", "Size of the SQLite file and its WAL", registry=self.registry
        )
        self.store_bytes.set_function(lambda: _file_size(db_path))

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Count and time every request under its route template (`/v1/memories/{memory_id}`),
        never the raw path, so ids do not explode the label set."""
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(request)
            self.latency.labels(route, request.method).observe(time.perf_counter() - started)
            self.requests.labels(route, request.method, str(status)).inc()


def _route_template(request: Request) -> str:
    matched = request.scope.get("route")  # set by routing, also inside included routers
    if matched is not None:
        return str(getattr(matched, "path", "unmatched"))
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


def _file_size(path: Path | str) -> float:
    """The SQLite file's size with its WAL; 0 for a database server (a URL), whose size is
    the server's to report."""
    if not isinstance(path, Path):
        return 0.0
    return float(sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()))
