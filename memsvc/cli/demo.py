"""The demo: a small conversation loaded into a store, and a few searches over it.

`make run` calls this so a new user sees the main job — add turns, ask questions, get the
memories that answer them and which channel found each — in a few seconds, offline.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from memsvc.sdk.memory import Memory

DEMO_USER = "demo-alice"
DEMO_QUERIES = (
    "What is the name of Alice's dog?",
    "Where does Alice work and what does she do?",
    "What does Alice eat or drink?",
    "How did Alice fix the flaky pipeline?",
    "Who is visiting in August?",
)


def demo_turns() -> list[dict[str, Any]]:
    text = resources.files("memsvc.cli").joinpath("demo_data/conversation.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_demo(memory: Memory, *, user_id: str = DEMO_USER) -> int:
    """(Re)load the demo conversation into `user_id`'s scope; returns the number of turns."""
    memory.delete_all(user_id=user_id, hard=True)
    turns = demo_turns()
    sessions: dict[str, list[dict[str, Any]]] = {}
    for turn in turns:
        sessions.setdefault(turn["session"], []).append(turn)
    for session_id, session_turns in sessions.items():
        memory.add(
            [
                {k: t[k] for k in ("role", "name", "content", "timestamp")}
                for t in session_turns
            ],
            user_id=user_id,
            session_id=session_id,
            metadata={"source": "demo"},
            infer=True,
        )
    return len(turns)
