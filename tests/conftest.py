"""Shared fixtures: real stores in temp dirs, one real embedder loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings, default_embedder_path


@pytest.fixture(scope="session", autouse=True)
def _integrity_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The integrity key and the witness files live in a temp dir, never the user's config
    dir (subprocesses inherit it)."""
    base = tmp_path_factory.mktemp("memsvc-config")
    saved = {k: os.environ.get(k) for k in ("MEMSVC_CONFIG_DIR", "MEMSVC_WITNESS_DIR")}
    os.environ["MEMSVC_CONFIG_DIR"] = str(base)
    os.environ["MEMSVC_WITNESS_DIR"] = str(base / "witness")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
