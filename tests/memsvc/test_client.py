"""`MemoryClient` / `AsyncMemoryClient`: same surface as `Memory`, errors mapped back."""

from __future__ import annotations

import inspect

import httpx
import pytest

from memsvc import Memory
from memsvc.model.errors import (
    InvalidFilterError,
    NotFoundError,
    TextTooLargeError,
    UnauthorizedError,
)
from memsvc.model.records import SearchResponse
from memsvc.sdk.client import AsyncMemoryClient, MemoryClient, RemoteError, raise_for_error
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer
from memsvc.storage.keys import ApiKeyStore

# Methods that only make sense next to the file (bulk import/export, wiping a tenant, the
# internal second half of a background add). Anything else `Memory` grows must be remote too.
LOCAL_ONLY = {"close", "export", "import_records", "reset", "infer"}


def _public(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


@pytest.mark.parametrize("client_cls", [MemoryClient, AsyncMemoryClient])
def test_same_method_names_and_arguments_as_memory(client_cls: type) -> None:
    shared = _public(Memory) - LOCAL_ONLY
    assert shared <= _public(client_cls), shared - _public(client_cls)
    for name in shared:
        local = inspect.signature(getattr(Memory, name)).parameters
        remote = inspect.signature(getattr(client_cls, name)).parameters
        assert [(p.name, p.kind, p.default) for p in local.values()] == [
            (p.name, p.kind, p.default) for p in remote.values()
        ], name


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
