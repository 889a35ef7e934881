"""What a candidate memory is compared with: the known memories it might repeat or replace.

Neighbours come from both channels of the same scope (vector KNN and BM25) and from what the
current batch is about to write (`Pending`), so two candidates of one call see each other.
Facts about a person are compared across that person's sessions (the session part of the
scope is dropped for the lookup).

A memory is only ever compared with memories of its own owner, its user: a write without a
user (an agent's own note) sees only other user-less memories, never those of the agent's
users, so it can neither repeat into, nor supersede, nor retire a user's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memsvc.model.filters import AllOf, Condition, FilterNode
from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import MemoryStore, VisibilityQuery
from memsvc.write.matching import RETIRES, words


@dataclass
class Pending:
    """What this batch is about to write, so later candidates of the same call see it."""

    by_hash: dict[str, MemoryRecord] = field(default_factory=dict)
    records: list[MemoryRecord] = field(default_factory=list)
    updates: dict[str, MemoryRecord] = field(default_factory=dict)


def lookup_query(scope: Scope) -> VisibilityQuery:
    """Where the known memories of a write to `scope` are looked for: the same owner's."""
    return VisibilityQuery(scope=_lookup_scope(scope), filters=owner_filter(scope))


def owner_filter(scope: Scope) -> FilterNode | None:
    """The filter that keeps a read of `scope` to the scope's own user.

    A store reads a scope's missing user as "any user", which is right for search but wrong
    for a write: a scope without a user owns only the memories without one.
    """
    return Condition("user_id", "eq", None) if scope.user_id is None else None


def _with(lookup: VisibilityQuery, *conditions: FilterNode) -> FilterNode | None:
    """The lookup's owner filter and `conditions`, all of them."""
    parts = (*conditions, *((lookup.filters,) if lookup.filters is not None else ()))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(parts)


def _lookup_scope(scope: Scope) -> Scope:
    """Facts about a user or agent hold across their sessions: compare without session."""
    if scope.user_id or scope.agent_id:
        return Scope(user_id=scope.user_id, agent_id=scope.agent_id)
    return scope


def same_subject(
    store: MemoryStore, lookup: VisibilityQuery, record: MemoryRecord, pending: Pending
) -> list[MemoryRecord]:
    """Active memories (stored or pending) with this subject and a related predicate."""
    assert record.subject and record.predicate
    predicates = (record.predicate, *RETIRES.get(record.predicate, ()))
    query = VisibilityQuery(
        scope=lookup.scope,
        filters=_with(
            lookup,
            Condition("subject", "eq", record.subject),
            Condition("predicate", "in", predicates),
        ),
    )
    stored, _ = store.list_memories(query, limit=50)
    fresh = [
        r for r in pending.records
        if r.subject == record.subject and r.predicate in predicates
        and r.status is MemoryStatus.ACTIVE
    ]
    out = {r.id: pending.updates.get(r.id, r) for r in [*stored, *fresh]}
    return [r for r in out.values() if r.status is MemoryStatus.ACTIVE]


def neighbours(
    store: MemoryStore, lookup: VisibilityQuery, record: MemoryRecord, embedding: np.ndarray,
    pending: Pending, k: int,
) -> list[tuple[MemoryRecord, float]]:
    """The `k` nearest non-episode memories by vector (cosine) and BM25 (scored by word
    overlap), best first."""
    query = VisibilityQuery(
        scope=lookup.scope,
        kinds=tuple(kind.value for kind in MemoryKind if kind is not MemoryKind.EPISODE),
        filters=lookup.filters,
    )
    scores: dict[str, float] = {
        h.memory_id: h.score
        for h in store.vector_search(query, embedding, k)
    }
    lexical = store.lexical_search(query, record.text, k)
    records = store.get_many(list({*scores, *(h.memory_id for h in lexical)}))
    mine = words(record.text)
    for hit in lexical:
        other = records.get(hit.memory_id)
        if other is None:
            continue
        theirs = words(other.text)
        overlap = len(mine & theirs) / max(1, len(mine | theirs))
        scores[hit.memory_id] = max(scores.get(hit.memory_id, 0.0), overlap)
    for fresh in pending.records:
        if fresh.kind is not MemoryKind.EPISODE:
            theirs = words(fresh.text)
            overlap = len(mine & theirs) / max(1, len(mine | theirs))
            if overlap > 0:
                records[fresh.id] = fresh
                scores[fresh.id] = max(scores.get(fresh.id, 0.0), overlap)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    return [
        (pending.updates.get(mid, records[mid]), score)
        for mid, score in ranked
        if mid in records
    ][:k]
