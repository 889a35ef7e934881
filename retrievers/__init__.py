"""Read path: one module per channel, weighted reciprocal-rank fusion, and search plans."""

from memsvc.retrievers.base import Channel, ChannelQuery
from memsvc.retrievers.fusion import FusedHit, weighted_rrf
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import RECIPES, ChannelSpec, SearchPlan

__all__ = [
    "RECIPES",
    "Channel",
    "ChannelQuery",
    "ChannelSpec",
    "FusedHit",
    "HybridRetriever",
    "SearchPlan",
    "weighted_rrf",
]
