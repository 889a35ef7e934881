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
