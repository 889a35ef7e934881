"""Issue 11, M2: a background add acknowledged with 202 is extracted even if the server dies.

A real `memsvc serve` gets N `background: true` adds while its extractor (the LLM one) hangs
on an LLM that never answers, so every job is still queued or running; then it is killed
with SIGKILL. Half of the users are recovered by consolidation (run on the file, as the CLI
would), the other half by the restarted server's start-up recovery. Every user must end with
the memories a synchronous add would have extracted, and no episode may stay pending.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import HangingLLM, ServeProcess

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings

USERS = 40


def _text(i: int) -> str:
    return f"I adopted a dog named Rex{i} last week."


def _derived(memory: Memory, user: str) -> list[str]:
    items = memory.get_all(user_id=user, limit=1000).items
    return [m.text for m in items if m.kind.value != "episode"]


def _pending(memory: Memory) -> list[str]:
    return [m.id for m in memory.export() if m.kind.value == "episode"
            and (m.metadata.get("extraction") or {}).get("status") == "pending"]


@pytest.fixture
def hanging_llm() -> Iterator[HangingLLM]:
    with HangingLLM() as llm:
        yield llm


def test_background_adds_survive_sigkill(
    tmp_path: Path, hanging_llm: HangingLLM, embedder: SentenceTransformerEmbedder
) -> None:
    db = tmp_path / "bg.db"
    log = tmp_path / "serve.log"
    first = ServeProcess(db, log, env={
        "MEMSVC_EXTRACTOR": "llm", "MEMSVC_LLM_BASE_URL": hanging_llm.url,
        "MEMSVC_LLM_MODEL": "m", "MEMSVC_LLM_TIMEOUT": "600",
    })
    try:
        first.wait_ready()
        with httpx.Client(base_url=first.url, timeout=60) as http:
            for i in range(USERS):
                r = http.post("/v1/memories", json={
                    "messages": _text(i), "user_id": f"u{i}", "infer": True,
                    "background": True})
                assert r.status_code == 202, r.text
            # acknowledged means stored: every message is there, nothing extracted yet
            assert len(http.get("/v1/messages", params={"user_id": "u7"}).json()) == 1
    finally:
        first.kill()

    settings = Settings(db_path=db, extractor="rules")
    with Memory(settings=settings, embedder=embedder) as memory:
        assert all(_derived(memory, f"u{i}") == [] for i in range(USERS))
        # the first half: consolidation's retry step (what `memsvc consolidate` runs)
        for i in range(USERS // 2):
            memory.consolidate(user_id=f"u{i}", steps=["retry"])
        for i in range(USERS // 2):
            derived = _derived(memory, f"u{i}")
            assert len(derived) == 1 and f"Rex{i} " in derived[0], (i, derived)
        # the mark was durable before the 202: the other half is still marked
        assert len(_pending(memory)) == USERS - USERS // 2

    # the other half: the restarted server finds the pending episodes itself
    second = ServeProcess(db, log)
    try:
        second.wait_ready()
        deadline = time.monotonic() + 120
        with Memory(settings=settings, embedder=embedder) as memory:
            while _pending(memory) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _pending(memory) == []
            for i in range(USERS):
                derived = _derived(memory, f"u{i}")
                assert len(derived) == 1 and f"Rex{i} " in derived[0], (i, derived)
    finally:
        second.stop()
