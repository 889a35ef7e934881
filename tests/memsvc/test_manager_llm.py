"""The LLM-delegated decision against a recorded OpenAI-compatible fake (a real HTTP server
on 127.0.0.1 replaying hand-written chat-completion bodies; no model runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "extractors"))
from fake_openai import FakeOpenAI, completion

from memsvc import Memory
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryStatus
from memsvc.model.settings import Settings

OLD = "Alice's team meets every Monday at 9 for planning."
NEW = "Alice's team now meets every Tuesday at 10 for planning."


def llm_memory(tmp_path: Path, embedder, url: str) -> Memory:
    """A store whose decider is the LLM, chosen the way a deployment chooses it: by the
    environment (`MEMSVC_DECIDER=llm`), read once into `Settings`."""
    settings = Settings.from_env({
        "MEMSVC_DECIDER": "llm", "MEMSVC_LLM_BASE_URL": url, "MEMSVC_LLM_MODEL": "recorded",
        "MEMSVC_DECIDER_CONSULT_ABOVE": "0.3"}, db_path=tmp_path / "llm.db")
    return Memory(settings=settings, embedder=embedder)


def add(mem: Memory, text: str):
    result = mem.add([{"role": "user", "name": "Alice", "content": text}], user_id="alice",
                     infer=True)
    return [c for c in result.results if c.kind is not MemoryKind.EPISODE]


def test_llm_invalidates_by_shown_number(tmp_path: Path, embedder):
    reply = {"event": "INVALIDATE", "target": 1, "reason": "the meeting moved"}
    fake = FakeOpenAI([completion(json.dumps(reply))])
    with fake.running(), llm_memory(tmp_path, embedder, fake.url) as mem:
        [old] = add(mem, OLD)
        assert fake.requests == []  # nothing close yet: the rules decide alone
        changes = add(mem, NEW)
        assert mem.get(old.id).status is MemoryStatus.SUPERSEDED
    prompt = fake.requests[0]["messages"][-1]["content"]
    assert f"1. {old.text}" in prompt and old.id not in prompt
    assert fake.requests[0]["response_format"]["json_schema"]["strict"] is True
    assert [c.event for c in changes] == [HistoryEvent.INVALIDATE, HistoryEvent.ADD]
    assert "llm-decider: the meeting moved" in (changes[0].reason or "")


def test_malformed_llm_decision_keeps_the_rules_decision(tmp_path: Path, embedder):
    fake = FakeOpenAI([completion("INVALIDATE #1 please")])
    with fake.running(), llm_memory(tmp_path, embedder, fake.url) as mem:
        [old] = add(mem, OLD)
        [change] = add(mem, NEW)
        assert len(fake.requests) == 1
        assert change.event is HistoryEvent.ADD
        assert mem.get(old.id).status is MemoryStatus.ACTIVE
        assert "decider_error" in mem.get(change.id).metadata


def test_one_llm_client_for_extractor_and_decider_closed_with_the_memory(
    tmp_path: Path, embedder
) -> None:
    """With both parts on the LLM, a Memory builds one client (one connection pool) and
    closes it with itself; a server's tenants share their base's decider."""
    settings = Settings.from_env({
        "MEMSVC_DECIDER": "llm", "MEMSVC_EXTRACTOR": "llm",
        "MEMSVC_LLM_BASE_URL": "http://127.0.0.1:9/v1", "MEMSVC_LLM_MODEL": "recorded"},
        db_path=tmp_path / "llm.db")
    mem = Memory(settings=settings, embedder=embedder)
    client = mem.decider.client  # type: ignore[union-attr]
    assert mem.extractor.client is client  # type: ignore[union-attr]
    tenant = Memory(settings=settings, embedder=embedder, store=mem.store.for_tenant("t2"),
                    extractor=mem.extractor, decider=mem.decider)
    assert tenant.decider is mem.decider
    mem.close()
    assert client._http.is_closed
