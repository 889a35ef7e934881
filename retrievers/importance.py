"""How a memory's `importance` weighs on its rank.

A turn that says nothing ("Agreed!", "Thanks, Melanie!") matches any question naming the
person it addresses, and being short it matches strongly, on both channels: on the LoCoMo dev
conversations the 15 turns with at most two content words took 119 of the top-10 places of
the 231 scored questions, and held none of their evidence. The episode extractor gives such
turns a low importance (`extractors.episode`); a search multiplies each hit's fused score by
`rank_factor(importance)`, so a memory below the default importance (0.5) ranks lower and one
at or above it is left as it is (importance above the default says "keep it longer", for
decay, not "rank it above better matches").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from memsvc.model.records import DEFAULT_IMPORTANCE
from memsvc.retrievers.fusion import FusedHit

MIN_FACTOR = 0.2  # an importance of 0 still ranks, five times lower


def rank_factor(importance: float) -> float:
    """The multiplier of a fused score for a memory of this importance (0.2 to 1)."""
    return min(1.0, max(MIN_FACTOR, importance / DEFAULT_IMPORTANCE))


def by_importance(hits: Sequence[FusedHit], importance: Mapping[str, float]
                  ) -> list[FusedHit]:
    """`hits` re-ranked by score × `rank_factor`, as new hits (the given ones are left as
    they are); a hit whose importance is unknown (not in `importance`) keeps its score. The
    sort is stable."""
    weighed = []
    for hit in hits:
        value = importance.get(hit.memory_id)
        weighed.append(hit if value is None else replace(hit, score=hit.score * rank_factor(value)))
    return sorted(weighed, key=lambda h: -h.score)
