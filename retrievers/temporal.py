"""Temporal channel: the time a question names, resolved against the question's own date.

"What did Caroline do last May?" asked on 25 May 2023 is about May 2022; asked a year later,
about May 2023. The expressions are found and resolved by the extractors' time module (the
same vocabulary and dateparser arithmetic the write path uses to date memories), against
`ChannelQuery.now` (the search's `now=` or `as_of`), and the channel returns memories whose
validity overlaps the resolved window: those that also share words with the question first
(BM25 inside the window), then the rest of the window.

A question that asks *when* something happened names no time; for it the channel returns
the memories that carry a resolved date (`metadata.time`) and share words with the question,
since those are the ones that can answer it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from memsvc.model.filters import AllOf, AnyOf, Condition, FilterNode
from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, MemoryStore, VisibilityQuery
from memsvc.text.timeparse import TimeSpan, find_times

_WHEN = re.compile(
    r"\b(?:when|what\s+(?:date|day|time|year|month)|which\s+(?:date|day|year|month)|"
    r"how\s+long\s+ago|since\s+when)\b",
    re.IGNORECASE,
)


def time_window(text: str, now: datetime) -> list[TimeSpan]:
    """The windows a question names, resolved against `now` (empty when it names none).

    "in May 2023" may be read as both "May" and "2023"; a window that contains another one
    only repeats it less precisely, so the narrowest readings are kept.
    """
    spans = find_times(text, now if now.tzinfo else now.replace(tzinfo=UTC))
    return [
        s for s in spans
        if not any(
            o is not s and s.start <= o.start and o.end <= s.end and (o.end - o.start) < (
                s.end - s.start
            )
            for o in spans
        )
    ]


def overlaps(start: datetime, end: datetime) -> FilterNode:
    """Memories whose validity meets [start, end). An open `valid_to` is read as a moment
    (the event happened at `valid_from`), so a fact learnt in 2021 does not answer every
    question about every later month."""
    return AllOf(
        (
            Condition("valid_from", "lt", end),
            AnyOf(
                (
                    Condition("valid_to", "gt", start),
                    AllOf(
                        (
                            Condition("valid_to", "eq", None),
                            Condition("valid_from", "gte", start),
                        )
                    ),
                )
            ),
        )
    )


def _narrow(visibility: VisibilityQuery, extra: FilterNode) -> VisibilityQuery:
    filters = extra if visibility.filters is None else AllOf((visibility.filters, extra))
    return replace(visibility, filters=filters)


class TemporalChannel:
    name = "temporal"

    def __init__(
        self, store: MemoryStore, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        now = query.now or self._clock()
        spans = time_window(query.text, now)
        if spans:
            return self._in_windows(query, spans, k)
        if _WHEN.search(query.text):
            return self._dated(query, k)
        return []

    def _in_windows(self, query: ChannelQuery, spans: list[TimeSpan], k: int) -> list[Hit]:
        scores: dict[str, float] = {}
        for span in spans:
            visibility = _narrow(query.visibility, overlaps(span.start, span.end))
            # Words shared with the question rank first; BM25 scores are made positive and
            # squashed below 1 so they order hits without outweighing the window itself.
            for rank, hit in enumerate(self._store.lexical_search(visibility, query.text, k)):
                scores[hit.memory_id] = max(scores.get(hit.memory_id, 0.0), 2.0 - rank / (k + 1))
            if len(scores) < k:
                items, _ = self._store.list_memories(visibility, limit=k)
                for item in items:
                    scores.setdefault(item.id, 1.0 - _distance(item.valid_from, span) / 1e9)
        ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Hit(memory_id, score) for memory_id, score in ordered]

    def _dated(self, query: ChannelQuery, k: int) -> list[Hit]:
        dated = Condition("time", "ne", None, metadata=True)
        visibility = _narrow(query.visibility, dated)
        return self._store.lexical_search(visibility, query.text, k)


def _distance(when: datetime | None, span: TimeSpan) -> float:
    """Seconds from the window's middle, for ordering the memories that share no words."""
    if when is None:
        return 1e9
    middle = span.start + (span.end - span.start) / 2
    if middle.tzinfo is None:
        middle = middle.replace(tzinfo=UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(abs((when - middle).total_seconds()), 1e9)
