"""Running an extractor so that a failure never costs a message.

The raw message is the source of truth: whatever the extractor does (raise, time out, return
garbage), the turn is still stored and kept as an episode. This module runs the extractor
over a batch, falls back to one message at a time when the batch fails (so one bad turn does
not sink its neighbours), throws away candidates that are not well formed, and reports per
message what went wrong. `Memory.add` writes that report onto the message and its episode
(``metadata.extraction``) and into history, which is what consolidation uses to retry;
`Memory.infer`, the second half of a background add, writes it onto the episode already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memsvc.extractors.base import Candidate, Extractor
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryRecord, StoredMessage
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.write.revision import snapshot

log = logging.getLogger(__name__)
MAX_CANDIDATE_CHARS = 4000


@dataclass
class ExtractionOutcome:
    candidates: list[tuple[Candidate, str, str]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # message id → reason
    # message id → reason, for turns an extractor handed to its fallback (the LLM was down or
    # answered garbage): their candidates are kept, and consolidation tries the LLM again
    degraded: dict[str, str] = field(default_factory=dict)


def candidate_problem(candidate: Any, message_ids: set[str]) -> str | None:
    """Why a candidate may not reach the manager, or None when it is well formed."""
    if not isinstance(candidate, Candidate):
        return f"not a Candidate: {type(candidate).__name__}"
    if not isinstance(candidate.kind, MemoryKind) or candidate.kind in (
        MemoryKind.EPISODE, MemoryKind.SUMMARY, MemoryKind.PROFILE
    ):
        return f"kind {candidate.kind!r} cannot come from an extractor"
    if not isinstance(candidate.text, str) or not candidate.text.strip():
        return "empty text"
    if len(candidate.text) > MAX_CANDIDATE_CHARS:
        return f"text longer than {MAX_CANDIDATE_CHARS} characters"
    if not candidate.source_message_ids or not set(candidate.source_message_ids) <= message_ids:
        return "source_message_ids do not name messages of this batch"
    for name in ("valid_from", "valid_to"):
        value = getattr(candidate, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            return f"{name} is not a timezone-aware datetime"
    if (
        candidate.valid_from is not None and candidate.valid_to is not None
        and candidate.valid_to <= candidate.valid_from
    ):
        return "valid_to is not after valid_from"
    if not 0.0 <= float(candidate.confidence) <= 1.0 or not 0.0 <= float(
        candidate.importance
    ) <= 1.0:
        return "confidence and importance must be within 0..1"
    if not isinstance(candidate.metadata, dict) or not isinstance(candidate.entities, list):
        return "metadata must be an object and entities a list"
    return None


def run_extractor(extractor: Extractor, messages: Sequence[StoredMessage]) -> ExtractionOutcome:
    """Candidates for `messages`; a failing batch is retried one message at a time."""
    outcome = ExtractionOutcome()
    if not messages:
        return outcome
    try:
        produced = list(extractor.extract(messages))
    except Exception as exc:
        log.warning("extractor %s failed on a batch of %d: %s", extractor.name, len(messages),
                    exc)
        if len(messages) == 1:
            outcome.failures[messages[0].id] = _describe(exc)
            return outcome
        for message in messages:
            single = run_extractor(extractor, [message])
            outcome.candidates += single.candidates
            outcome.failures.update(single.failures)
        return outcome
    ids = {m.id for m in messages}
    for candidate in produced:
        problem = candidate_problem(candidate, ids)
        if problem is not None:
            for mid in getattr(candidate, "source_message_ids", None) or list(ids):
                if mid in ids:
                    outcome.failures.setdefault(mid, f"invalid candidate dropped: {problem}")
            continue
        name, version = extractor_identity(extractor, candidate)
        outcome.candidates.append((candidate, name, version))
        fallback = candidate.metadata.get("fallback")
        if fallback:
            reason = fallback.get("reason") if isinstance(fallback, dict) else None
            for mid in candidate.source_message_ids:
                outcome.degraded.setdefault(mid, f"fell back to {name}: {reason or fallback}")
    return outcome


def extractor_identity(extractor: Extractor, candidate: Candidate) -> tuple[str, str]:
    """Name and version to record: a fallback extractor says which one actually produced it."""
    produced_by = candidate.metadata.get("extractor")
    if isinstance(produced_by, str) and "/" in produced_by:
        name, version = produced_by.split("/", 1)
        return name, version
    return extractor.name, extractor.version


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def failure_mark(
    message_id: str, outcome: ExtractionOutcome, extractor: str
) -> dict[str, Any] | None:
    """The ``metadata.extraction`` mark for a message that failed or fell back, else None."""
    for status, reasons in (("failed", outcome.failures), ("fallback", outcome.degraded)):
        if message_id in reasons:
            return {"status": status, "extractor": extractor, "error": reasons[message_id],
                    "retry": True}
    return None


def mark_messages(
    messages: Sequence[StoredMessage], outcome: ExtractionOutcome, extractor: str
) -> None:
    """Write a failure or fallback onto each affected message (before it is stored)."""
    for message in messages:
        mark = failure_mark(message.id, outcome, extractor)
        if mark is not None:
            message.metadata = {**message.metadata, "extraction": mark}


def mark_stored_episodes(
    batch: WriteBatch,
    episodes: Mapping[str, MemoryRecord],
    outcome: ExtractionOutcome,
    extractor: str,
    actor: str,
    now: datetime,
) -> None:
    """Mark the episodes (by message id) of messages stored before they were extracted.

    The second half of a background add extracts messages whose episodes already exist, so
    the mark goes onto the episode as an update (with history), where consolidation's retry
    step finds it, instead of onto the message before it is written.
    """
    for message_id, episode in episodes.items():
        mark = failure_mark(message_id, outcome, extractor)
        if mark is None:
            continue
        marked = episode.model_copy(
            update={"metadata": {**episode.metadata, "extraction": mark}, "updated_at": now}
        )
        batch.updates.append((marked, None))
        batch.history.append(HistoryDraft(
            episode.id, HistoryEvent.UPDATE, snapshot(episode), snapshot(marked), actor,
            f"extraction by {extractor} {mark['status']}, kept as episode for retry: "
            f"{mark['error']}", now,
        ))


def record_failures(
    batch: WriteBatch, outcome: ExtractionOutcome, extractor: str, actor: str, now: datetime
) -> None:
    """One history entry per failed or degraded message, on its episode, so it is auditable."""
    if not (outcome.failures or outcome.degraded):
        return
    for record, _ in batch.inserts:
        if record.kind is not MemoryKind.EPISODE:
            continue
        source = record.provenance.source_message_ids[0]
        if source in outcome.failures:
            reason = (f"extraction by {extractor} failed, kept as episode for retry: "
                      f"{outcome.failures[source]}")
        elif source in outcome.degraded:
            reason = (f"extraction by {extractor} degraded, to be retried: "
                      f"{outcome.degraded[source]}")
        else:
            continue
        batch.history.append(
            HistoryDraft(record.id, HistoryEvent.NOOP, None, None, actor, reason, now)
        )
