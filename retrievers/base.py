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


@dataclass(frozen=True)
class ChannelResult:
    """A channel's ranking plus its focus: memories the query is about as a whole (those of
    a person it names), which fusion favours in every channel's ranking rather than ranking
    them itself (`fusion.favour_focus`)."""

    hits: list[Hit]
    focus: frozenset[str] = frozenset()


class Channel(Protocol):
    """`needs_embedding` (optional, default False): the channel reads `query.embedding`.
    `search_focused(query, k) -> ChannelResult` (optional): the ranking and a focus."""

    name: str

    def search(self, query: ChannelQuery, k: int) -> list[Hit]: ...
