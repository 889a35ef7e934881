"""Offline consolidation: retry failed extractions, merge near-duplicates, summarise over
time, let unused memories fade, and keep each user's profile current.

Each step works on what the store holds now and writes one small transaction per unit (one
message retried, one cluster merged, one summary node, one chunk of archived memories, one
profile), so a crash loses at most the unit in flight. Every unit is written so that redoing
it on its own result changes nothing: merged duplicates are no longer active, a summary
whose inputs have the same fingerprint is left alone, an archived memory is not active, an
unchanged profile is not rewritten. That is what makes a run idempotent (a second run
reports no change) and resumable (a rerun after a crash finishes the remaining units),
without a checkpoint that could disagree with the data.

Without an LLM everything here is heuristic: summaries are extractive (the sentences that
carry the most frequent content words and names), and the profile is a deterministic
rendering of the user's preferences and facts, byte-identical while they do not change, so
the serving layer can keep it at the start of prompts for KV-cache reuse.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Extractor
from memsvc.extractors.statements import split_sentences
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    HistoryEvent,
    MemoryChange,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Provenance,
    Scope,
    StoredMessage,
)
from memsvc.storage.base import HistoryDraft, MemoryStore, VisibilityQuery, WriteBatch
from memsvc.text.stopwords import STOPWORDS
from memsvc.text.timeparse import format_day
from memsvc.write.extraction import run_extractor
from memsvc.write.manager import WriteManager, snapshot

STEPS: tuple[str, ...] = ("retry", "merge", "summaries", "decay", "profile")
ACTOR = "consolidate"
# The metadata key the write path marks a failed extraction with (memsvc.write.extraction).
FAILED_KEY = "extraction"
DERIVED_KINDS = (
    MemoryKind.FACT.value,
    MemoryKind.PREFERENCE.value,
    MemoryKind.EVENT.value,
    MemoryKind.PROCEDURE.value,
)
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NO_NODE = MemoryRecord(id="-", scope=Scope(), kind=MemoryKind.SUMMARY, text="-",
                        created_at=datetime.min.replace(tzinfo=UTC),
                        updated_at=datetime.min.replace(tzinfo=UTC), content_hash="-")
_DIGITS = re.compile(r"\d+")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ConsolidationConfig:
    """The knobs of a run; the defaults are conservative (merge only near-identical text)."""

    merge_threshold: float = 0.9  # cosine of two memories' vectors (and the word checks below)
    half_life_days: float = 30.0  # an unused memory of importance 0.5 halves its strength
    archive_below: float = 0.05  # strength under which an active memory is archived
    summary_sentences: int = 5
    profile_lines: int = 30  # per section
    max_retry_attempts: int = 5


class ConsolidationReport(BaseModel):
    """What one run changed, step by step, and every memory it wrote."""

    steps: list[str] = Field(default_factory=list)
    scopes: int = 0
    retried: int = 0
    retry_failures: int = 0
    merged: int = 0
    summaries_added: int = 0
    summaries_updated: int = 0
    archived: int = 0
    restored: int = 0
    profiles_added: int = 0
    profiles_updated: int = 0
    changes: list[MemoryChange] = Field(default_factory=list)

    @property
    def changed(self) -> int:
        """How many memories this run wrote (0 on a run that found nothing to do)."""
        return len(self.changes)


def strength(record: MemoryRecord, now: datetime, half_life_days: float) -> float:
    """How alive a memory is, from 1 (just learnt or used) towards 0.

    Age counts from the last time the service learnt or used it, not from when it was true
    in the world: an old fact that is still asked about stays strong. Each use and a higher
    importance lengthen the half-life.
    """
    last = max(record.created_at, record.last_accessed_at or record.created_at)
    age_days = max(0.0, (now - last).total_seconds() / 86400.0)
    half_life = half_life_days * (1.0 + math.log1p(record.access_count)) * (
        0.5 + record.importance
    )
    return float(0.5 ** (age_days / half_life))


class Consolidator:
    """Runs the steps over every (user, agent) partition of a scope."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        *,
        extractor: Extractor | None = None,
        config: ConsolidationConfig | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.extractor = extractor
        self.config = config or ConsolidationConfig()
        self._manager = WriteManager(store)
        self._vectors: dict[str, np.ndarray] = {}  # summary text -> its vector, batch-made

    def run(
        self,
        scope: Scope,
        *,
        now: datetime,
        steps: Sequence[str] = STEPS,
        progress: Progress | None = None,
    ) -> ConsolidationReport:
        report = ConsolidationReport(steps=list(steps))
        partitions = self._partitions(scope)
        report.scopes = len(partitions)
        for step in STEPS:
            if step not in steps:
                continue
            for i, part in enumerate(partitions):
                getattr(self, f"_{step}")(part, now, report)
                if progress is not None:
                    progress(step, i + 1, len(partitions))
        return report

    # -- reading ----------------------------------------------------------------------------

    def _load(
        self, scope: Scope, *, kinds: Iterable[str] | None = None, statuses: tuple[str, ...] = (
            MemoryStatus.ACTIVE.value,
        )
    ) -> list[MemoryRecord]:
        query = VisibilityQuery(
            scope=scope, kinds=tuple(kinds) if kinds else None, statuses=statuses
        )
        out: list[MemoryRecord] = []
        cursor = None
        while True:
            items, _ = self.store.list_memories(query, limit=500, after_id=cursor)
            # A user's partition leaves out the same user's memories under other agents, and
            # vice versa: one partition is one (user, agent) pair exactly.
            out.extend(
                r for r in items
                if (scope.user_id is None or r.scope.user_id == scope.user_id)
                and r.scope.agent_id == scope.agent_id
            )
            if len(items) < 500:
                return out
            cursor = items[-1].id

    def _partitions(self, scope: Scope) -> list[Scope]:
        """The (user, agent) pairs the scope holds memories for, in a stable order."""
        query = VisibilityQuery(scope=scope, statuses=())
        seen: set[tuple[str | None, str | None]] = set()
        cursor = None
        while True:
            items, _ = self.store.list_memories(query, limit=500, after_id=cursor)
            seen.update((r.scope.user_id, r.scope.agent_id) for r in items)
            if len(items) < 500:
                break
            cursor = items[-1].id
        if scope.agent_id is not None:
            seen = {p for p in seen if p[1] == scope.agent_id}
        ordered = sorted(seen, key=lambda p: (p[0] or "", p[1] or ""))
        return [Scope(user_id=u, agent_id=a) for u, a in ordered]

    # -- retry ----------------------------------------------------------------------------

    def _retry(self, part: Scope, now: datetime, report: ConsolidationReport) -> None:
        """Extract again the messages whose extraction failed at write time.

        `Memory.add` marks such a turn's episode with ``metadata.extraction`` (status
        "failed", or "fallback" when an LLM extractor had to hand it to the rules; retry
        true; see `memsvc.write.extraction`). A success adds the new memories and
        marks the episode "retried" in the same transaction; another failure counts the
        attempt, and after `max_retry_attempts` the episode is no longer retried.
        """
        if self.extractor is None:
            return
        failed = [e for e in self._load(part, kinds=[MemoryKind.EPISODE.value]) if _wants_retry(e)]
        if not failed:
            return
        messages = {m.id: m for m in self._messages(part)}
        for episode in failed:
            sources = [messages[i] for i in episode.provenance.source_message_ids if i in messages]
            if not sources:
                continue
            outcome = run_extractor(self.extractor, sources)
            mark = dict(episode.metadata[FAILED_KEY])
            mark["attempts"] = int(mark.get("attempts", 1)) + 1
            batch = WriteBatch()
            changes: list[MemoryChange] = []
            if outcome.failures or outcome.degraded:  # degraded: the LLM fell back again
                mark["error"] = next(iter({**outcome.degraded, **outcome.failures}.values()))
                mark["retry"] = mark["attempts"] < self.config.max_retry_attempts
                reason = f"extraction retry failed: {mark['error']}"
                report.retry_failures += 1
            else:
                texts = [c.text for c, _, _ in outcome.candidates]
                embeddings = self.embedder.embed_documents(texts)
                changes = self._manager.plan(
                    outcome.candidates, embeddings, episode.scope, now=now, actor=ACTOR,
                    batch=batch,
                )
                mark.update(status="retried", retry=False)
                mark.pop("error", None)
                reason = f"extraction retried with {self.extractor.name}: {len(changes)} memories"
                report.retried += 1
            marked = episode.model_copy(
                update={"metadata": {**episode.metadata, FAILED_KEY: mark}, "updated_at": now}
            )
            batch.updates.append((marked, None))
            batch.history.append(
                HistoryDraft(episode.id, HistoryEvent.UPDATE, snapshot(episode), snapshot(marked),
                             ACTOR, reason, now)
            )
            self.store.apply(batch)
            report.changes.extend(changes)
            report.changes.append(MemoryChange(id=episode.id, event=HistoryEvent.UPDATE,
                                               text=episode.text, kind=episode.kind,
                                               reason=reason))

    def _messages(self, part: Scope) -> list[StoredMessage]:
        return [
            m for m in self.store.messages(part, limit=1_000_000)
            if m.scope.agent_id == part.agent_id
        ]

    # -- merge ----------------------------------------------------------------------------

    def _merge(self, part: Scope, now: datetime, report: ConsolidationReport) -> None:
        """Fold near-duplicates (same kind, same dates and numbers, vectors ≥ threshold)
        into the oldest of them; the others are superseded by it, never erased."""
        records = self._load(part, kinds=DERIVED_KINDS)
        vectors = self.store.embeddings(r.id for r in records)
        by_key: dict[tuple[Any, ...], list[MemoryRecord]] = defaultdict(list)
        for r in records:
            if r.id in vectors:
                by_key[_merge_key(r)].append(r)
        for group in by_key.values():
            for cluster in _clusters(group, vectors, self.config.merge_threshold):
                self._merge_cluster(cluster, now, report)

    def _merge_cluster(
        self, cluster: list[MemoryRecord], now: datetime, report: ConsolidationReport
    ) -> None:
        keep, *rest = sorted(cluster, key=lambda r: r.id)
        sources = list(
            dict.fromkeys(s for r in (keep, *rest) for s in r.provenance.source_message_ids)
        )
        merged_from = sorted({*keep.metadata.get("merged_from", []), *(r.id for r in rest)})
        survivor = keep.model_copy(
            update={
                "metadata": {**keep.metadata, "merged_from": merged_from},
                "provenance": keep.provenance.model_copy(update={"source_message_ids": sources}),
                "access_count": sum(r.access_count for r in cluster),
                "importance": max(r.importance for r in cluster),
                "updated_at": now,
                "version": keep.version + 1,
            }
        )
        batch = WriteBatch(updates=[(survivor, None)])
        reason = f"merged {len(rest)} near-duplicate(s) into it"
        batch.history.append(
            HistoryDraft(keep.id, HistoryEvent.UPDATE, snapshot(keep), snapshot(survivor), ACTOR,
                         reason, now)
        )
        report.changes.append(MemoryChange(id=keep.id, event=HistoryEvent.UPDATE, text=keep.text,
                                           kind=keep.kind, reason=reason))
        for r in rest:
            gone = r.model_copy(
                update={
                    "status": MemoryStatus.SUPERSEDED,
                    "superseded_by": keep.id,
                    "invalidated_at": now,
                    "updated_at": now,
                    "metadata": {**r.metadata, "merged_into": keep.id},
                }
            )
            why = f"near-duplicate of {keep.id}"
            batch.updates.append((gone, None))
            batch.history.append(
                HistoryDraft(r.id, HistoryEvent.UPDATE, snapshot(r), snapshot(gone), ACTOR, why,
                             now)
            )
            report.changes.append(MemoryChange(id=r.id, event=HistoryEvent.UPDATE, text=r.text,
                                               kind=r.kind, reason=why))
        self.store.apply(batch)
        report.merged += len(rest)

    # -- summaries --------------------------------------------------------------------------

    def _summaries(self, part: Scope, now: datetime, report: ConsolidationReport) -> None:
        """The time tree: session → day → month, each node rewritten only when its inputs
        (the fingerprint of its children) changed."""
        episodes = self._load(part, kinds=[MemoryKind.EPISODE.value])
        # Extracted memories are already self-contained statements ("Caroline went to the
        # support group on 7 May 2023"): a session's summary is picked from them when the
        # session has any, from its raw turns otherwise.
        # Archived ones count: they faded from use, not from what happened (and a summary
        # that changed when decay ran would never settle).
        derived: dict[str, list[MemoryRecord]] = defaultdict(list)
        for r in self._load(part, kinds=DERIVED_KINDS, statuses=(
            MemoryStatus.ACTIVE.value, MemoryStatus.ARCHIVED.value
        )):
            if r.scope.session_id is not None:
                derived[r.scope.session_id].append(r)
        existing = {
            (s.metadata.get("summary_level"), s.metadata.get("summary_key")): s
            for s in self._load(part, kinds=[MemoryKind.SUMMARY.value])
        }
        sessions: dict[str, list[MemoryRecord]] = defaultdict(list)
        loose: dict[str, list[MemoryRecord]] = defaultdict(list)  # sessionless, by day
        for e in episodes:
            if e.scope.session_id is not None:
                sessions[e.scope.session_id].append(e)
            elif e.valid_from is not None:
                loose[e.valid_from.date().isoformat()].append(e)
        days: dict[str, list[MemoryRecord]] = defaultdict(list)
        plans = []
        for sid in sorted(sessions):
            members = sorted(sessions[sid], key=_when)
            statements = _statements(members, derived.get(sid, []))
            plans.append((sid, members, statements))
        # Sessions are most of the nodes: embed the texts of those that changed in one batch.
        stale = [
            self._summary_text(f"Session {sid} ({format_day(_when(members[0]))})", statements)[0]
            for sid, members, statements in plans
            if _fingerprint(statements) != existing.get(("session", sid), _NO_NODE).metadata.get(
                "fingerprint")
        ]
        if stale:
            self._vectors.update(zip(stale, self.embedder.embed_documents(stale), strict=True))
        for sid, members, statements in plans:
            start, end = _when(members[0]), _when(members[-1])
            node = self._node(
                part, existing, "session", sid, statements, now, report,
                heading=f"Session {sid} ({format_day(start)})",
                valid=(start, end + timedelta(seconds=1)), session_id=sid,
            )
            days[start.date().isoformat()].append(node)
        for day, items in loose.items():
            days[day].extend(items)
        months: dict[str, list[MemoryRecord]] = defaultdict(list)
        # A node with a single summary child would only repeat it: the child stands in for it.
        for day in sorted(days):
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            children = sorted(days[day], key=_when)
            if _only_summary(children) and (("day", day) not in existing):
                months[day[:7]].append(children[0])
                continue
            node = self._node(
                part, existing, "day", day, children, now, report,
                heading=f"On {format_day(start)}", valid=(start, start + timedelta(days=1)),
            )
            months[day[:7]].append(node)
        for month in sorted(months):
            start = datetime.fromisoformat(f"{month}-01").replace(tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
            children = sorted(months[month], key=_when)
            if _only_summary(children) and (("month", month) not in existing):
                continue
            self._node(
                part, existing, "month", month, children, now, report,
                heading=f"In {_MONTHS[start.month - 1]} {start.year}", valid=(start, end),
            )

    def _node(
        self,
        part: Scope,
        existing: dict[tuple[Any, Any], MemoryRecord],
        level: str,
        key: str,
        children: list[MemoryRecord],
        now: datetime,
        report: ConsolidationReport,
        *,
        heading: str,
        valid: tuple[datetime, datetime],
        session_id: str | None = None,
    ) -> MemoryRecord:
        """Write one summary node if its children changed; return the node as stored."""
        fingerprint = _fingerprint(children)
        old = existing.get((level, key))
        if old is not None and old.metadata.get("fingerprint") == fingerprint:
            return old
        text, sources = self._summary_text(heading, children)
        metadata = {
            "summary_level": level,
            "summary_key": key,
            "fingerprint": fingerprint,
            "children": [c.id for c in children],
        }
        embedding = self._vectors.pop(text, None)
        if embedding is None:
            embedding = self.embedder.embed_documents([text])[0]
        scope = Scope(user_id=part.user_id, agent_id=part.agent_id, session_id=session_id)
        if old is None:
            node = MemoryRecord(
                id=new_id(), scope=scope, kind=MemoryKind.SUMMARY, text=text, metadata=metadata,
                valid_from=valid[0], valid_to=valid[1], created_at=now, updated_at=now,
                provenance=Provenance(source_message_ids=sources, extractor="consolidate",
                                      extractor_version="1"),
                importance=0.4, content_hash=content_hash(MemoryKind.SUMMARY.value, text),
            )
            self.store.apply(
                WriteBatch(
                    inserts=[(node, embedding)],
                    history=[HistoryDraft(node.id, HistoryEvent.ADD, None, snapshot(node), ACTOR,
                                          f"{level} summary of {key}", now)],
                )
            )
            report.summaries_added += 1
            event = HistoryEvent.ADD
        else:
            node = old.model_copy(
                update={
                    "text": text, "metadata": metadata, "valid_from": valid[0],
                    "valid_to": valid[1], "updated_at": now, "version": old.version + 1,
                    "content_hash": content_hash(MemoryKind.SUMMARY.value, text),
                    "provenance": old.provenance.model_copy(
                        update={"source_message_ids": sources}
                    ),
                }
            )
            self.store.apply(
                WriteBatch(
                    updates=[(node, embedding)],
                    history=[HistoryDraft(node.id, HistoryEvent.UPDATE, snapshot(old),
                                          snapshot(node), ACTOR,
                                          f"{level} summary of {key}: its inputs changed", now)],
                )
            )
            report.summaries_updated += 1
            event = HistoryEvent.UPDATE
        existing[(level, key)] = node
        report.changes.append(MemoryChange(id=node.id, event=event, text=node.text,
                                           kind=node.kind, reason=f"{level} summary"))
        return node

    def _summary_text(self, heading: str, children: list[MemoryRecord]) -> tuple[str, list[str]]:
        """The node's text, and its provenance: the turns behind the lines it says, not
        every turn of the period."""
        lines = [(c, line) for c in children for line in _lines(c)]
        chosen = pick_sentences([line for _, line in lines], self.config.summary_sentences)
        text = "\n".join([f"{heading}:", *(sentence for _, sentence in chosen)])
        sources = list(dict.fromkeys(
            s for i, _ in chosen for s in lines[i][0].provenance.source_message_ids
        ))
        return text, sources

    # -- decay ----------------------------------------------------------------------------

    def _decay(self, part: Scope, now: datetime, report: ConsolidationReport) -> None:
        """Archive derived memories whose strength fell below the threshold, and restore
        archived ones that were used again (found with `include_archived`) so that their
        strength is back above twice the threshold. Episodes (the verbatim record),
        summaries and profiles do not fade."""
        cfg = self.config
        changes: list[tuple[MemoryRecord, MemoryStatus, HistoryEvent, str]] = []
        for r in self._load(part, kinds=DERIVED_KINDS):
            s = strength(r, now, cfg.half_life_days)
            if s < cfg.archive_below:
                changes.append((r, MemoryStatus.ARCHIVED, HistoryEvent.ARCHIVE,
                                f"strength {s:.3f} below {cfg.archive_below}"))
        for r in self._load(part, kinds=DERIVED_KINDS, statuses=(MemoryStatus.ARCHIVED.value,)):
            s = strength(r, now, cfg.half_life_days)
            if s >= 2 * cfg.archive_below:  # the gap keeps a memory from flapping
                changes.append((r, MemoryStatus.ACTIVE, HistoryEvent.RESTORE,
                                f"used again: strength {s:.3f}"))
        for start in range(0, len(changes), 200):
            batch = WriteBatch()
            for r, status, event, why in changes[start : start + 200]:
                new = r.model_copy(update={"status": status, "updated_at": now})
                batch.updates.append((new, None))
                batch.history.append(
                    HistoryDraft(r.id, event, snapshot(r), snapshot(new), ACTOR, why, now)
                )
                report.changes.append(MemoryChange(id=r.id, event=event, text=r.text,
                                                   kind=r.kind, reason=why))
                if event is HistoryEvent.ARCHIVE:
                    report.archived += 1
                else:
                    report.restored += 1
            self.store.apply(batch)

    # -- profile --------------------------------------------------------------------------

    def _profile(self, part: Scope, now: datetime, report: ConsolidationReport) -> None:
        """Keep one `profile` memory per user current; rewritten only when its text changes."""
        if part.user_id is None:
            return
        sources = self._load(
            part, kinds=[MemoryKind.PREFERENCE.value, MemoryKind.FACT.value,
                         MemoryKind.PROCEDURE.value]
        )
        text = render_profile(part, sources, self.config.profile_lines)
        if text is None:
            return
        current = [p for p in self._load(part, kinds=[MemoryKind.PROFILE.value])
                   if p.scope.session_id is None]
        old = current[0] if current else None
        if old is not None and old.text == text:
            return
        embedding = self.embedder.embed_documents([text])[0]
        digest = content_hash(MemoryKind.PROFILE.value, text)
        if old is None:
            node = MemoryRecord(
                id=new_id(), scope=Scope(user_id=part.user_id, agent_id=part.agent_id),
                kind=MemoryKind.PROFILE, text=text, created_at=now, updated_at=now,
                provenance=Provenance(extractor="consolidate", extractor_version="1"),
                importance=1.0, content_hash=digest,
            )
            batch = WriteBatch(inserts=[(node, embedding)], history=[
                HistoryDraft(node.id, HistoryEvent.ADD, None, snapshot(node), ACTOR,
                             "profile created", now)])
            report.profiles_added += 1
            event = HistoryEvent.ADD
        else:
            node = old.model_copy(update={"text": text, "content_hash": digest, "updated_at": now,
                                          "version": old.version + 1})
            batch = WriteBatch(updates=[(node, embedding)], history=[
                HistoryDraft(old.id, HistoryEvent.UPDATE, snapshot(old), snapshot(node), ACTOR,
                             "profile refreshed: its facts or preferences changed", now)])
            report.profiles_updated += 1
            event = HistoryEvent.UPDATE
        self.store.apply(batch)
        report.changes.append(MemoryChange(id=node.id, event=event, text=node.text,
                                           kind=node.kind, reason="profile"))


# -- pure helpers (unit-testable without a store) ---------------------------------------------


def _statements(episodes: list[MemoryRecord], derived: list[MemoryRecord]) -> list[MemoryRecord]:
    """A session's inputs in conversation order: what was extracted from each turn, or the
    turn itself where nothing was extracted (so every turn counts, and a new one changes
    the session's fingerprint)."""
    position: dict[str, int] = {}
    for i, e in enumerate(episodes):
        for source in e.provenance.source_message_ids:
            position.setdefault(source, i)
    covered = {s for d in derived for s in d.provenance.source_message_ids}
    items = [
        (min((position.get(s, len(episodes)) for s in d.provenance.source_message_ids),
             default=len(episodes)), 1, d.id, d)
        for d in derived
    ] + [
        (i, 0, e.id, e) for i, e in enumerate(episodes)
        if not set(e.provenance.source_message_ids) & covered
    ]
    return [item[3] for item in sorted(items, key=lambda t: t[:3])]


def _fingerprint(children: Sequence[MemoryRecord]) -> str:
    """What a summary node is made from; the node is rewritten only when this changes."""
    return hashlib.sha256("\n".join(f"{c.id}:{c.content_hash}" for c in children).encode(
    )).hexdigest()


def _only_summary(children: list[MemoryRecord]) -> bool:
    return len(children) == 1 and children[0].kind is MemoryKind.SUMMARY


def _wants_retry(episode: MemoryRecord) -> bool:
    mark = episode.metadata.get(FAILED_KEY)
    return (
        isinstance(mark, dict)
        and mark.get("status") in ("failed", "fallback")
        and bool(mark.get("retry"))
    )


def _when(record: MemoryRecord) -> datetime:
    return record.valid_from or record.created_at


def _lines(record: MemoryRecord) -> list[str]:
    """What a child contributes to its parent: a summary's picked lines (without its
    heading), or a memory's own text."""
    if record.kind is MemoryKind.SUMMARY:
        return [line for line in record.text.split("\n")[1:] if line.strip()]
    return [record.text]


def _merge_key(record: MemoryRecord) -> tuple[Any, ...]:
    """Only memories that agree on kind, validity, triple and numbers may be duplicates:
    "ran 5 km on 7 May" and "ran 10 km on 8 May" embed close but are two facts."""
    return (
        record.kind.value,
        record.valid_from.date() if record.valid_from else None,
        record.valid_to.date() if record.valid_to else None,
        (record.subject or "").casefold(),
        (record.predicate or "").casefold(),
        (record.object or "").casefold(),
        tuple(sorted(_DIGITS.findall(record.text))),
    )


def _clusters(
    group: list[MemoryRecord], vectors: dict[str, np.ndarray], threshold: float
) -> list[list[MemoryRecord]]:
    """Connected components of the "cosine ≥ threshold" relation (size ≥ 2)."""
    if len(group) < 2:
        return []
    matrix = np.stack([vectors[r.id] for r in group]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12
    parent = list(range(len(group)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    words = [_content_words(r.text) for r in group]
    polarity = [_polarity(r.text) for r in group]
    for start in range(0, len(group), 512):
        sims = matrix[start : start + 512] @ matrix.T
        for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
            i, j = start + int(a), int(b)
            if i < j and polarity[i] == polarity[j] and _few_words_apart(words[i], words[j]):
                parent[find(j)] = find(i)
    comps: dict[int, list[MemoryRecord]] = defaultdict(list)
    for i, r in enumerate(group):
        comps[find(i)].append(r)
    return [c for c in comps.values() if len(c) > 1]


_NEGATIONS = frozenset(
    """not no never nothing nobody none nor n't dislike dislikes disliked hate hates hated
    stopped quit anymore cancelled canceled without""".split()
)


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS)


def _polarity(text: str) -> frozenset[str]:
    """The negating words of a text: "likes X" and "no longer likes X" embed alike."""
    lowered = text.casefold().replace("’", "'").replace("n't", " n't")
    return frozenset(w for w in re.findall(r"[\w']+", lowered) if w in _NEGATIONS)


def _few_words_apart(a: frozenset[str], b: frozenset[str]) -> bool:
    """Near-duplicates differ in punctuation, inflection or a word or two, not in content."""
    return len(a ^ b) <= max(2, len(a | b) // 4)


_FILLER = frozenset(
    """wow awesome cool great amazing nice love loved lovely glad happy thanks thank sure yeah
    yes really totally definitely super so much good beautiful gorgeous wonderful fantastic
    hey hi hello oh omg haha lol cute sweet proud incredible stunning""".split()
)


def extractive_summary(texts: Sequence[str], limit: int) -> list[str]:
    """The `limit` sentences that best cover what the texts talk about, in their order."""
    return [sentence for _, sentence in pick_sentences(texts, limit)]


def pick_sentences(texts: Sequence[str], limit: int) -> list[tuple[int, str]]:
    """(index of the text it came from, sentence) for the `limit` sentences that best cover
    what the texts talk about, in their original order. Deterministic: ties break by position.

    A sentence scores by the content words it shares with the others — leaving out fillers
    ("wow", "awesome") and words in most sentences (the speakers' names), which say nothing
    about the topic; questions only count when nothing else is left. After each pick its
    words count half, so the picks cover different things.
    """
    sentences: list[str] = []
    origin: list[int] = []
    for index, text in enumerate(texts):
        text = " ".join(_ANNOTATION.sub("", text).split())
        speaker, body = "", text
        head, sep, rest = text.partition(": ")
        if sep and len(head) <= 40 and " " not in head.strip():
            speaker, body = f"{head}: ", rest
        for sentence in split_sentences(body):
            sentence = sentence.strip()
            if sentence:
                sentences.append(f"{speaker}{sentence}"[:300])
                origin.append(index)
    words = [
        {w for w in _WORD.findall(s.casefold()) if w not in STOPWORDS and w not in _FILLER}
        for s in sentences
    ]
    df = Counter(w for ws in words for w in ws)
    common = {w for w, n in df.items() if len(sentences) >= 4 and n > len(sentences) / 2}
    weight = {w: float(n) for w, n in df.items() if w not in common}
    pool = [
        i for i, (s, ws) in enumerate(zip(sentences, words, strict=True))
        if len(ws - common) >= 3 and not s.rstrip().endswith("?")
    ] or [i for i, ws in enumerate(words) if ws] or list(range(len(sentences)))
    chosen: list[int] = []
    seen: set[str] = set()
    while pool and len(chosen) < limit:
        best = max(
            pool,
            key=lambda i: (
                sum(weight.get(w, 0.0) for w in words[i]) / math.sqrt(len(words[i]) + 1), -i
            ),
        )
        pool.remove(best)
        if sentences[best].casefold() in seen:
            continue
        seen.add(sentences[best].casefold())
        chosen.append(best)
        for w in words[best]:
            if w in weight:
                weight[w] /= 2
    return [(origin[i], sentences[i]) for i in sorted(chosen)]


_ANNOTATION = re.compile(r"\s*\[[^\]]{0,300}\]|\s*\(answering[^)]{0,300}\)", re.IGNORECASE)
_VAGUE = frozenset("it this that these those they them there here everyone".split())
_MIN_INFORMATIVE = 3  # "It reminds Melanie why they love it" needs its context: not a profile line


def profile_line(text: str, limit: int = 200) -> str:
    """A memory as one line: quoted context and photo notes dropped, cut at a word."""
    line = " ".join(_ANNOTATION.sub("", text).split())
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0] + " …"
    return line


def _informative(line: str) -> int:
    """Content words, less the vague words a line needs its context for."""
    tokens = _WORD.findall(line.casefold())
    vague = sum(1 for t in tokens if t in _VAGUE) + (3 if tokens and tokens[0] in _VAGUE else 0)
    return len(_content_words(line)) - vague


def render_profile(part: Scope, sources: Sequence[MemoryRecord], per_section: int) -> str | None:
    """The profile block: stable order (by section, then alphabetically), no ids, no times.

    The lines kept are the most important, then the most informative ones (self-contained
    statements over "it was really special"), never chosen by use counts, which change on
    every search and would make the block churn.
    """
    sections = (
        (MemoryKind.PREFERENCE, "Preferences"),
        (MemoryKind.FACT, "Facts"),
        (MemoryKind.PROCEDURE, "Procedures and lessons"),
    )
    lines = [f"Profile of {part.user_id}"]
    found = False
    for kind, title in sections:
        texts: dict[str, MemoryRecord] = {}
        for r in sources:
            if r.kind is kind and r.status is MemoryStatus.ACTIVE:
                line = profile_line(r.text)
                if line and _informative(line) >= _MIN_INFORMATIVE:
                    texts.setdefault(line, r)
        if not texts:
            continue
        best = sorted(texts.items(), key=lambda kv: (-kv[1].importance, -_informative(kv[0]),
                                                     -kv[1].provenance.confidence, kv[0]))
        chosen = sorted((t for t, _ in best[:per_section]), key=lambda t: (t.casefold(), t))
        lines.append(f"{title}:")
        lines.extend(f"- {t}" for t in chosen)
        found = True
    return "\n".join(lines) if found else None
