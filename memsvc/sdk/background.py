"""The two halves of a background add, so that an acknowledged extraction is never lost.

`add_for_later` is `Memory.add(infer=False)` whose episodes are stored marked "extraction
pending" in the same transaction as the messages (memsvc.write.pending); the caller (the REST
route, before its 202) then runs `Memory.infer` on the message ids, which takes the mark off
in the transaction that writes the extracted memories. If the process dies in between, the
marks remain: `pending_extractions` lists them for the server's start-up recovery, and
consolidation's retry step extracts them too. Not a `Memory` method: it is the server's
protocol, not part of the SDK surface (memsvc/sdk/operations.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memsvc.model.records import AddResult, Scope
from memsvc.sdk.operations import MessagesInput
from memsvc.sdk.writes import Writes
from memsvc.write.pending import pending_by_scope

__all__ = ["add_for_later", "infer_pending", "pending_extractions"]


def add_for_later(
    memory: Writes,
    messages: MessagesInput,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    timestamp: datetime | str | float | None = None,
) -> AddResult:
    """Store the messages (no extraction yet), their episodes marked pending, atomically."""
    return memory._add(messages, user_id=user_id, agent_id=agent_id, session_id=session_id,
                       metadata=metadata, timestamp=timestamp, infer=False, pending=True)


def infer_pending(memory: Writes, message_ids: list[str], scope: Scope) -> AddResult:
    """`Memory.infer` over those of `message_ids` whose episodes are still marked pending.

    What makes a retried background extraction safe: the mark comes off in the transaction
    that writes the extracted memories, so a job killed before that commit finds its turns
    still pending and extracts them, and a job killed after it finds nothing left to do (its
    `results` are then empty; the memories are in the store)."""
    if memory.extractor is None:
        return AddResult(message_ids=message_ids)
    pending = set(pending_by_scope(memory.store, scope).get(scope, []))
    todo = [m for m in message_ids if m in pending]
    if not todo:
        return AddResult(message_ids=message_ids)
    done = memory.infer(todo, user_id=scope.user_id, agent_id=scope.agent_id,
                        session_id=scope.session_id)
    return AddResult(message_ids=message_ids, results=done.results)


def pending_extractions(memory: Writes, *, chunk: int = 50) -> list[tuple[Scope, list[str]]]:
    """(scope, message ids) of every pending episode of the memory's tenant, at most `chunk`
    ids each, oldest scope first: what to hand `Memory.infer` after a restart."""
    if memory.extractor is None:
        return []
    out: list[tuple[Scope, list[str]]] = []
    for scope, ids in pending_by_scope(memory.store).items():
        out += [(scope, ids[i : i + chunk]) for i in range(0, len(ids), chunk)]
    return out
