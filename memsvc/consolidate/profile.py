"""The profile step: one `profile` memory per user, kept current.

The profile is a deterministic rendering of the user's preferences, facts and procedures,
byte-identical while they do not change (so the serving layer can keep it at the start of
prompts for KV-cache reuse); it is rewritten only when its text changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsvc.consolidate.context import ACTOR, StepContext
from memsvc.consolidate.sentences import WORD, content_words, profile_line
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
from memsvc.model.trust import DEFAULT_MIN_TRUST, derived_from
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.write.revision import snapshot

_VAGUE = frozenset("it this that these those they them there here everyone".split())
_MIN_INFORMATIVE = 3  # "It reminds Melanie why they love it" needs its context: not a profile line


def refresh_profile(ctx: StepContext, part: Scope) -> None:
    """Write or refresh the partition's profile (a user's partitions only)."""
    if part.user_id is None:
        return
    now, report = ctx.now, ctx.report
    # what tools and documents said is no part of who the user is (memsvc.model.trust)
    sources = [r for r in ctx.load(
        part, kinds=[MemoryKind.PREFERENCE.value, MemoryKind.FACT.value,
                     MemoryKind.PROCEDURE.value]
    ) if r.trust >= DEFAULT_MIN_TRUST]
    text = render_profile(part, sources, ctx.config.profile_lines)
    if text is None:
        return
    current = [p for p in ctx.load(part, kinds=[MemoryKind.PROFILE.value])
               if p.scope.session_id is None]
    old = current[0] if current else None
    if old is not None and old.text == text:
        return
    embedding = ctx.embedder.embed_documents([text])[0]
    digest = content_hash(MemoryKind.PROFILE.value, text)
    if old is None:
        node = MemoryRecord(
            id=new_id(), scope=Scope(user_id=part.user_id, agent_id=part.agent_id),
            kind=MemoryKind.PROFILE, text=text, created_at=now, updated_at=now,
            provenance=Provenance(extractor="consolidate", extractor_version="1"),
            importance=1.0, content_hash=digest, **derived_from(sources),
        )
        batch = WriteBatch(inserts=[(node, embedding)], history=[
            HistoryDraft(node.id, HistoryEvent.ADD, None, snapshot(node), ACTOR,
                         "profile created", now)])
        report.profiles_added += 1
        event = HistoryEvent.ADD
    else:
        node = old.model_copy(update={"text": text, "content_hash": digest, "updated_at": now,
                                      "version": old.version + 1, **derived_from(sources)})
        batch = WriteBatch(updates=[(node, embedding)], history=[
            HistoryDraft(old.id, HistoryEvent.UPDATE, snapshot(old), snapshot(node), ACTOR,
                         "profile refreshed: its facts or preferences changed", now)])
        report.profiles_updated += 1
        event = HistoryEvent.UPDATE
    ctx.store.apply(batch)
    report.changes.append(MemoryChange(id=node.id, event=event, text=node.text,
                                       kind=node.kind, reason="profile"))


def _informative(line: str) -> int:
    """Content words, less the vague words a line needs its context for."""
    tokens = WORD.findall(line.casefold())
    vague = sum(1 for t in tokens if t in _VAGUE) + (3 if tokens and tokens[0] in _VAGUE else 0)
    return len(content_words(line)) - vague


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
    # not the user id: a caller-chosen string that would reach every chat prompt
    lines = ["Profile of the user"]
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
