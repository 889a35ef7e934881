"""End to end against a real vLLM server with the real model (SmolLM2-135M-Instruct).

The module fixture starts the server through the launcher -- installing vLLM into its own
venv and converting the model on first use (a few minutes once, then ~35 s per start) -- and
stops it afterwards unless it was already running. Set MEMSVC_LLM_BASE_URL to run these
against another server, or MEMSVC_SKIP_VLLM=1 to skip them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.extractors.llm import LLMExtractor
from memsvc.llm.client import LLMClient, Usage
from memsvc.model.chat import ChatEvent, ChatResponse
from memsvc.model.settings import Settings
from memsvc.serving.app import create_app
from memsvc.serving.chat import ChatService
from memsvc.serving.prompt_layout import (
    LayoutOptions,
    Turn,
    build_messages,
    build_prewarm_request,
)
from memsvc.serving.server import BackgroundServer
from memsvc.serving.vllm import LocalVLLM, VLLMConfig

pytestmark = pytest.mark.skipif(os.environ.get("MEMSVC_SKIP_VLLM") == "1",
                                reason="MEMSVC_SKIP_VLLM=1")

SYSTEM = ("You are a friendly assistant with a long-term memory of the user. Answer in one "
          "or two short sentences. Use the memories when they help; never invent facts. " * 3)
PROFILE = [
    {"text": "The user is called Caroline and lives in Boston.", "kind": "fact"},
    {"text": "Caroline is a counsellor who works with LGBTQ youth.", "kind": "fact"},
    {"text": "Caroline likes painting, hiking and reading fantasy novels.", "kind": "preference"},
    {"text": "Caroline adopted a guinea pig named Oscar.", "kind": "event",
     "valid_from": "2023-05-20"},
    {"text": "Caroline's best friend is Melanie, a mother of three.", "kind": "fact"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalVLLM]:
    launcher = LocalVLLM(VLLMConfig.from_env())
    was_running = launcher.status().healthy
    launcher.start()
    yield launcher
    if not was_running:
        launcher.stop()
    assert launcher.external or was_running or not launcher.status().running


@pytest.fixture
def client(server: LocalVLLM) -> Iterator[LLMClient]:
    # A fresh cache salt per test: a hit can only come from this test's own requests.
    with server.client(cache_salt=f"test-{uuid.uuid4().hex}", timeout_s=120) as c:
        yield c


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_second_turn_reuses_the_first_turns_prefix(server: LocalVLLM, client: LLMClient) -> None:
    opts = LayoutOptions()
    history: list[Turn] = []
    metrics_before = httpx.get(server.base_url + "/metrics", timeout=10).text

    first = build_messages(SYSTEM, PROFILE, history, "What is my pet's name?",
                           [{"text": "Caroline adopted Oscar from a shelter.",
                             "valid_from": "2023-05-20"}], opts)
    chunks = list(client.stream_chat(first.messages, max_tokens=24))
    answer = "".join(c.delta for c in chunks)
    usage1 = next(c.usage for c in reversed(chunks) if c.usage is not None)
    assert answer.strip()
    assert usage1.cached_tokens == 0  # fresh salt: nothing cached yet
    assert any(c.delta for c in chunks)  # time to first token is measurable

    history += [Turn("user", "What is my pet's name?", context=first.context),
                Turn("assistant", answer)]
    second = build_messages(SYSTEM, PROFILE, history, "And where do I live?",
                            [{"text": "Caroline moved to Boston in 2019."}], opts)
    assert second.messages[: len(first.messages)] == first.messages
    result = client.chat(second.messages, max_tokens=24)
    usage2 = result.usage
    assert isinstance(usage2, Usage)
    assert usage2.cached_tokens is not None and usage2.cached_tokens > 0
    # everything up to the first prompt is reused (in whole 32-token blocks)
    assert usage2.cached_tokens >= usage1.prompt_tokens - 32
    assert usage2.cached_tokens / usage2.prompt_tokens > 0.5

    if not server.external:
        metrics_after = httpx.get(server.base_url + "/metrics", timeout=10).text
        hits = (_metric(metrics_after, "vllm:prefix_cache_hits_total")
                - _metric(metrics_before, "vllm:prefix_cache_hits_total"))
        queries = (_metric(metrics_after, "vllm:prefix_cache_queries_total")
                   - _metric(metrics_before, "vllm:prefix_cache_queries_total"))
        assert hits >= usage2.cached_tokens
        assert queries >= usage1.prompt_tokens + usage2.prompt_tokens


def test_prewarmed_profile_is_hit_by_the_first_turn(server: LocalVLLM, client: LLMClient) -> None:
    model = client.resolve_model()
    warm = build_prewarm_request(SYSTEM, PROFILE, model)
    warmed = client.chat(warm["messages"], max_tokens=1)
    assert warmed.usage is not None and warmed.usage.completion_tokens == 1
    first = build_messages(SYSTEM, PROFILE, [], "Hello again!", [], LayoutOptions())
    usage = client.chat(first.messages, max_tokens=8).usage
    assert usage is not None and usage.cached_tokens is not None
    assert usage.cached_tokens >= warmed.usage.prompt_tokens - 32 > 0


def test_json_schema_output_parses(client: LLMClient) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                       "city": {"type": "string"}},
        "required": ["name", "age", "city"],
        "additionalProperties": False,
    }
    value, result = client.chat_json(
        [{"role": "user", "content": "Extract the person as JSON: Alice is 31 years old and "
                                     "lives in Paris."}], schema, name="person", max_tokens=64)
    assert set(value) == {"name", "age", "city"}
    assert isinstance(value["age"], int)
    assert result.finish_reason == "stop"


def test_start_is_idempotent_and_status_reports_ready(server: LocalVLLM) -> None:
    before = server.status()
    again = server.start()
    assert again.healthy and before.healthy
    assert again.pid == before.pid
    if not server.external:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", again.base_url)
        assert again.model == server.config.served_model_name


# ----------------------------------------------------------------- memsvc on the real model


def test_llm_extractor_runs_against_the_real_server(
    server: LocalVLLM, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """The write pipeline's LLM extractor on SmolLM2-135M: either its memories land with its
    name and version, or (the tiny model's JSON fails validation twice) the batch falls back
    to rules and says so. Both ways the message is stored and becomes an episode."""
    with server.client(timeout_s=300) as llm:
        model = llm.resolve_model()
        extractor = LLMExtractor(llm, model=model, max_tokens=512)
        with Memory(settings=Settings(db_path=tmp_path / "x.db"), embedder=embedder,
                    extractor=extractor) as m:
            text = "I adopted a guinea pig named Oscar last week. I live in Boston."
            added = m.add(text, user_id="caroline", timestamp="2023-05-25T10:00:00Z",
                          infer=True)
            assert [x.content for x in m.messages(user_id="caroline")] == [text]
            items = m.get_all(user_id="caroline").items
    assert extractor.stats["calls"] >= 1
    episodes = [r for r in items if r.kind.value == "episode"]
    assert len(episodes) == 1 and episodes[0].provenance.source_message_ids == added.message_ids
    extracted = [r for r in items if r.kind.value != "episode"]
    by_llm = [r for r in extracted if r.provenance.extractor == "llm"]
    by_rules = [r for r in extracted if r.provenance.extractor == "rules"]
    assert by_llm or by_rules, "neither the model nor the fallback produced a memory"
    assert by_llm + by_rules == extracted
    for r in by_llm:
        assert r.provenance.extractor_version == f"1:{model}"
        assert r.provenance.source_message_ids == added.message_ids
    for r in by_rules:  # a fallback is recorded with its reason
        assert extractor.stats["fallbacks"] >= 1
        assert r.metadata["fallback"]["from"] == f"llm/1:{model}"
        assert r.metadata["fallback"]["reason"]


def test_chat_through_the_real_app_hits_the_cache_on_the_second_turn(
    server: LocalVLLM, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """POST /v1/chat on the real FastAPI app (uvicorn on 127.0.0.1) over the real model:
    streamed answer, memories used, exchange stored, and turn two reuses turn one's prompt
    from vLLM's prefix cache (usage.prompt_tokens_details.cached_tokens)."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    memory = Memory(settings=Settings(db_path=tmp_path / "chat.db"), embedder=embedder)
    for fact in ("I adopted a guinea pig named Oscar.", "I moved to Boston in 2019.",
                 "I work as a counsellor with LGBTQ youth.", "I love painting and hiking."):
        memory.add(fact, user_id=user, session_id="earlier", infer=True)
    memory.consolidate(user_id=user, steps=["profile"])
    service = ChatService(server.client(timeout_s=300))
    turns: list[ChatResponse] = []
    try:
        with BackgroundServer(create_app(memory, chat=service)) as srv, \
                httpx.Client(base_url=srv.url, timeout=300) as http:
            session = None
            for message in ("What is my pet's name?", "And which city do I live in?"):
                body = {"message": message, "user_id": user, "session_id": session,
                        "stream": True, "max_tokens": 24}
                with http.stream("POST", "/v1/chat", json=body) as r:
                    assert r.status_code == 200, r.read()
                    assert r.headers["content-type"].startswith("text/event-stream")
                    events = [ChatEvent.model_validate_json(line[5:].strip())
                              for line in r.iter_lines() if line.startswith("data:")]
                assert events[-1].type == "done", events[-1]
                done = events[-1].response
                assert done is not None
                assert "".join(e.text or "" for e in events if e.type == "delta") == done.answer
                assert done.answer.strip()
                session = done.session_id
                turns.append(done)
    finally:
        service.close()
        stored = memory.messages(user_id=user, session_id=turns[0].session_id if turns else "-")
        memory.close()
    first, second = turns
    assert first.memory_ids and first.profile_id is not None
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [m.content for m in stored[1::2]] == [first.answer, second.answer]
    assert first.usage is not None and second.usage is not None
    assert second.usage.cached_tokens is not None and second.usage.cached_tokens > 0
    # everything up to the first prompt is reused, in whole 32-token blocks
    assert second.usage.cached_tokens >= first.usage.prompt_tokens - 32
