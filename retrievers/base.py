"""The one small interface every retrieval channel implements.

A channel gets the query text and what it may see, and returns its own ranked candidates.
Fusion only needs ranks, so channels never have to agree on a score scale, and adding a
channel (graph, temporal, ...) is adding a module and registering it, not editing fusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from memsvc.storage.base import Hit, VisibilityQuery


@dataclass(frozen=True)
class ChannelQuery:
    text: str
    visibility: VisibilityQuery
    now: datetime | None = None  # reference date for relative time expressions
    embedding: np.ndarray | None = None  # the query's vector, for channels that need one
    topic_embedding: np.ndarray | None = None  # its topic's vector (retrievers.topic), if any
    # which retrieval this is (`HybridRetriever` numbers them): the channels of one search
    # may share work, such as the graph's version check; None shares nothing
    search: int | None = None


class Channel(Protocol):
    """`needs_embedding` (optional, default False): the channel reads `query.embedding`;
    `needs_topic` (optional): it reads `query.topic_embedding`, the vector of what its
    `topic_of(query)` returns."""

    name: str

    def search(self, query: ChannelQuery, k: int) -> list[Hit]: ...
