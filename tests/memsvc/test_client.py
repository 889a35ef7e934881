"""`MemoryClient` / `AsyncMemoryClient`: same surface as `Memory`, errors mapped back."""

from __future__ import annotations

import inspect
import json

import httpx
import pytest

from memsvc import Memory
from memsvc.model.errors import (
    InvalidFilterError,
    InvalidInputError,
    NotFoundError,
    TextTooLargeError,
    UnauthorizedError,
)
from memsvc.model.records import SearchResponse
from memsvc.sdk.client import AsyncMemoryClient, MemoryClient, RemoteError, raise_for_error
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer
from memsvc.storage.keys import ApiKeyStore

NDJSON = "application/x-ndjson"

def test_every_memory_method_is_remote_with_the_same_signature() -> None:
    """The full check against the spec is tests/memsvc/test_sdk_spec.py; this is the
    promise users read: nothing of `Memory` is local-only any more."""
    public = {n for n in dir(Memory) if not n.startswith("_") and callable(getattr(Memory, n))}
    for client_cls in (MemoryClient, AsyncMemoryClient):
        for name in public:
            local = inspect.signature(getattr(Memory, name)).parameters
            remote = inspect.signature(getattr(client_cls, name)).parameters
            assert [(p.name, p.kind, p.default) for p in local.values()] == [
                (p.name, p.kind, p.default) for p in remote.values()
            ], (client_cls.__name__, name)


def test_what_cannot_cross_the_network_is_refused_before_sending() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing should be sent: {request.url}")

    with MemoryClient("http://memsvc.invalid", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(InvalidInputError) as info:
            client.consolidate(user_id="u", progress=lambda step, done, total: None)
        assert info.value.field == "progress"
        with pytest.raises(InvalidInputError) as info:
            client.consolidate(user_id="u", config={"merge_threshold": 0.5})  # type: ignore
        assert info.value.field == "config"
        with pytest.raises(InvalidInputError) as info:
            client.search("q", user_id="u", plan=42)  # type: ignore[arg-type]
        assert info.value.field == "plan"
        with pytest.raises(InvalidInputError) as info:
            client.get("   ")
        assert info.value.field == "id"
        with pytest.raises(TypeError):
            client.search("q", user="u")  # type: ignore[call-arg]


def test_requests_follow_the_spec_mapping() -> None:
    """Path, query and body as sdk/operations.py places them (seen by a fake transport)."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/v1/memories" and request.method == "DELETE":
            return httpx.Response(200, json={"deleted": 4})
        if request.url.path == "/v1/export":
            return httpx.Response(200, content=b"", headers={"content-type": NDJSON})
        return httpx.Response(204)

    with MemoryClient("http://memsvc.test", transport=httpx.MockTransport(answer)) as client:
        assert client.delete_all(user_id="u", hard=True) == 4
        assert client.delete("a/b", hard=True) is None
        assert client.reset() is None
        assert list(client.export(agent_id="x", include_inactive=False)) == []
    assert [(r.method, r.url.raw_path.decode().split("?")[0]) for r in sent] == [
        ("DELETE", "/v1/memories"), ("DELETE", "/v1/memories/a%2Fb"), ("POST", "/v1/reset"),
        ("GET", "/v1/export")]
    assert dict(sent[0].url.params) == {"user_id": "u", "hard": "true"}
    assert json.loads(sent[2].content) == {}  # a JSON body, as destructive routes require
    assert sent[2].headers["content-type"] == "application/json"
    assert dict(sent[3].url.params) == {"agent_id": "x", "include_inactive": "false",
                                        "full": "false"}


async def test_async_client_round_trip(memory: Memory) -> None:
    with BackgroundServer(create_app(memory)) as server:
        async with AsyncMemoryClient(server.url) as client:
            added = await client.add("The office wifi password rotates every Monday",
                                     user_id="a")
            found = await client.search("wifi password", user_id="a")
            assert isinstance(found, SearchResponse)
            assert found.results[0].memory.id == added.results[0].id
            block = await client.context("wifi", user_id="a", max_tokens=64)
            assert block.memory_ids == [added.results[0].id]
            with pytest.raises(NotFoundError):
                await client.get("01NOSUCHMEMORY00000000000")
            with pytest.raises(InvalidFilterError):
                await client.search("x", user_id="a", filters={"NOT": []})
            assert await client.delete_all(user_id="a", hard=True) == 1


def test_api_key_is_sent_and_a_missing_key_is_a_typed_error(memory: Memory) -> None:
    keys = ApiKeyStore(memory.store.engine)
    _, key = keys.create("sdk", "team-x")
    app = create_app(memory, keys=keys, require_keys=True)
    with BackgroundServer(app) as server:
        with MemoryClient(server.url, api_key=key) as client:
            client.add("Team X ships on Thursdays", user_id="lead")
            assert client.get_all(user_id="lead").total == 1
        with MemoryClient(server.url) as anonymous, pytest.raises(UnauthorizedError) as info:
            anonymous.get_all(user_id="lead")
        assert info.value.code == "unauthorized" and "key" in info.value.message.lower()
    assert memory.get_all(user_id="lead").total == 0  # stored under team-x, not default


def test_error_mapping_without_a_server() -> None:
    too_big = httpx.Response(413, json={"error": {"code": "text_too_large",
                                                  "message": "too big", "field": "text"}})
    with pytest.raises(TextTooLargeError) as info:
        raise_for_error(too_big)
    assert info.value.field == "text"
    proxy_page = httpx.Response(502, text="<html>bad gateway</html>")
    with pytest.raises(RemoteError) as remote:
        raise_for_error(proxy_page)
    assert remote.value.code == "http_502" and "bad gateway" in remote.value.message
    raise_for_error(httpx.Response(204))


def test_the_client_drops_idle_connections_before_the_server_closes_them() -> None:
    """Equal idle timers on both ends (httpx's and uvicorn's defaults are both 5 s) let a
    request go out on a connection the server is closing: "connection reset by peer" on a
    POST that is then not retried (seen in the SDK contract suite)."""
    from memsvc.sdk.client import KEEPALIVE_EXPIRY, MemoryClient
    from memsvc.serving.server import KEEP_ALIVE_SECONDS

    client = MemoryClient("http://127.0.0.1:9")
    try:
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY
    finally:
        client.close()
    assert KEEPALIVE_EXPIRY < KEEP_ALIVE_SECONDS / 2
