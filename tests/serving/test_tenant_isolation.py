"""Property: no request, whatever its key, ever sees or touches another tenant's data.

Hypothesis drives random multi-tenant writes and reads through the real HTTP API (uvicorn
on 127.0.0.1), over a real SQLite file and a real PostgreSQL schema (`store_location`).
Tenants deliberately share user ids and words, so only the tenant boundary in the storage
layer keeps them apart. Every id the server ever returns is checked against the tenant that
created it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from backend_examples import on_backends
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.sdk.client import MemoryClient
from memsvc.serving.server import BackgroundServer
from memsvc.storage.keys import ApiKeyStore

TENANTS = ("acme", "globex", "initech")
USERS = ("u1", "u2", "shared-user")
WORDS = ("coffee", "berlin", "piano", "allergy", "sister", "marathon", "python", "garden")

write = st.tuples(
    st.just("write"), st.sampled_from(TENANTS), st.sampled_from(USERS),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
)
read = st.tuples(
    st.sampled_from(("search", "context", "list", "messages", "probe")),
    st.sampled_from(TENANTS), st.sampled_from(USERS),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)


@pytest.fixture
def base_memory(store_location: str, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    """The server's store, on each backend (tests/serving/conftest.py's, parametrized)."""
    m = Memory(settings=Settings(db_path=store_location, llm_base_url="http://127.0.0.1:9"),
               embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def owners() -> dict[str, str]:
    """memory/message id -> the tenant that created it, across all examples (one server)."""
    return {}


@pytest.fixture
def clients(
    keyed_server: BackgroundServer, key_store: ApiKeyStore
) -> Iterator[dict[str, httpx.Client]]:
    out = {}
    for tenant in TENANTS:
        _, key = key_store.create(f"key-{tenant}", tenant)
        out[tenant] = httpx.Client(base_url=keyed_server.url, timeout=60,
                                   headers={"Authorization": f"Bearer {key}"})
    yield out
    for client in out.values():
        client.close()


@on_backends(settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow]),
    {"sqlite": 25, "postgres": 10}, ops=st.lists(st.one_of(write, read), min_size=4, max_size=12))
def test_no_cross_tenant_result_ever(
    clients: dict[str, httpx.Client], owners: dict[str, str], ops: list[Any]
) -> None:
    owner = owners
    for op, tenant, user, words in ops:
        http = clients[tenant]
        if op == "write":
            r = http.post("/v1/memories", json={
                "messages": f"{tenant} note: {' '.join(words)}", "user_id": user})
            assert r.status_code == 201, r.text
            body = r.json()
            for mid in body["message_ids"] + [c["id"] for c in body["results"]]:
                owner[mid] = tenant
        elif op == "search":
            r = http.post("/v1/search", json={"query": " ".join(words), "user_id": user,
                                              "limit": 50})
            assert r.status_code == 200, r.text
            _all_mine(owner, tenant, [h["memory"]["id"] for h in r.json()["results"]])
            assert all(h["memory"]["text"].startswith(f"{tenant} note") or
                       tenant in h["memory"]["text"] for h in r.json()["results"])
        elif op == "context":
            r = http.post("/v1/context", json={"query": " ".join(words), "user_id": user})
            assert r.status_code == 200, r.text
            _all_mine(owner, tenant, r.json()["memory_ids"])
            for other in TENANTS:
                if other != tenant:
                    assert f"{other} note" not in r.json()["text"]
        elif op == "list":
            r = http.get("/v1/memories", params={"user_id": user, "limit": 1000,
                                                 "include_inactive": "true"})
            assert r.status_code == 200, r.text
            _all_mine(owner, tenant, [m["id"] for m in r.json()["items"]])
        elif op == "messages":
            r = http.get("/v1/messages", params={"user_id": user})
            assert r.status_code == 200, r.text
            _all_mine(owner, tenant, [m["id"] for m in r.json()])
        else:  # probe another tenant's ids directly: all must look nonexistent
            foreign = [mid for mid, t in owner.items() if t != tenant][-5:]
            for mid in foreign:
                assert http.get(f"/v1/memories/{mid}").status_code == 404
                assert http.get(f"/v1/memories/{mid}/history").status_code == 404
                assert http.get(f"/v1/memories/{mid}/graph").status_code == 404
                assert http.patch(f"/v1/memories/{mid}", json={"text": "hijacked"}
                                  ).status_code == 404
                assert http.delete(f"/v1/memories/{mid}?hard=true").status_code == 404
    stats = {t: clients[t].get("/v1/stats").json() for t in TENANTS}
    for tenant in TENANTS:
        mine = sum(1 for mid, t in owner.items() if t == tenant)
        assert stats[tenant]["memories"] + stats[tenant]["messages"] == mine


def _all_mine(owner: dict[str, str], tenant: str, ids: list[str]) -> None:
    strangers = {mid: owner.get(mid) for mid in ids if owner.get(mid) != tenant}
    assert not strangers, f"tenant {tenant} saw ids of {strangers}"


def test_stats_show_a_tenant_its_own_counts_and_nothing_of_the_file(
    clients: dict[str, httpx.Client], base_memory: Memory, backend: str
) -> None:
    """Issue 11, L1: the file's path (the database's URL) and size are the operator's, not a
    tenant's."""
    location = str(base_memory.settings.db_path)
    # the file's name; the schema's name (the URL carries it, encoded, in its options)
    secret = (Path(location).name if backend == "sqlite"
              else location.split("search_path%3D")[1].split("%2C")[0])
    for _ in range(3):
        assert clients["acme"].post("/v1/memories", json={
            "messages": "acme note: coffee", "user_id": "u1"}).status_code == 201
    acme = clients["acme"].get("/v1/stats")
    globex = clients["globex"].get("/v1/stats")
    for r in (acme, globex):
        assert r.status_code == 200, r.text
        assert "path" not in r.json() and "size_bytes" not in r.json(), r.json()
        assert secret not in r.text
    assert (acme.json()["memories"], acme.json()["messages"]) == (3, 3)
    assert (globex.json()["memories"], globex.json()["messages"]) == (0, 0)
    # the remote SDK reads the same answer
    key = clients["globex"].headers["Authorization"].removeprefix("Bearer ")
    with MemoryClient(str(clients["globex"].base_url), api_key=key) as remote:
        seen = remote.stats()
    assert seen.memories == 0 and seen.path is None and seen.size_bytes is None
    # the operator's own view (embedded, `memsvc stats`) keeps them
    full = base_memory.stats()
    assert full.path and secret in full.path and (full.size_bytes or 0) > 0
