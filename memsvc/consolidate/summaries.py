"""The summaries step: a time tree of session → day → month summary nodes.

Each node is rewritten only when its inputs (the fingerprint of its children) changed, so a
rerun over unchanged data writes nothing, and one node is one transaction. Without an LLM a
summary is extractive: the sentences that carry the most frequent content words and names.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from memsvc.consolidate.context import ACTOR, DERIVED_KINDS, StepContext
from memsvc.consolidate.sentences import pick_sentences
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
from memsvc.model.trust import derived_from
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.text.timeparse import format_day
from memsvc.write.revision import snapshot

_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
_NO_NODE = MemoryRecord(id="-", scope=Scope(), kind=MemoryKind.SUMMARY, text="-",
                        created_at=datetime.min.replace(tzinfo=UTC),
                        updated_at=datetime.min.replace(tzinfo=UTC), content_hash="-")


@dataclass
class _Tree:
    """One partition's summary nodes as stored, and the vectors of session texts batch-made."""

    ctx: StepContext
    part: Scope
    existing: dict[tuple[Any, Any], MemoryRecord]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # summary text -> its vector



def _plus(when: datetime, delta: timedelta) -> datetime:
    """`when + delta`, held at the last representable instant: a turn dated 9999-12-31 is
    valid input, and its day or month must not end past the calendar's end."""
    try:
        return when + delta
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    """The first instant of the month after `start`'s (the calendar's end after 9999-12)."""
    if start.month < 12:
        return start.replace(month=start.month + 1, day=1)
    if start.year < datetime.max.year:
        return start.replace(year=start.year + 1, month=1, day=1)
    return datetime.max.replace(tzinfo=UTC)

def summarise(ctx: StepContext, part: Scope) -> None:
    """Bring the partition's time tree up to date with its episodes and extracted memories."""
    episodes = ctx.load(part, kinds=[MemoryKind.EPISODE.value])
    # Extracted memories are already self-contained statements ("Caroline went to the
    # support group on 7 May 2023"): a session's summary is picked from them when the
    # session has any, from its raw turns otherwise.
    # Archived ones count: they faded from use, not from what happened (and a summary
    # that changed when decay ran would never settle).
    derived: dict[str, list[MemoryRecord]] = defaultdict(list)
    for r in ctx.load(part, kinds=DERIVED_KINDS, statuses=(
        MemoryStatus.ACTIVE.value, MemoryStatus.ARCHIVED.value
    )):
        if r.scope.session_id is not None:
            derived[r.scope.session_id].append(r)
    tree = _Tree(ctx, part, {
        (s.metadata.get("summary_level"), s.metadata.get("summary_key")): s
        for s in ctx.load(part, kinds=[MemoryKind.SUMMARY.value])
    })
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
        _summary_text(ctx, f"Session {sid} ({format_day(_when(members[0]))})", statements)[0]
        for sid, members, statements in plans
        if _fingerprint(statements) != tree.existing.get(("session", sid), _NO_NODE).metadata.get(
            "fingerprint")
    ]
    if stale:
        tree.vectors.update(zip(stale, ctx.embedder.embed_documents(stale), strict=True))
    for sid, members, statements in plans:
        start, end = _when(members[0]), _when(members[-1])
        node = _node(
            tree, "session", sid, statements,
            heading=f"Session {sid} ({format_day(start)})",
            valid=(start, _plus(end, timedelta(seconds=1))), session_id=sid,
        )
        days[start.date().isoformat()].append(node)
    for day, items in loose.items():
        days[day].extend(items)
    months: dict[str, list[MemoryRecord]] = defaultdict(list)
    # A node with a single summary child would only repeat it: the child stands in for it.
    for day in sorted(days):
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        children = sorted(days[day], key=_when)
        if _only_summary(children) and (("day", day) not in tree.existing):
            months[day[:7]].append(children[0])
            continue
        node = _node(
            tree, "day", day, children,
            heading=f"On {format_day(start)}", valid=(start, _plus(start, timedelta(days=1))),
        )
        months[day[:7]].append(node)
    for month in sorted(months):
        start = datetime.fromisoformat(f"{month}-01").replace(tzinfo=UTC)
        end = _next_month(start)
        children = sorted(months[month], key=_when)
        if _only_summary(children) and (("month", month) not in tree.existing):
            continue
        _node(
            tree, "month", month, children,
            heading=f"In {_MONTHS[start.month - 1]} {start.year}", valid=(start, end),
        )


def _node(
    tree: _Tree,
    level: str,
    key: str,
    children: list[MemoryRecord],
    *,
    heading: str,
    valid: tuple[datetime, datetime],
    session_id: str | None = None,
) -> MemoryRecord:
    """Write one summary node if its children changed; return the node as stored."""
    ctx, part, existing = tree.ctx, tree.part, tree.existing
    now, report = ctx.now, ctx.report
    fingerprint = _fingerprint(children)
    old = existing.get((level, key))
    if old is not None and old.metadata.get("fingerprint") == fingerprint:
        return old
    text, sources = _summary_text(ctx, heading, children)
    metadata = {
        "summary_level": level,
        "summary_key": key,
        "fingerprint": fingerprint,
        "children": [c.id for c in children],
    }
    embedding = tree.vectors.pop(text, None)
    if embedding is None:
        embedding = ctx.embedder.embed_documents([text])[0]
    scope = Scope(user_id=part.user_id, agent_id=part.agent_id, session_id=session_id)
    if old is None:
        node = MemoryRecord(
            id=new_id(), scope=scope, kind=MemoryKind.SUMMARY, text=text, metadata=metadata,
            valid_from=valid[0], valid_to=valid[1], created_at=now, updated_at=now,
            provenance=Provenance(source_message_ids=sources, extractor="consolidate",
                                  extractor_version="1"),
            importance=0.4, content_hash=content_hash(MemoryKind.SUMMARY.value, text),
            **derived_from(children),
        )
        ctx.store.apply(
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
                **derived_from(children),
                "provenance": old.provenance.model_copy(
                    update={"source_message_ids": sources}
                ),
            }
        )
        ctx.store.apply(
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


def _summary_text(
    ctx: StepContext, heading: str, children: list[MemoryRecord]
) -> tuple[str, list[str]]:
    """The node's text, and its provenance: the turns behind the lines it says, not
    every turn of the period."""
    lines = [(c, line) for c in children for line in _lines(c)]
    chosen = pick_sentences([line for _, line in lines], ctx.config.summary_sentences)
    text = "\n".join([f"{heading}:", *(sentence for _, sentence in chosen)])
    sources = list(dict.fromkeys(
        s for i, _ in chosen for s in lines[i][0].provenance.source_message_ids
    ))
    return text, sources


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


def _when(record: MemoryRecord) -> datetime:
    return record.valid_from or record.created_at


def _lines(record: MemoryRecord) -> list[str]:
    """What a child contributes to its parent: a summary's picked lines (without its
    heading), or a memory's own text."""
    if record.kind is MemoryKind.SUMMARY:
        return [line for line in record.text.split("\n")[1:] if line.strip()]
    return [record.text]
