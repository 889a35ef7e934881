"""Vector channel: cosine KNN over sqlite-vec, restricted to the scope inside the query."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, MemoryStore


class VectorChannel:
    name = "vector"

    def __init__(self, store: MemoryStore, embed_query: Callable[[str], np.ndarray]) -> None:
        self._store = store
        self._embed_query = embed_query

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        return self._store.vector_search(query.visibility, self._embed_query(query.text), k)
