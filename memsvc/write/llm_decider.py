"""The manager's close calls, delegated to an LLM.

The rules decide what they can (exact duplicates, same subject and predicate, clear
paraphrases). What is left — a candidate with close neighbours that the rules would simply
add — can be put to a model: "here is the new statement, here are memories 1..n; is it new,
already known, or does it replace one?" The model sees small integers, never memory ids, and
its answer is validated (pydantic, JSON schema); the manager maps the integer back and
ignores one it did not show. Any failure raises, and the manager keeps the rules' decision.
The model is called through memsvc's one client (``LLMClient.chat_json``); `Memory` builds
this decider when ``MEMSVC_DECIDER=llm`` (``memsvc.write.factory``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memsvc.llm.client import LLMClient
from memsvc.model.records import HistoryEvent
from memsvc.write.manager import Decision

PROMPT = """You keep a memory store current. Given a NEW statement and numbered EXISTING
memories, answer with one decision:
- "ADD": the new statement is new information.
- "NOOP": it says the same as memory <target> (nothing new).
- "INVALIDATE": it makes memory <target> no longer true (a changed value, a cancelled plan).
Answer with JSON only."""

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event", "target", "reason"],
    "properties": {
        "event": {"type": "string", "enum": ["ADD", "NOOP", "INVALIDATE"]},
        "target": {"type": ["integer", "null"]},
        "reason": {"type": "string"},
    },
}


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Literal["ADD", "NOOP", "INVALIDATE"]
    target: int | None = None
    reason: str = Field(default="", max_length=500)


class LLMDecider:
    name = "llm-decider"

    def __init__(self, client: LLMClient) -> None:
        self.client = client

    def decide(self, candidate: str, neighbours: Sequence[tuple[int, str]]) -> Decision:
        listing = "\n".join(f"{i}. {text}" for i, text in neighbours)
        value, _ = self.client.chat_json(
            [{"role": "system", "content": PROMPT},
             {"role": "user", "content": f"NEW: {candidate}\nEXISTING:\n{listing}"}],
            DECISION_SCHEMA, name="decision", max_tokens=200, temperature=0.0,
        )
        parsed = _Reply.model_validate(value)  # raises on garbage
        return Decision(HistoryEvent(parsed.event), parsed.target, parsed.reason)
