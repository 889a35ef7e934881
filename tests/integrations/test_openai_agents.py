"""The OpenAI Agents SDK on memsvc: `Runner.run` with a scripted `Model`, memsvc tools, and
`MemsvcSession` checked item for item against the SDK's own `SQLiteSession`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from agents import (
    Agent,
    Model,
    ModelResponse,
    ModelSettings,
    RunConfig,
    Runner,
    SQLiteSession,
    Usage,
)
from agents.exceptions import UserError
from agents.memory.session import Session
from agents.testing import assistant_message, function_call

from memsvc import Memory
from memsvc.integrations.openai_agents import MemsvcSession, memory_tools

OFFLINE = RunConfig(tracing_disabled=True)


class ScriptedModel(Model):
    """The SDK's `Model` interface: each call returns the next scripted output, and records
    the input it was given."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = turns
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: str | None, input: Any,
                           model_settings: ModelSettings, tools: list[Any],
                           output_schema: Any, handoffs: list[Any], tracing: Any, *,
                           previous_response_id: str | None = None,
                           conversation_id: str | None = None,
                           prompt: Any = None) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


def script() -> list[list[Any]]:
    return [
        [function_call("remember", {"text": "Alice's cat is called Miso"}, call_id="c1")],
        [assistant_message("Noted.")],
        [function_call("recall", {"query": "name of the cat", "limit": 3}, call_id="c2")],
        [assistant_message("Your cat is Miso.")],
    ]


async def two_runs(session: Session, memory: Any) -> ScriptedModel:
    model = ScriptedModel(script())
    agent = Agent(name="assistant", model=model, tools=memory_tools(memory, user_id="alice"))
    first = await Runner.run(agent, "My cat is called Miso", session=session,
                             run_config=OFFLINE)
    assert first.final_output == "Noted."
    second = await Runner.run(agent, "What is my cat called?", session=session,
                              run_config=OFFLINE)
    assert second.final_output == "Your cat is Miso."
    return model


async def test_runner_tools_and_session_match_the_sdks_own_session(sdk: Any) -> None:
    session = MemsvcSession("thread-1", sdk, user_id="alice")
    assert isinstance(session, Session)
    model = await two_runs(session, sdk)

    # the second run saw the first through the session, and recall found remember's memory
    history = model.inputs[2]
    assert history[0] == {"content": "My cat is called Miso", "role": "user"}
    assert any(i.get("type") == "function_call_output" and "Remembered" in i["output"]
               for i in history)
    recalled = json.loads(next(i["output"] for i in model.inputs[3]
                               if i.get("type") == "function_call_output"
                               and i["call_id"] == "c2"))
    # the session's turns are alice's memories too, so both the turn and the fact are found
    assert {"user: Alice's cat is called Miso", "user: My cat is called Miso"} <= {
        h["text"] for h in recalled}
    assert all(h["score"] > 0 for h in recalled)

    reference = SQLiteSession("thread-1")  # in-memory: the SDK's own behaviour
    await two_runs(reference, sdk)
    mine, theirs = await session.get_items(), await reference.get_items()
    # the tool outputs name fresh memory ids; everything else is identical
    assert [_without_ids(i) for i in mine] == [_without_ids(i) for i in theirs]
    assert len(mine) == 8 and await session.get_items(limit=2) == mine[-2:]

    last = await session.pop_item()
    assert last == mine[-1] and await session.get_items() == mine[:-1]
    await session.clear_session()
    assert await session.get_items() == [] and await session.pop_item() is None


def _without_ids(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "function_call_output":
        return {**item, "output": item["output"].split(" (memory")[0][:12]}
    return item


async def test_session_reopens_in_a_new_object_and_is_searchable(async_sdk: Any,
                                                                 raw: Memory) -> None:
    session = MemsvcSession("thread-2", async_sdk, user_id="bob")
    items: list[Any] = [{"role": "user", "content": "I am flying to Oslo on Friday"},
                        {"type": "message", "role": "assistant", "status": "completed",
                         "id": "m1", "content": [{"type": "output_text", "text": "Have a good "
                                                  "trip!", "annotations": []}]},
                        {"type": "reasoning", "id": "r1", "summary": []}]
    await session.add_items(items)
    await session.add_items([{"role": "user", "content": "thanks"}])
    again = MemsvcSession("thread-2", async_sdk, user_id="bob")
    assert await again.get_items() == [*items, {"role": "user", "content": "thanks"}]
    hits = raw.search("where is Bob flying?", user_id="bob", limit=1).results
    assert hits[0].memory.text == "user: I am flying to Oslo on Friday"
    assert hits[0].memory.scope.session_id == "thread-2"


async def test_bad_session_input_is_refused_and_changes_nothing(
        sdk: Any, counts: Callable[[], tuple[int, int, int]]) -> None:
    before = counts()
    session = MemsvcSession("thread-3", sdk)
    for bad in ([{"role": "user", "content": {1, 2}}], [{"role": "user", "content": "x"}, 7],
                [{"role": "user", "content": float("nan")}]):
        with pytest.raises(UserError):
            await session.add_items(bad)
    with pytest.raises(UserError, match="session_id"):
        MemsvcSession("  ", sdk)
    with pytest.raises(UserError, match="session_id"):
        await MemsvcSession("a\x00b", sdk).add_items([{"role": "user", "content": "x"}])
    assert counts() == before


async def test_tools_without_a_user_tell_the_model_memsvcs_message(
        sdk: Any, counts: Callable[[], tuple[int, int, int]]) -> None:
    before = counts()
    model = ScriptedModel([
        [function_call("remember", {"text": "no one to remember this for"}, call_id="c1")],
        [assistant_message("I could not remember that.")],
    ])
    agent = Agent(name="a", model=model, tools=memory_tools(sdk))
    result = await Runner.run(agent, "remember this", run_config=OFFLINE)
    assert result.final_output == "I could not remember that."
    [output] = [i["output"] for i in model.inputs[1] if i.get("type") == "function_call_output"]
    assert "scope_required" in output and "user_id" in output
    assert counts() == before


async def test_tools_take_the_scope_from_the_run_context(raw: Memory) -> None:
    model = ScriptedModel([
        [function_call("remember", {"text": "Dana speaks Welsh"}, call_id="c1")],
        [assistant_message("ok")],
    ])
    agent = Agent(name="a", model=model, tools=memory_tools(raw))
    await Runner.run(agent, "remember", context={"user_id": "dana"}, run_config=OFFLINE)
    assert [r.text for r in raw.get_all(user_id="dana").items] == ["user: Dana speaks Welsh"]
