"""The LLM-delegated decision against a recorded OpenAI-compatible fake (a real HTTP server
on 127.0.0.1 replaying hand-written chat-completion bodies; no model runs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "extractors"))
from fake_openai import FakeOpenAI, completion

from memsvc import Memory
from memsvc.llm.backend import SimpleChatClient
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryStatus
from memsvc.model.settings import Settings
from memsvc.write.llm_decider import LLMDecider

OLD = "Alice's team meets every Monday at 9 for planning."
NEW = "Alice's team now meets every Tuesday at 10 for planning."


@pytest.fixture
def mem(tmp_path: Path, embedder) -> Iterator[Memory]:
    with Memory(settings=Settings(db_path=tmp_path / "llm.db"), embedder=embedder) as m:
        yield m


def add(mem: Memory, text: str):
    result = mem.add([{"role": "user", "name": "Alice", "content": text}], user_id="alice",
                     infer=True)
    return [c for c in result.results if c.kind is not MemoryKind.EPISODE]


def test_llm_invalidates_by_shown_number(mem: Memory):
    [old] = add(mem, OLD)
    reply = {"event": "INVALIDATE", "target": 1, "reason": "the meeting moved"}
    with FakeOpenAI([completion(json.dumps(reply))]).running() as fake:
        mem._manager.decider = LLMDecider(SimpleChatClient(fake.url, "recorded"))
        mem._manager.consult_above = 0.3
        changes = add(mem, NEW)
    prompt = fake.requests[0]["messages"][-1]["content"]
    assert f"1. {old.text}" in prompt and old.id not in prompt
    assert fake.requests[0]["response_format"]["json_schema"]["strict"] is True
    assert [c.event for c in changes] == [HistoryEvent.INVALIDATE, HistoryEvent.ADD]
    assert mem.get(old.id).status is MemoryStatus.SUPERSEDED
    assert "llm-decider: the meeting moved" in (changes[0].reason or "")


def test_malformed_llm_decision_keeps_the_rules_decision(mem: Memory):
    [old] = add(mem, OLD)
    with FakeOpenAI([completion("INVALIDATE #1 please")]).running() as fake:
        mem._manager.decider = LLMDecider(SimpleChatClient(fake.url, "recorded"))
        mem._manager.consult_above = 0.3
        [change] = add(mem, NEW)
    assert change.event is HistoryEvent.ADD
    assert mem.get(old.id).status is MemoryStatus.ACTIVE
    assert "decider_error" in mem.get(change.id).metadata
