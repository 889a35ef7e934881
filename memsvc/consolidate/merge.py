"""The merge step: fold near-duplicates into the oldest of them.

Near-duplicates are memories of the same kind that agree on dates, triple and numbers, whose
vectors are within `merge_threshold`, that negate alike and differ by a word or two. The
others of a cluster are superseded by the survivor, never erased; the survivor takes their
sources, uses and importance. One cluster is one transaction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from memsvc.consolidate.context import ACTOR, DERIVED_KINDS, StepContext
from memsvc.consolidate.sentences import WORD, content_words
from memsvc.model.records import HistoryEvent, MemoryChange, MemoryRecord, MemoryStatus, Scope
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.text.stopwords import STOPWORDS
from memsvc.write.revision import snapshot

_DIGITS = re.compile(r"\d+")
_NEGATIONS = frozenset(
    """not no never nothing nobody none nor n't dislike dislikes disliked hate hates hated
    stopped quit anymore cancelled canceled without""".split()
)


def merge_duplicates(ctx: StepContext, part: Scope) -> None:
    """Merge every cluster of near-duplicates among the partition's active memories."""
    records = ctx.load(part, kinds=DERIVED_KINDS)
    vectors = ctx.store.embeddings(r.id for r in records)
    by_key: dict[tuple[Any, ...], list[MemoryRecord]] = defaultdict(list)
    for r in records:
        if r.id in vectors:
            by_key[merge_key(r)].append(r)
    for group in by_key.values():
        for cluster in clusters(group, vectors, ctx.config.merge_threshold):
            _merge_cluster(ctx, cluster)


def _merge_cluster(ctx: StepContext, cluster: list[MemoryRecord]) -> None:
    now, report = ctx.now, ctx.report
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
    ctx.store.apply(batch)
    report.merged += len(rest)


def merge_key(record: MemoryRecord) -> tuple[Any, ...]:
    """Only memories that agree on kind, trust, validity, triple and numbers may be duplicates:
    "ran 5 km on 7 May" and "ran 10 km on 8 May" embed close but are two facts."""
    return (
        record.kind.value,
        # never across trust levels: a merge must not lift a memory to a trust it was not
        # written with (memsvc.model.trust)
        record.trust,
        record.valid_from.date() if record.valid_from else None,
        record.valid_to.date() if record.valid_to else None,
        (record.subject or "").casefold(),
        (record.predicate or "").casefold(),
        (record.object or "").casefold(),
        tuple(sorted(_DIGITS.findall(record.text))),
    )


def clusters(
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

    words = [content_words(r.text) for r in group]
    order = [_content_sequence(r.text) for r in group]
    polarity = [_polarity(r.text) for r in group]
    for start in range(0, len(group), 512):
        sims = matrix[start : start + 512] @ matrix.T
        for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
            i, j = start + int(a), int(b)
            if (i < j and polarity[i] == polarity[j]
                    and _few_words_apart(words[i], words[j])
                    and _same_order(order[i], order[j])):
                parent[find(j)] = find(i)
    comps: dict[int, list[MemoryRecord]] = defaultdict(list)
    for i, r in enumerate(group):
        comps[find(i)].append(r)
    return [c for c in comps.values() if len(c) > 1]


def _polarity(text: str) -> frozenset[str]:
    """The negating words of a text: "likes X" and "no longer likes X" embed alike."""
    lowered = text.casefold().replace("’", "'").replace("n't", " n't")
    return frozenset(w for w in re.findall(r"[\w']+", lowered) if w in _NEGATIONS)


def _few_words_apart(a: frozenset[str], b: frozenset[str]) -> bool:
    """Near-duplicates differ in punctuation, inflection or a word or two, not in content."""
    return len(a ^ b) <= max(2, len(a | b) // 4)


def _content_sequence(text: str) -> list[str]:
    """The content words of a text in the order they appear (first occurrence of each)."""
    return list(dict.fromkeys(w for w in WORD.findall(text.casefold()) if w not in STOPWORDS))


def _same_order(a: list[str], b: list[str]) -> bool:
    """The words two texts share come in the same order in both.

    "prefers tea over coffee" and "prefers coffee over tea" have the same words, the same
    polarity and nearly the same vector, yet say opposite things; their order tells them apart.
    """
    shared = set(a) & set(b)
    return [w for w in a if w in shared] == [w for w in b if w in shared]
