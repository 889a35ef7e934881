"""The decay step: let unused memories fade, and bring back the ones used again.

Only derived memories (facts, preferences, events, procedures) fade: episodes are the
verbatim record, and summaries and profiles are rebuilt from what is there. Archiving is a
status change, never an erasure, written in chunks of 200 per transaction.
"""

from __future__ import annotations

import math
from datetime import datetime

from memsvc.consolidate.context import ACTOR, DERIVED_KINDS, StepContext
from memsvc.model.records import HistoryEvent, MemoryChange, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.write.revision import snapshot


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


def decay(ctx: StepContext, part: Scope) -> None:
    """Archive derived memories whose strength fell below the threshold, and restore
    archived ones that were used again (found with `include_archived`) so that their
    strength is back above twice the threshold."""
    cfg, now, report = ctx.config, ctx.now, ctx.report
    changes: list[tuple[MemoryRecord, MemoryStatus, HistoryEvent, str]] = []
    for r in ctx.load(part, kinds=DERIVED_KINDS):
        s = strength(r, now, cfg.half_life_days)
        if s < cfg.archive_below:
            changes.append((r, MemoryStatus.ARCHIVED, HistoryEvent.ARCHIVE,
                            f"strength {s:.3f} below {cfg.archive_below}"))
    for r in ctx.load(part, kinds=DERIVED_KINDS, statuses=(MemoryStatus.ARCHIVED.value,)):
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
        ctx.store.apply(batch)
