"""Shared fixtures: real stores in temp dirs, one real embedder loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings, default_embedder_path


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The shipped all-MiniLM-L6-v2, loaded from the wheel by path (offline)."""
    return SentenceTransformerEmbedder(default_embedder_path())


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memsvc.db"


@pytest.fixture
def memory(db_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    m = Memory(settings=Settings(db_path=db_path), embedder=embedder)
    yield m
    m.close()
