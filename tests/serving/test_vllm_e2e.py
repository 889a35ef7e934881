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

import httpx
import pytest

from memsvc.serving.llm_client import LLMClient, Usage
from memsvc.serving.prompt_layout import (
    LayoutOptions,
    Turn,
    build_messages,
    build_prewarm_request,
)
from memsvc.serving.vllm_launcher import LocalVLLM, VLLMConfig

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
