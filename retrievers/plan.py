"""A search described as a value: which channels, their weights and depth, and the limit.

`search()` takes a plan or builds one from a recipe, instead of threading flags through the
read path. Recipes name the useful trade-offs between speed and recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class ChannelSpec:
    weight: float = 1.0
    k: int = 50  # how many candidates this channel contributes before fusion


@dataclass(frozen=True)
class SearchPlan:
    channels: dict[str, ChannelSpec] = field(
        default_factory=lambda: {"vector": ChannelSpec(), "bm25": ChannelSpec()}
    )
    limit: int = 10
    # RRF's k: how flat the rank weights are. The classic 60 suits long, comparable lists; with
    # a few channels of 50, a small k lets one channel's top hit outrank memories that sit in
    # the middle of several lists (LoCoMo dev R@10: 0.569 → 0.649 raw, 0.720 → 0.752 infer;
    # every k ≤ 10 lands within 0.01, a plateau rather than a tuned point).
    rrf_k: int = 10
    track_access: bool = True  # count hits towards access_count (feeds decay)

    def with_limit(self, limit: int) -> SearchPlan:
        return replace(self, limit=limit)

    def with_weights(self, **weights: float) -> SearchPlan:
        channels = {
            name: replace(spec, weight=weights.get(name, spec.weight))
            for name, spec in self.channels.items()
        }
        return replace(self, channels=channels)

    def describe(self) -> dict[str, Any]:
        return {
            "channels": {n: {"weight": s.weight, "k": s.k} for n, s in self.channels.items()},
            "limit": self.limit,
            "rrf_k": self.rrf_k,
        }


# Graph and temporal weigh less than the text channels: they add candidates the text channels
# miss (a memory about the guinea pig the question names, an event in the month it names)
# and are silent when the question names no entity or time. Weights measured on the LoCoMo
# dev conversations (evals/locomo.py); see the issue 3 closing note.
GRAPH_WEIGHT = 0.5
TEMPORAL_WEIGHT = 0.5
# The vector search on the question without the frequent names it holds (retrievers.topic):
# beside the full question, not instead of it. Measured as the others.
TOPIC_WEIGHT = 0.7

RECIPES: dict[str, SearchPlan] = {
    "fast": SearchPlan(channels={"vector": ChannelSpec(k=20), "bm25": ChannelSpec(k=20)}),
    "balanced": SearchPlan(
        channels={
            "vector": ChannelSpec(),
            "bm25": ChannelSpec(),
            "graph": ChannelSpec(weight=GRAPH_WEIGHT),
            "temporal": ChannelSpec(weight=TEMPORAL_WEIGHT),
            "topic": ChannelSpec(weight=TOPIC_WEIGHT),
        }
    ),
    "deep": SearchPlan(
        channels={
            "vector": ChannelSpec(k=100),
            "bm25": ChannelSpec(k=100),
            "graph": ChannelSpec(weight=GRAPH_WEIGHT, k=100),
            "temporal": ChannelSpec(weight=TEMPORAL_WEIGHT, k=100),
            "topic": ChannelSpec(weight=TOPIC_WEIGHT, k=100),
        }
    ),
}


class PlanWeights(Protocol):
    """What `recipe` reads from settings (`memsvc.model.settings.Settings` has these)."""

    vector_weight: float
    bm25_weight: float
    rrf_k: int


def recipe(name: str, weights: PlanWeights | None = None) -> SearchPlan:
    """The recipe `name` with the configured vector/BM25 weights and RRF k applied.

    `Memory` picks every named plan through this (the default "balanced" and a `plan="deep"`
    alike), so ``MEMSVC_VECTOR_WEIGHT`` and friends mean the same whichever way the plan was
    chosen. Raises KeyError for an unknown name.
    """
    plan = RECIPES[name]
    if weights is None:
        return plan
    return replace(plan.with_weights(vector=weights.vector_weight, bm25=weights.bm25_weight),
                   rrf_k=weights.rrf_k)
