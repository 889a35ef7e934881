"""Weighted reciprocal-rank fusion.

RRF needs only each channel's ranking, so channels with incomparable scores (cosine, BM25,
graph walks) combine without calibration; the weights say how much each channel is trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from memsvc.storage.base import Hit


@dataclass
class FusedHit:
    memory_id: str
    score: float = 0.0
    channel_scores: dict[str, float] = field(default_factory=dict)
    channel_ranks: dict[str, int] = field(default_factory=dict)


def weighted_rrf(
    rankings: Mapping[str, list[Hit]], weights: Mapping[str, float], *, k: int = 60
) -> list[FusedHit]:
    """Fuse ranked lists: score = Σ_channel weight / (k + rank), ranks starting at 1."""
    fused: dict[str, FusedHit] = {}
    for channel, hits in rankings.items():
        weight = weights.get(channel, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.memory_id, FusedHit(hit.memory_id))
            entry.score += weight / (k + rank)
            entry.channel_scores[channel] = hit.score
            entry.channel_ranks[channel] = rank
    return sorted(fused.values(), key=lambda h: (-h.score, h.memory_id))


def favour_focus(hits: list[FusedHit], focus: frozenset[str], bonus: float) -> list[FusedHit]:
    """Raise the fused score of the hits in `focus` by the factor 1 + `bonus`, and re-sort.

    A multiplier, not a channel of its own: the focus (every memory of a person the query
    names) has no order, so it reorders what the ranking channels found instead of adding
    candidates. A focus that holds every hit changes nothing.
    """
    if not focus or bonus <= 0:
        return hits
    for hit in hits:
        if hit.memory_id in focus:
            hit.score *= 1.0 + bonus
    return sorted(hits, key=lambda h: (-h.score, h.memory_id))
