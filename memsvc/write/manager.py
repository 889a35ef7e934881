"""The write decision: what each candidate memory does to the store.

For every candidate the manager picks one of:

- **ADD** — nothing like it is known.
- **NOOP** — it is already known: the same text (exact duplicate), the same subject,
  predicate and object, or the same meaning (cosine above `same_meaning` with the same kind,
  or nearly the same words). The known memory is *reinforced* in the same batch
  (``metadata.reinforced`` + 1, importance nudged up), so repetition is remembered.
- **INVALIDATE** + ADD — it replaces something: the same subject and a one-valued predicate
  with a new value ("lives in Boston" → "moved to Denver"), or a statement that retires an
  old one ("not into sushi anymore" retires "likes sushi", "cancelled the trip" retires the
  plan). The old memory is not erased: its ``valid_to`` becomes the new one's
  ``valid_from``, its status `superseded`, its ``superseded_by`` the new id, and the new
  memory's ``metadata.supersedes`` lists the old ids, so ``as_of=`` still finds it.

Neighbours come from both channels of the same scope (vector KNN and BM25), and facts about
a person are compared across that person's sessions (the session part of the scope is
dropped for the lookup). Episodes (verbatim turns) are always added: two people may say the
same words twice and both times matter. Every decision goes to history with its reason.

With a `Decider` configured (an LLM), the cases the rules leave as a plain ADD while close
neighbours exist are delegated to it; it sees the neighbours as small integers that are
mapped back here, so it can never name a memory that was not shown to it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from memsvc.extractors.base import Candidate
from memsvc.extractors.triples import normalize_object
from memsvc.model.filters import AllOf, Condition
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    HistoryEvent,
    MemoryChange,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Provenance,
    Scope,
)
from memsvc.storage.base import HistoryDraft, MemoryStore, VisibilityQuery, WriteBatch

FUNCTIONAL_PREDICATES = frozenset({"lives_in", "works_at", "job_title", "relationship_status"})
FUNCTIONAL_PREFIXES = ("favorite_",)
# predicate of a new statement → predicates of old statements it retires (matching object)
RETIRES: dict[str, tuple[str, ...]] = {
    "dislikes": ("likes",),
    "likes": ("dislikes",),
    "cancelled": ("plans",),
    "left_job": ("works_at",),
}
_WORD = re.compile(r"[a-z0-9]+")
_DIGITS = re.compile(r"\d+")
_MINOR = frozenset(
    "a an the my our to of in on at for and or with is are was were be go going trip".split()
)


def snapshot(record: MemoryRecord) -> dict[str, object]:
    """The JSON form of a memory as kept in history."""
    return record.model_dump(mode="json")


def record_from_candidate(
    candidate: Candidate,
    scope: Scope,
    *,
    extractor: str,
    extractor_version: str,
    now: datetime,
) -> MemoryRecord:
    metadata = dict(candidate.metadata)
    if candidate.kind is not MemoryKind.EPISODE:
        metadata.setdefault("extractor", f"{extractor}/{extractor_version}")
    return MemoryRecord(
        id=new_id(),
        scope=scope,
        kind=candidate.kind,
        text=candidate.text,
        subject=candidate.subject,
        predicate=candidate.predicate,
        object=candidate.object,
        entities=candidate.entities,
        metadata=metadata,
        valid_from=candidate.valid_from,
        valid_to=candidate.valid_to,
        created_at=now,
        updated_at=now,
        provenance=Provenance(
            source_message_ids=candidate.source_message_ids,
            extractor=extractor,
            extractor_version=extractor_version,
            confidence=candidate.confidence,
        ),
        importance=candidate.importance,
        content_hash=content_hash(candidate.kind.value, candidate.text),
    )


def is_functional(predicate: str) -> bool:
    return predicate in FUNCTIONAL_PREDICATES or predicate.startswith(FUNCTIONAL_PREFIXES)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def objects_match(a: str, b: str) -> bool:
    """Whether two objects name the same thing: equal, or sharing a content word
    ("the Paris trip" / "go on a trip to Paris", "sushi" / "sushi rolls")."""
    na, nb = normalize_object(a), normalize_object(b)
    if na == nb:
        return True
    wa = {_stem(w) for w in _words(na) - _MINOR}
    wb = {_stem(w) for w in _words(nb) - _MINOR}
    return bool(wa & wb)


def _time_labels(record: MemoryRecord | Candidate) -> set[str]:
    return {t.get("label", "") for t in record.metadata.get("time", []) if isinstance(t, dict)}


_NEGATION = re.compile(r"\b(?:not|no|never|n't|no\s+longer|cancel\w*|anymore|stopped)\b|n't\b",
                       re.IGNORECASE)


def same_meaning_allowed(candidate: Candidate, other: MemoryRecord) -> bool:
    """Near-identical sentences about different days or numbers, or one negating the other,
    are different memories."""
    if _time_labels(candidate) != _time_labels(other):
        return False
    if bool(_NEGATION.search(candidate.text)) != bool(_NEGATION.search(other.text)):
        return False
    return set(_DIGITS.findall(candidate.text)) == set(_DIGITS.findall(other.text))


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


@dataclass
class _Pending:
    """What this batch is about to write, so later candidates of the same call see it."""

    by_hash: dict[str, MemoryRecord] = field(default_factory=dict)
    records: list[MemoryRecord] = field(default_factory=list)
    updates: dict[str, MemoryRecord] = field(default_factory=dict)


class WriteManager:
    def __init__(
        self,
        store: MemoryStore,
        *,
        same_meaning: float = 0.92,
        neighbours: int = 8,
        decider: Decider | None = None,
        consult_above: float = 0.75,
    ) -> None:
        self._store = store
        self.same_meaning = same_meaning
        self.neighbours = neighbours
        self.decider = decider
        self.consult_above = consult_above

    def plan(
        self,
        candidates: Sequence[tuple[Candidate, str, str]],
        embeddings: np.ndarray,
        scope: Scope,
        *,
        now: datetime,
        actor: str,
        batch: WriteBatch,
    ) -> list[MemoryChange]:
        """Add the decisions for `candidates` (each with extractor name, version) to `batch`."""
        changes: list[MemoryChange] = []
        pending = _Pending()
        for (candidate, extractor, version), embedding in zip(candidates, embeddings, strict=True):
            record = record_from_candidate(
                candidate, scope, extractor=extractor, extractor_version=version, now=now
            )
            if candidate.kind is MemoryKind.EPISODE:
                self._add(record, embedding, f"new episode from {extractor}", now, actor, batch,
                          pending, changes)
                continue
            changes.extend(
                self._decide(candidate, record, embedding, scope, extractor, now, actor, batch,
                             pending)
            )
        for updated in pending.updates.values():
            batch.updates.append((updated, None))
        return changes

    # -- the decision for one candidate ----------------------------------------------------

    def _decide(
        self,
        candidate: Candidate,
        record: MemoryRecord,
        embedding: np.ndarray,
        scope: Scope,
        extractor: str,
        now: datetime,
        actor: str,
        batch: WriteBatch,
        pending: _Pending,
    ) -> list[MemoryChange]:
        changes: list[MemoryChange] = []
        lookup = VisibilityQuery(scope=_lookup_scope(scope))
        duplicate = pending.by_hash.get(record.content_hash)
        if duplicate is not None and duplicate.status is not MemoryStatus.ACTIVE:
            duplicate = None  # said again after it was superseded: a new fact, not a repeat
        if duplicate is None:
            duplicate = self._store.find_by_hash(lookup, record.content_hash)
            if duplicate is not None:
                duplicate = pending.updates.get(duplicate.id, duplicate)
                if duplicate.status is not MemoryStatus.ACTIVE:  # retired by this very batch
                    duplicate = None
        if duplicate is not None:
            return [self._noop(duplicate, record, f"exact duplicate of {duplicate.id}", now,
                               actor, batch, pending)]

        retired: list[tuple[MemoryRecord, str]] = []
        predicate = record.predicate
        if record.subject and predicate:
            for old in self._same_subject(lookup, record, pending):
                if old.predicate == record.predicate and objects_match(
                    old.object or "", record.object or ""
                ) and normalize_object(old.object or "") == normalize_object(record.object or ""):
                    reason = (f"same statement as {old.id}: {record.subject} {record.predicate} "
                              f"{record.object}")
                    return [self._noop(old, record, reason, now, actor, batch, pending)]
                if (
                    old.predicate == predicate and is_functional(predicate)
                    and record.valid_from and old.valid_from and record.valid_from < old.valid_from
                ):
                    # learnt late about an older value: it is history already
                    record = record.model_copy(update={
                        "status": MemoryStatus.SUPERSEDED, "valid_to": old.valid_from,
                        "superseded_by": old.id, "invalidated_at": now,
                    })
                    reason = (f"older {record.predicate} value {record.object!r}, already "
                              f"superseded by {old.id}")
                    self._add(record, embedding, reason, now, actor, batch, pending, changes)
                    return changes
                if old.predicate == predicate and is_functional(predicate):
                    retired.append((old, f"{record.predicate} changed from {old.object!r} to "
                                         f"{record.object!r}"))
                elif old.predicate in RETIRES.get(predicate, ()) and objects_match(
                    old.object or "", record.object or ""
                ):
                    retired.append((old, f"{record.predicate} {record.object!r} retires "
                                         f"{old.predicate} {old.object!r}"))

        neighbours = [] if retired else self._neighbours(lookup, record, embedding, pending)
        if not retired:
            for old, similarity in neighbours:
                if old.kind is record.kind and similarity >= self.same_meaning and (
                    same_meaning_allowed(candidate, old)
                ):
                    reason = f"same meaning as {old.id} (similarity {similarity:.2f})"
                    return [self._noop(old, record, reason, now, actor, batch, pending)]
            delegated = self._delegate(record, neighbours)
            if delegated is not None:
                event, target, reason = delegated
                if event is HistoryEvent.NOOP and target is not None:
                    return [self._noop(target, record, reason, now, actor, batch, pending)]
                if event is HistoryEvent.INVALIDATE and target is not None:
                    retired.append((target, reason))

        if retired:
            record = self._as_successor(record, [old for old, _ in retired])
            for old, why in retired:
                changes.append(self._invalidate(old, record, why, now, actor, batch, pending))
        reason = f"new {record.kind.value} from {extractor}"
        if retired:
            reason += "; supersedes " + ", ".join(old.id for old, _ in retired)
        self._add(record, embedding, reason, now, actor, batch, pending, changes)
        return changes

    def _same_subject(
        self, lookup: VisibilityQuery, record: MemoryRecord, pending: _Pending
    ) -> list[MemoryRecord]:
        """Active memories (stored or pending) with this subject and a related predicate."""
        assert record.subject and record.predicate
        predicates = (record.predicate, *RETIRES.get(record.predicate, ()))
        query = VisibilityQuery(
            scope=lookup.scope,
            filters=AllOf(
                (
                    Condition("subject", "eq", record.subject),
                    Condition("predicate", "in", predicates),
                )
            ),
        )
        stored, _ = self._store.list_memories(query, limit=50)
        fresh = [
            r for r in pending.records
            if r.subject == record.subject and r.predicate in predicates
            and r.status is MemoryStatus.ACTIVE
        ]
        out = {r.id: pending.updates.get(r.id, r) for r in [*stored, *fresh]}
        return [r for r in out.values() if r.status is MemoryStatus.ACTIVE]

    def _neighbours(
        self, lookup: VisibilityQuery, record: MemoryRecord, embedding: np.ndarray,
        pending: _Pending,
    ) -> list[tuple[MemoryRecord, float]]:
        """Nearest non-episode memories by vector (cosine) and BM25 (scored by word overlap)."""
        query = VisibilityQuery(
            scope=lookup.scope,
            kinds=tuple(k.value for k in MemoryKind if k is not MemoryKind.EPISODE),
        )
        scores: dict[str, float] = {
            h.memory_id: h.score
            for h in self._store.vector_search(query, embedding, self.neighbours)
        }
        lexical = self._store.lexical_search(query, record.text, self.neighbours)
        records = self._store.get_many(list({*scores, *(h.memory_id for h in lexical)}))
        words = _words(record.text)
        for hit in lexical:
            other = records.get(hit.memory_id)
            if other is None:
                continue
            theirs = _words(other.text)
            overlap = len(words & theirs) / max(1, len(words | theirs))
            scores[hit.memory_id] = max(scores.get(hit.memory_id, 0.0), overlap)
        for fresh in pending.records:
            if fresh.kind is not MemoryKind.EPISODE:
                theirs = _words(fresh.text)
                overlap = len(words & theirs) / max(1, len(words | theirs))
                if overlap > 0:
                    records[fresh.id] = fresh
                    scores[fresh.id] = max(scores.get(fresh.id, 0.0), overlap)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        return [
            (pending.updates.get(mid, records[mid]), score)
            for mid, score in ranked
            if mid in records
        ][: self.neighbours]

    def _delegate(
        self, record: MemoryRecord, neighbours: list[tuple[MemoryRecord, float]]
    ) -> tuple[HistoryEvent, MemoryRecord | None, str] | None:
        """Ask the decider about a close call; numbers it answers with map back to records."""
        if self.decider is None:
            return None
        close = [r for r, s in neighbours if s >= self.consult_above]
        if not close:
            return None
        shown = list(enumerate(close, start=1))
        try:
            decision = self.decider.decide(record.text, [(i, r.text) for i, r in shown])
        except Exception as exc:  # a failing decider must not block the write: rules stand
            record.metadata["decider_error"] = f"{type(exc).__name__}: {exc}"[:300]
            return None
        if decision.event is HistoryEvent.ADD:
            return None
        target = dict(shown).get(decision.target) if decision.target is not None else None
        if target is None:  # an id it was not shown, or none at all: ignore, add
            record.metadata["decider_ignored"] = f"{decision.event.value} {decision.target}"
            return None
        reason = f"{self.decider.name}: {decision.reason or decision.event.value}"
        if decision.event in (HistoryEvent.NOOP, HistoryEvent.UPDATE):
            return HistoryEvent.NOOP, target, reason
        if decision.event is HistoryEvent.INVALIDATE:
            return HistoryEvent.INVALIDATE, target, reason
        return None

    # -- the writes ------------------------------------------------------------------------

    @staticmethod
    def _as_successor(record: MemoryRecord, olds: list[MemoryRecord]) -> MemoryRecord:
        metadata = dict(record.metadata)
        metadata["supersedes"] = [*metadata.get("supersedes", []), *(o.id for o in olds)]
        return record.model_copy(update={"metadata": metadata})

    def _add(
        self, record: MemoryRecord, embedding: np.ndarray, reason: str, now: datetime,
        actor: str, batch: WriteBatch, pending: _Pending, changes: list[MemoryChange],
    ) -> None:
        batch.inserts.append((record, embedding))
        batch.history.append(
            HistoryDraft(record.id, HistoryEvent.ADD, None, snapshot(record), actor, reason, now)
        )
        if record.kind is not MemoryKind.EPISODE:
            pending.by_hash[record.content_hash] = record
            pending.records.append(record)
        changes.append(MemoryChange(id=record.id, event=HistoryEvent.ADD, text=record.text,
                                    kind=record.kind, reason=reason))

    def _noop(
        self, known: MemoryRecord, candidate: MemoryRecord, reason: str, now: datetime,
        actor: str, batch: WriteBatch, pending: _Pending,
    ) -> MemoryChange:
        """Record that `candidate` was already known, and reinforce the known memory."""
        sources = candidate.provenance.source_message_ids
        if any(known.id == r.id for r in pending.records):
            reinforce_in_place(known, sources)
        else:
            current = pending.updates.get(known.id, known)
            pending.updates[known.id] = reinforced(current, sources, now)
        batch.history.append(
            HistoryDraft(known.id, HistoryEvent.NOOP, None, {"text": candidate.text}, actor,
                         reason, now)
        )
        return MemoryChange(id=known.id, event=HistoryEvent.NOOP, text=candidate.text,
                            kind=candidate.kind, reason=reason)

    def _invalidate(
        self, old: MemoryRecord, new: MemoryRecord, why: str, now: datetime, actor: str,
        batch: WriteBatch, pending: _Pending,
    ) -> MemoryChange:
        end = new.valid_from or now
        if old.valid_from is not None and end <= old.valid_from:
            end = old.valid_from + timedelta(microseconds=1)  # never an empty or negative window
        current = pending.updates.get(old.id, old)
        if any(old.id == r.id for r in pending.records):
            current = old
        retired = current.model_copy(
            update={
                "status": MemoryStatus.SUPERSEDED,
                "valid_to": end,
                "superseded_by": new.id,
                "invalidated_at": now,
                "updated_at": now,
                "version": current.version + 1,
            }
        )
        if any(old.id == r.id for r in pending.records):
            # still only in this batch: rewrite the pending insert instead of updating
            for i, (rec, emb) in enumerate(batch.inserts):
                if rec.id == old.id:
                    batch.inserts[i] = (retired, emb)
            pending.records = [retired if r.id == old.id else r for r in pending.records]
            pending.by_hash = {h: retired if r.id == old.id else r
                               for h, r in pending.by_hash.items()}
        else:
            pending.updates[old.id] = retired
        reason = f"superseded by {new.id}: {why}"
        batch.history.append(
            HistoryDraft(old.id, HistoryEvent.INVALIDATE, snapshot(current), snapshot(retired),
                         actor, reason, now)
        )
        return MemoryChange(id=old.id, event=HistoryEvent.INVALIDATE, text=old.text,
                            kind=old.kind, reason=reason)


def _lookup_scope(scope: Scope) -> Scope:
    """Facts about a user or agent hold across their sessions: compare without session."""
    if scope.user_id or scope.agent_id:
        return Scope(user_id=scope.user_id, agent_id=scope.agent_id)
    return scope


MAX_SOURCES = 50


def _merged_sources(provenance: Provenance, sources: Sequence[str]) -> Provenance:
    """The provenance of a memory said again: the new turns also back it (capped)."""
    merged = list(provenance.source_message_ids)
    merged += [s for s in sources if s not in merged]
    return provenance.model_copy(update={"source_message_ids": merged[:MAX_SOURCES]})


def reinforced(record: MemoryRecord, sources: Sequence[str], now: datetime) -> MemoryRecord:
    """A copy of `record` that remembers being said once more, and by which turns."""
    metadata = dict(record.metadata)
    metadata["reinforced"] = int(metadata.get("reinforced", 0)) + 1
    return record.model_copy(
        update={
            "metadata": metadata,
            "provenance": _merged_sources(record.provenance, sources),
            "importance": min(1.0, round(record.importance + 0.05, 4)),
            "updated_at": now,
        }
    )


def reinforce_in_place(record: MemoryRecord, sources: Sequence[str]) -> None:
    """Reinforce a memory that is still only a pending insert of this batch."""
    record.metadata["reinforced"] = int(record.metadata.get("reinforced", 0)) + 1
    record.provenance = _merged_sources(record.provenance, sources)
    record.importance = min(1.0, round(record.importance + 0.05, 4))
