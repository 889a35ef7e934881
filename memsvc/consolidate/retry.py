"""The retry step: extract again the turns whose extraction failed at write time.

`Memory.add` marks such a turn's episode with ``metadata.extraction`` (status "failed", or
"fallback" when an LLM extractor had to hand it to the rules; retry true; see
`memsvc.write.extraction`). A success adds the new memories and marks the episode "retried"
in the same transaction; another failure counts the attempt, and after
`max_retry_attempts` the episode is no longer retried. One episode is one transaction.

A background add's episode marked "pending" (`memsvc.write.pending`: acknowledged, not yet
extracted, e.g. the server died first) is picked up here the same way.
"""

from __future__ import annotations

from memsvc.consolidate.context import ACTOR, StepContext
from memsvc.model.records import HistoryEvent, MemoryChange, MemoryKind, MemoryRecord, Scope
from memsvc.model.trust import LOCAL
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.write.extraction import run_extractor
from memsvc.write.origin import Origin
from memsvc.write.quarantine import flagged_messages
from memsvc.write.revision import snapshot

# The metadata key the write path marks a failed extraction with (memsvc.write.extraction).
FAILED_KEY = "extraction"


def retry_failed(ctx: StepContext, part: Scope) -> None:
    """Retry every failed extraction of the partition (nothing without an extractor)."""
    if ctx.extractor is None:
        return
    failed = [e for e in ctx.load(part, kinds=[MemoryKind.EPISODE.value]) if wants_retry(e)]
    if not failed:
        return
    messages = {m.id: m for m in ctx.messages(part)}
    report = ctx.report
    for episode in failed:
        sources = [messages[i] for i in episode.provenance.source_message_ids if i in messages]
        if not sources:
            continue
        outcome = run_extractor(ctx.extractor, sources)
        mark = dict(episode.metadata[FAILED_KEY])
        mark["attempts"] = int(mark.get("attempts", 1)) + 1
        batch = WriteBatch()
        changes: list[MemoryChange] = []
        if outcome.failures or outcome.degraded:  # degraded: the LLM fell back again
            mark["error"] = next(iter({**outcome.degraded, **outcome.failures}.values()))
            mark["retry"] = mark["attempts"] < ctx.config.max_retry_attempts
            reason = f"extraction retry failed: {mark['error']}"
            report.retry_failures += 1
        else:
            texts = [c.text for c, _, _ in outcome.candidates]
            embeddings = ctx.embedder.embed_documents(texts)
            # stamped as the episode was: the key that wrote it, never more trusted
            changes = ctx.manager.plan(
                outcome.candidates, embeddings, episode.scope, now=ctx.now, actor=ACTOR,
                batch=batch, flagged=flagged_messages(sources),
                origin=Origin(LOCAL, sources, {m.id: episode for m in sources}),
            )
            mark.update(status="retried", retry=False)
            mark.pop("error", None)
            reason = f"extraction retried with {ctx.extractor.name}: {len(changes)} memories"
            report.retried += 1
        marked = episode.model_copy(
            update={"metadata": {**episode.metadata, FAILED_KEY: mark}, "updated_at": ctx.now}
        )
        batch.updates.append((marked, None))
        batch.history.append(
            HistoryDraft(episode.id, HistoryEvent.UPDATE, snapshot(episode), snapshot(marked),
                         ACTOR, reason, ctx.now)
        )
        ctx.store.apply(batch)
        report.changes.extend(changes)
        report.changes.append(MemoryChange(id=episode.id, event=HistoryEvent.UPDATE,
                                           text=episode.text, kind=episode.kind,
                                           reason=reason))


def wants_retry(episode: MemoryRecord) -> bool:
    mark = episode.metadata.get(FAILED_KEY)
    return (
        isinstance(mark, dict)
        and mark.get("status") in ("failed", "fallback", "pending")
        and bool(mark.get("retry"))
    )
