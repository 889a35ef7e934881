"""Starting the server: the bind rule, and a background runner for tests and benchmarks.

Bind rule: with no API key configured nobody could be told apart, so the server serves the
default tenant without auth and binds to 127.0.0.1 whatever host was asked for, and says
so. With keys, every request needs one and any host may be bound.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from memsvc.sdk.memory import Memory
from memsvc.serving.app import create_app

LOOPBACK = "127.0.0.1"
# How long the server keeps an idle client connection open. Longer than any client's pool
# keeps one (memsvc's SDK: 2 s), so the client, not the server, ends an idle connection and
# never sends a request on one being closed under it.
KEEP_ALIVE_SECONDS = 30


@dataclass(frozen=True)
class BindPlan:
    host: str
    require_keys: bool
    notice: str


def plan_bind(requested_host: str, active_keys: int) -> BindPlan:
    if active_keys > 0:
        return BindPlan(requested_host, True,
                        f"API keys required ({active_keys} active); binding {requested_host}")
    note = ("no API keys configured: serving without auth on 127.0.0.1 only "
            "(create one with `memsvc keys create NAME --tenant T` to serve other hosts)")
    if requested_host not in (LOOPBACK, "localhost"):
        note += f"; ignoring --host {requested_host}"
    return BindPlan(LOOPBACK, False, note)


def build_server_app(memory: Memory, requested_host: str = LOOPBACK) -> tuple[FastAPI, BindPlan]:
    keys = memory.store.key_store()
    plan = plan_bind(requested_host, keys.count_active())
    app = create_app(memory, keys=keys, require_keys=plan.require_keys, host=plan.host)
    return app, plan


class BackgroundServer:
    """uvicorn in a thread on a free port of 127.0.0.1 (tests, benchmarks, the UI check)."""

    def __init__(self, app: FastAPI, *, host: str = LOOPBACK) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=5,
                                timeout_keep_alive=KEEP_ALIVE_SECONDS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="memsvc-uvicorn", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            threading.Event().wait(0.05)
        raise RuntimeError("server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def run(memory: Memory, *, host: str = LOOPBACK, port: int = 8000,
        ui_query: str = "") -> None:
    """Serve until interrupted (the `memsvc serve` command)."""
    app, plan = build_server_app(memory, host)
    shown = "127.0.0.1" if plan.host in ("0.0.0.0", "::") else plan.host
    base = f"http://{shown}:{port}"
    print(f"memsvc: {plan.notice}")
    print(f"  REST + OpenAPI: {base}/docs")
    print(f"  explorer:       {base}/ui/{ui_query}")
    print(f"  MCP (HTTP):     {base}/mcp")
    sys.stdout.flush()
    uvicorn.run(app, host=plan.host, port=port, log_level="warning",
                timeout_keep_alive=KEEP_ALIVE_SECONDS)
