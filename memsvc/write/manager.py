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

Trust (memsvc.model.trust) bounds every decision: a candidate is stamped with the provenance
of its source messages (`Origin`), and a less trusted candidate never retires (INVALIDATE)
nor reinforces a more trusted memory; it is added at its own trust, or a NOOP that leaves
the known memory as it was. A more trusted candidate is never folded into a less trusted
memory either: it is added at its own trust.

Neighbours come from both channels of the same scope (vector KNN and BM25), and facts about
a person are compared across that person's sessions (the session part of the scope is
dropped for the lookup), never with another owner's: a write without a user sees only
memories without one, not those of the agent's users. Episodes (verbatim turns) are always
added: two people may say the same words twice and both times matter. Every decision goes
to history with its reason.

With a `Decider` configured (an LLM), the cases the rules leave as a plain ADD while close
neighbours exist are delegated to it; it sees the neighbours as small integers that are
mapped back here, so it can never name a memory that was not shown to it.

This module holds the decision itself; beside it are the matching rules (`matching`), the
lookup of known memories (`lookup`), the delegated decision (`decider`) and the record
forms a write produces (`revision`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np

from memsvc.extractors.base import Candidate
from memsvc.extractors.triples import normalize_object
from memsvc.model.records import (
    HistoryEvent,
    MemoryChange,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Scope,
)
from memsvc.storage.base import HistoryDraft, MemoryStore, WriteBatch
from memsvc.write.decider import Decider, Decision, delegate
from memsvc.write.lookup import Pending, lookup_query, same_subject
from memsvc.write.lookup import neighbours as find_neighbours
from memsvc.write.matching import RETIRES, is_functional, objects_match, same_meaning_allowed
from memsvc.write.origin import Origin
from memsvc.write.quarantine import QUARANTINE_KEY, quarantined
from memsvc.write.revision import (
    record_from_candidate,
    reinforce_in_place,
    reinforced,
    snapshot,
)

# Decider, Decision and snapshot are imported from here by the SDK and the LLM decider.
__all__ = ["Decider", "Decision", "WriteManager", "snapshot"]


class WriteManager:
    """Turns extracted candidates into the writes of one batch, one decision each."""

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
        flagged: Mapping[str, tuple[str, ...]] | None = None,
        origin: Origin | None = None,
    ) -> list[MemoryChange]:
        """Add the decisions for `candidates` (each with extractor name, version) to `batch`,
        each stamped with its provenance from `origin` (default: local, user level).

        `flagged` ({message id: reasons}, from `memsvc.write.quarantine.flagged_messages`):
        a candidate drawn from one of these messages is added as quarantined, without a
        decision (it may neither supersede nor reinforce what is known)."""
        changes: list[MemoryChange] = []
        pending = Pending()
        origin = origin or Origin()
        for (candidate, extractor, version), embedding in zip(candidates, embeddings, strict=True):
            record = record_from_candidate(
                candidate, scope, extractor=extractor, extractor_version=version, now=now
            ).model_copy(update=origin.stamp(candidate.source_message_ids))
            held = quarantined(record, flagged) if flagged else None
            if held is not None:
                why = ", ".join(held.metadata[QUARANTINE_KEY]["reasons"])
                self._add(held, embedding, f"quarantined: {why}", now, actor, batch, pending,
                          changes)
                continue
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
        pending: Pending,
    ) -> list[MemoryChange]:
        changes: list[MemoryChange] = []
        lookup = lookup_query(scope)
        duplicate = pending.by_hash.get(record.content_hash)
        if duplicate is not None and duplicate.status is not MemoryStatus.ACTIVE:
            duplicate = None  # said again after it was superseded: a new fact, not a repeat
        if duplicate is None:
            duplicate = self._store.find_by_hash(lookup, record.content_hash)
            if duplicate is not None:
                duplicate = pending.updates.get(duplicate.id, duplicate)
                if duplicate.status is not MemoryStatus.ACTIVE:  # retired by this very batch
                    duplicate = None
        if duplicate is not None and duplicate.trust < record.trust:
            duplicate = None  # said by someone more trusted: kept at that trust, beside it
        if duplicate is not None:
            return [self._noop(duplicate, record, f"exact duplicate of {duplicate.id}", now,
                               actor, batch, pending)]

        retired: list[tuple[MemoryRecord, str]] = []
        predicate = record.predicate
        if record.subject and predicate:
            for old in same_subject(self._store, lookup, record, pending):
                if old.predicate == record.predicate and objects_match(
                    old.object or "", record.object or ""
                ) and normalize_object(old.object or "") == normalize_object(record.object or ""):
                    if old.trust < record.trust:
                        continue  # said by someone more trusted: added at that trust
                    reason = (f"same statement as {old.id}: {record.subject} {record.predicate} "
                              f"{record.object}")
                    return [self._noop(old, record, reason, now, actor, batch, pending)]
                if old.trust > record.trust:
                    continue  # a less trusted writer may not retire it: added beside it
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

        neighbours = [] if retired else find_neighbours(
            self._store, lookup, record, embedding, pending, self.neighbours
        )
        if not retired:
            for old, similarity in neighbours:
                if old.kind is record.kind and similarity >= self.same_meaning and (
                    same_meaning_allowed(candidate, old)
                ) and old.trust >= record.trust:
                    reason = f"same meaning as {old.id} (similarity {similarity:.2f})"
                    return [self._noop(old, record, reason, now, actor, batch, pending)]
            # the judge is shown only what this candidate's trust may act on
            delegated = delegate(self.decider, record,
                                 [(r, sim) for r, sim in neighbours if r.trust <= record.trust],
                                 self.consult_above)
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

    # -- the writes ------------------------------------------------------------------------

    @staticmethod
    def _as_successor(record: MemoryRecord, olds: list[MemoryRecord]) -> MemoryRecord:
        metadata = dict(record.metadata)
        metadata["supersedes"] = [*metadata.get("supersedes", []), *(o.id for o in olds)]
        return record.model_copy(update={"metadata": metadata})

    def _add(
        self, record: MemoryRecord, embedding: np.ndarray, reason: str, now: datetime,
        actor: str, batch: WriteBatch, pending: Pending, changes: list[MemoryChange],
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
        actor: str, batch: WriteBatch, pending: Pending,
    ) -> MemoryChange:
        """Record that `candidate` was already known, and reinforce the known memory (unless
        the candidate is less trusted: then the known memory is left as it was)."""
        sources = candidate.provenance.source_message_ids
        if candidate.trust < known.trust:
            pass
        elif any(known.id == r.id for r in pending.records):
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
        batch: WriteBatch, pending: Pending,
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
