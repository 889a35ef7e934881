"""The delegated decision: an outside judge (an LLM) for the close calls the rules leave.

The judge sees the candidate's text and its close neighbours numbered 1..n, never memory
ids, and answers with one of those numbers; anything else is ignored and the rules stand. A
judge that fails never blocks a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from memsvc.model.records import HistoryEvent, MemoryRecord


@dataclass(frozen=True)
class Decision:
    """What a `Decider` chose: the event, and the neighbour (by its shown number) it concerns."""

    event: HistoryEvent
    target: int | None = None
    reason: str = ""


class Decider(Protocol):
    """Delegated decision (an LLM): candidate text and numbered neighbours in, decision out."""

    name: str

    def decide(self, candidate: str, neighbours: Sequence[tuple[int, str]]) -> Decision: ...


def delegate(
    decider: Decider | None,
    record: MemoryRecord,
    neighbours: list[tuple[MemoryRecord, float]],
    consult_above: float,
) -> tuple[HistoryEvent, MemoryRecord | None, str] | None:
    """Ask the decider about a close call; numbers it answers with map back to records."""
    if decider is None:
        return None
    close = [r for r, s in neighbours if s >= consult_above]
    if not close:
        return None
    shown = list(enumerate(close, start=1))
    try:
        decision = decider.decide(record.text, [(i, r.text) for i, r in shown])
    except Exception as exc:  # a failing decider must not block the write: rules stand
        record.metadata["decider_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return None
    if decision.event is HistoryEvent.ADD:
        return None
    target = dict(shown).get(decision.target) if decision.target is not None else None
    if target is None:  # an id it was not shown, or none at all: ignore, add
        record.metadata["decider_ignored"] = f"{decision.event.value} {decision.target}"
        return None
    reason = f"{decider.name}: {decision.reason or decision.event.value}"
    if decision.event in (HistoryEvent.NOOP, HistoryEvent.UPDATE):
        return HistoryEvent.NOOP, target, reason
    if decision.event is HistoryEvent.INVALIDATE:
        return HistoryEvent.INVALIDATE, target, reason
    return None
