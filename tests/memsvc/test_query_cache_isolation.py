"""Issue 11 M6: the query-embedding cache must not tell one tenant what another searched.

All tenants of a server share one embedder. With one cache for all of them, a search by
tenant B for a string tenant A had just searched skipped the forward pass, which B could
see in `timing_ms.embed` (or in the reply's latency). Each tenant now has its own entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings


@pytest.fixture
def forward_passes(
    embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The texts the model actually ran on (cache misses), in order."""
    seen: list[str] = []
    real = embedder._encode_queries

    def counting(texts: list[str]) -> list[np.ndarray]:
        seen.extend(texts)
        return real(texts)

    monkeypatch.setattr(embedder, "_encode_queries", counting)
    return seen


@pytest.fixture
def two_tenants(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Memory, Memory]]:
    """Two tenants of one file sharing one embedder, as `serving.tenancy` builds them."""
    alice = Memory(settings=Settings(db_path=tmp_path / "m.db", tenant="alice"), embedder=embedder)
    bob = Memory(settings=Settings(db_path=tmp_path / "m.db", tenant="bob"), embedder=embedder)
    yield alice, bob
    bob.close()
    alice.close()


def test_a_search_by_one_tenant_warms_no_cache_for_another(
    two_tenants: tuple[Memory, Memory], forward_passes: list[str]
) -> None:
    alice, bob = two_tenants
    secret = f"is the merger with {uuid.uuid4().hex} still on"
    alice.add("We talked about the merger", user_id="u1")
    bob.add("We talked about lunch", user_id="u1")
    alice.search(secret, user_id="u1")
    assert forward_passes.count(secret) == 1
    bob.search(secret, user_id="u1")
    assert forward_passes.count(secret) == 2  # bob paid for his own forward pass
    alice.search(secret, user_id="u1")
    bob.search(secret, user_id="u1")
    assert forward_passes.count(secret) == 2  # and each tenant's repeats are still cached


def test_namespaces_partition_the_cache_and_default_to_one(
    embedder: SentenceTransformerEmbedder, forward_passes: list[str]
) -> None:
    text = f"where did I park {uuid.uuid4().hex}"
    first = embedder.embed_query(text, namespace="a")
    assert embedder.embed_query(text, namespace="a") is first
    other = embedder.embed_query(text, namespace="b")
    assert other is not first and np.allclose(other, first)
    plain = embedder.embed_query(text)  # callers that name no namespace share one
    assert embedder.embed_query(text) is plain
    assert forward_passes == [text, text, text]
