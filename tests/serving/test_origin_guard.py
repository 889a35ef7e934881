"""Issue 11, M5: the key-less loopback server is not reachable from a web page.

DNS rebinding: a page of attacker.example re-points its name at 127.0.0.1 and reads and
writes the key-less server with `Host: attacker.example`. Every route must answer such a
Host with 421 while no keys are required. A cross-site request (Origin of another site,
Sec-Fetch-Site: cross-site) to a state-changing route is refused whatever the Host. And a
key created after start-up turns auth on without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from memsvc import Memory
from memsvc.serving.server import BackgroundServer, build_server_app

ROUTES = [
    ("GET", "/v1/memories?user_id=u1", None),
    ("POST", "/v1/memories", {"messages": "I live in Lima", "user_id": "u1"}),
    ("POST", "/v1/search", {"query": "Lima", "user_id": "u1"}),
    ("DELETE", "/v1/users/u1", None),
    ("POST", "/v1/reset", {}),
    ("GET", "/v1/stats", None),
    ("GET", "/v1/export", None),
    ("GET", "/healthz", None),
    ("GET", "/metrics", None),
    ("GET", "/ui/", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
]


def _export(memory: Memory) -> list[str]:
    return sorted(r.model_dump_json() for r in memory.export())


@pytest.fixture
def planned(base_memory: Memory) -> Iterator[BackgroundServer]:
    """The server as `memsvc serve` builds it (no key yet: key-less, loopback)."""
    app, plan = build_server_app(base_memory)
    assert not plan.require_keys
    with BackgroundServer(app) as srv:
        yield srv


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000",
                                  "127.0.0.1.nip.io", "192.168.1.20", "evil.localhost.example"])
def test_a_foreign_host_is_refused_on_every_route(
    server: BackgroundServer, base_memory: Memory, host: str
) -> None:
    base_memory.add("I live in Oslo", user_id="u1")
    before = _export(base_memory)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, path, body in ROUTES:
            r = http.request(method, path, json=body, headers={"Host": host})
            assert r.status_code == 421, (method, path, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "misdirected_request", (method, path)
            assert "Oslo" not in r.text
    assert _export(base_memory) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "127.0.0.1:{port}",
                                  "localhost:{port}", "[::1]:{port}", "[::1]", "127.1.2.3"])
def test_loopback_names_are_served(server: BackgroundServer, host: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        headers = {"Host": host.format(port=server.port)}
        r = http.post("/v1/memories", json={"messages": "hi there", "user_id": "u1"},
                      headers=headers)
        assert r.status_code == 201, r.text
        assert http.get("/v1/memories", params={"user_id": "u1"},
                        headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "https://attacker.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:3000"},  # another local app is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://attacker.example"},
])
def test_a_cross_site_write_is_refused(
    server: BackgroundServer, base_memory: Memory, headers: dict[str, str]
) -> None:
    base_memory.add("I live in Oslo", user_id="u1")
    before = _export(base_memory)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, path, body in [
            ("POST", "/v1/memories", {"messages": "I live in Lima", "user_id": "u1"}),
            ("DELETE", "/v1/users/u1", None),
            ("POST", "/v1/reset", {}),
            ("POST", "/v1/import", {"records": []}),
            ("PATCH", "/v1/memories/x", {"text": "t"}),
        ]:
            r = http.request(method, path, json=body, headers=headers)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "cross_site_request"
    assert _export(base_memory) == before


def test_the_explorer_page_itself_may_write(server: BackgroundServer) -> None:
    """What the browser sends from /ui/ on the same origin is served."""
    same = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post("/v1/memories", json={"messages": "hi there", "user_id": "u1"},
                      headers=same)
        assert r.status_code == 201, r.text
        # a cross-site read is not a write: a page cannot read the answer without CORS
        assert http.get("/healthz", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_a_key_created_after_start_turns_auth_on(
    planned: BackgroundServer, base_memory: Memory
) -> None:
    keys = base_memory.store.key_store()
    with httpx.Client(base_url=planned.url, timeout=30) as http:
        assert http.get("/healthz").json()["auth"] == "none"
        assert http.get("/v1/memories", params={"user_id": "u1"}).status_code == 200
        info, key = keys.create("late", "acme")  # e.g. `memsvc keys create` meanwhile
        deadline = time.monotonic() + 30
        while http.get("/v1/stats").status_code != 401:
            assert time.monotonic() < deadline, "a new key did not turn auth on"
            time.sleep(0.2)
        assert http.get("/healthz").json()["auth"] == "api_key"
        r = http.post("/v1/memories", json={"messages": "hi", "user_id": "u1"})
        assert r.status_code == 401
        authed = {"Authorization": f"Bearer {key}"}
        assert http.get("/v1/stats", headers=authed).status_code == 200
        # with auth on, the key is the defence: any Host may carry it
        assert http.get("/v1/stats", headers={**authed, "Host": "memsvc.internal"}
                        ).status_code == 200
        keys.revoke(info.id)  # the last key gone: back to key-less, loopback only
        deadline = time.monotonic() + 30
        while http.get("/v1/stats").status_code != 200:
            assert time.monotonic() < deadline, "revoking the last key did not turn auth off"
            time.sleep(0.2)
        assert http.get("/v1/stats", headers={"Host": "memsvc.internal"}).status_code == 421
