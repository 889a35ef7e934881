"""Folding hits derived from the same source messages into one piece of evidence.

With `infer=True` one message yields an episode (its verbatim text) and the facts, events
and preferences extracted from it. Ranked flat, they are separate hits that say the same
thing twice and crowd out other evidence (LoCoMo dev, infer: 16.9 distinct turns among the
top 20 memories). A hit whose source messages are all among an earlier hit's is therefore
attached to it as `related` instead of taking a place of its own; `limit` counts groups.

Two guards keep a group one piece of evidence: a leader with more than `max_sources` source
messages (an episode summary spanning a session) absorbs nothing, and summaries and the
profile never fold nor absorb (they are views over many turns, not a turn's restatement).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from memsvc.model.records import MemoryKind, ScoredMemory

MAX_GROUP_SOURCES = 3
STANDALONE_KINDS = frozenset({MemoryKind.SUMMARY, MemoryKind.PROFILE})


class SourceGroups:
    """Hits offered best first; `results` are the first `limit` groups, leaders in order.

    With `enabled=False` every hit is its own group (the flat ranking).
    """

    def __init__(self, limit: int, *, enabled: bool = True,
                 max_sources: int = MAX_GROUP_SOURCES) -> None:
        self.limit = limit
        self.enabled = enabled
        self.max_sources = max_sources
        self._leaders: list[ScoredMemory] = []
        self._sources: list[frozenset[str]] = []
        self._by_source: dict[str, list[int]] = defaultdict(list)  # source id → group indexes

    @property
    def full(self) -> bool:
        return len(self._sources) >= self.limit

    def offer(self, hit: ScoredMemory) -> None:
        """Fold `hit` into an earlier group it restates, else start a group (while there is
        room). A hit offered after the limit is reached can still join a group."""
        memory = hit.memory
        index = self.place(memory.provenance.source_message_ids, memory.kind)
        if index is None:
            return
        if index < len(self._leaders):
            self._leaders[index].related.append(hit)
        else:
            self._leaders.append(hit)

    def place(self, source_ids: Sequence[str], kind: str) -> int | None:
        """Where a hit with these sources and kind goes: the index of the group it joins or
        starts (one past the last group), or None when it is dropped (no room left). The
        decision `offer` acts on, for a caller that holds the hits itself."""
        sources = frozenset(source_ids)
        if self.enabled and sources and kind not in STANDALONE_KINDS:
            for index in self._by_source.get(next(iter(sources)), ()):
                if sources <= self._sources[index]:
                    return index
        if self.full:
            return None
        index = len(self._sources)
        self._sources.append(sources)
        if (self.enabled and sources and len(sources) <= self.max_sources
                and kind not in STANDALONE_KINDS):
            for source in sources:
                self._by_source[source].append(index)
        return index

    def results(self) -> list[ScoredMemory]:
        return list(self._leaders)
