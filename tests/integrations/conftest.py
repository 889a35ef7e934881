"""Fixtures of the framework tests: every SDK flavour over a real store.

`sdk` is parametrized over the embedded `Memory` and the remote `MemoryClient` talking to a
real uvicorn server on 127.0.0.1; `async_sdk` over `AsyncMemory` and `AsyncMemoryClient`.
`raw` is the embedded `Memory` of the same store, to check what was (not) written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc import AsyncMemory, AsyncMemoryClient, Memory, MemoryClient
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer


@pytest.fixture
def raw(db_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    m = Memory(settings=Settings(db_path=db_path), embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def server(raw: Memory) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(raw)) as srv:
        yield srv


@pytest.fixture(params=["embedded", "remote"])
def sdk(request: pytest.FixtureRequest, raw: Memory) -> Iterator[Any]:
    if request.param == "embedded":
        yield raw
        return
    srv = request.getfixturevalue("server")
    with MemoryClient(srv.url) as client:
        yield client


@pytest.fixture(params=["async-embedded", "async-remote"])
async def async_sdk(request: pytest.FixtureRequest, db_path: Path,
                    embedder: SentenceTransformerEmbedder) -> AsyncIterator[Any]:
    if request.param == "async-embedded":
        m = AsyncMemory(settings=Settings(db_path=db_path), embedder=embedder)
        yield m
        await m.close()
        return
    srv = request.getfixturevalue("server")
    async with AsyncMemoryClient(srv.url) as client:
        yield client


@pytest.fixture
def counts(raw: Memory) -> Callable[[], tuple[int, int, int]]:
    """What a refused call must leave unchanged: memories, messages, history rows."""

    def snapshot() -> tuple[int, int, int]:
        stats = raw.stats()
        return stats.memories, stats.messages, stats.history

    return snapshot
