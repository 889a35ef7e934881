"""Pydantic AI on memsvc: the toolset under Pydantic AI's own `TestModel` and `FunctionModel`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from memsvc import Memory
from memsvc.integrations.pydantic_ai import RecalledMemory, memory_toolset


@dataclass
class UserDeps:
    user_id: str


def scripted(*turns: list[Any]) -> tuple[FunctionModel, list[list[ModelMessage]]]:
    """A FunctionModel answering with the next turn's parts; it records what it was sent."""
    seen: list[list[ModelMessage]] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        return ModelResponse(parts=turns[len(seen) - 1])

    return FunctionModel(answer), seen


def last_parts(messages: list[ModelMessage]) -> list[Any]:
    request = messages[-1]
    assert isinstance(request, ModelRequest)
    return list(request.parts)


async def test_function_model_remembers_then_recalls_typed_hits(sdk: Any) -> None:
    model, seen = scripted(
        [ToolCallPart("remember", {"text": "Erin's passport expires in March"})],
        [ToolCallPart("recall", {"query": "when does the passport expire?", "limit": 3})],
        [TextPart("In March.")],
    )
    agent = Agent(model, toolsets=[memory_toolset(sdk)], deps_type=UserDeps)
    result = await agent.run("note my passport expiry", deps=UserDeps("erin"))
    assert result.output == "In March."
    [stored] = last_parts(seen[1])
    assert isinstance(stored, ToolReturnPart) and stored.content.startswith("Remembered")
    [recalled] = last_parts(seen[2])
    assert isinstance(recalled, ToolReturnPart)
    hits = recalled.content
    assert all(isinstance(h, RecalledMemory) for h in hits)
    assert hits[0].text == "user: Erin's passport expires in March" and hits[0].score > 0


async def test_test_model_calls_every_tool_it_is_allowed(async_sdk: Any, raw: Memory) -> None:
    toolset = memory_toolset(async_sdk, user_id="frank")
    agent = Agent(TestModel(call_tools=["remember", "recall"]), toolsets=[toolset])
    result = await agent.run("go")
    assert "remember" in result.output and "recall" in result.output
    assert [r.scope.user_id for r in raw.get_all(user_id="frank").items] == ["frank"]
    # typed arguments reach the model as a JSON schema with their bounds
    schema = toolset.tools["recall"].function_schema.json_schema
    assert schema["properties"]["limit"]["maximum"] == 50
    assert schema["properties"]["limit"]["minimum"] == 1


async def test_bad_calls_come_back_as_retries_or_failures_and_change_nothing(
        sdk: Any, counts: Callable[[], tuple[int, int, int]], raw: Memory) -> None:
    other = raw.add("Gina likes kayaks", user_id="gina").results[0].id
    before = counts()
    model, seen = scripted(
        [ToolCallPart("remember", {"text": "   "})],           # memsvc: empty text
        [ToolCallPart("recall", {"query": "x", "limit": 500})],  # pydantic: out of bounds
        [ToolCallPart("forget", {"memory_id": other})],          # another user's memory
        [TextPart("gave up")],
    )
    agent = Agent(model, toolsets=[memory_toolset(sdk, user_id="hal")])
    assert (await agent.run("try")).output == "gave up"
    empty, bounds, foreign = (last_parts(seen[i])[0] for i in (1, 2, 3))
    assert (empty.outcome, empty.retry.cause) == ("retried", "model_retry")
    assert "empty_text" in str(empty.content)
    assert (bounds.outcome, bounds.retry.cause) == ("retried", "validation_error")
    assert "less than or equal to 50" in str(bounds.content)
    assert (foreign.outcome, foreign.retry.cause) == ("retried", "model_retry")
    assert "not_found" in str(foreign.content)
    assert counts() == before and raw.get(other).status.value == "active"


async def test_no_user_is_a_terminal_failure_the_model_sees(
        sdk: Any, counts: Callable[[], tuple[int, int, int]]) -> None:
    before = counts()
    model, seen = scripted([ToolCallPart("remember", {"text": "x"})], [TextPart("ok")])
    agent = Agent(model, toolsets=[memory_toolset(sdk)], deps_type=dict)
    assert (await agent.run("try", deps={})).output == "ok"
    [failed] = last_parts(seen[1])
    assert isinstance(failed, ToolReturnPart) and failed.outcome == "failed"
    assert "scope_required" in str(failed.content) and "user_id" in str(failed.content)
    assert counts() == before
