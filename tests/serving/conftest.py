"""Fixtures of the server tests: a real uvicorn server on 127.0.0.1 over a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer
from memsvc.storage.keys import ApiKeyStore

# An address where no LLM listens, so POST /v1/chat fails fast (503) in these tests.
NO_LLM = "http://127.0.0.1:9"


@pytest.fixture
def base_memory(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    settings = Settings(db_path=tmp_path / "server.db", llm_base_url=NO_LLM)
    m = Memory(settings=settings, embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def server(base_memory: Memory) -> Iterator[BackgroundServer]:
    """No keys configured: the open, loopback-only mode."""
    with BackgroundServer(create_app(base_memory)) as srv:
        yield srv


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture
def key_store(base_memory: Memory) -> ApiKeyStore:
    return base_memory.store.key_store()


@pytest.fixture
def keyed_server(base_memory: Memory, key_store: ApiKeyStore) -> Iterator[BackgroundServer]:
    """Keys required (as `memsvc serve` does once a key exists)."""
    with BackgroundServer(create_app(base_memory, keys=key_store, require_keys=True)) as srv:
        yield srv
