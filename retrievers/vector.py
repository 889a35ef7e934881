"""Vector channel: cosine KNN over sqlite-vec, restricted to the scope inside the query."""

from __future__ import annotations

from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, MemoryStore


class VectorChannel:
    name = "vector"
    # the retriever embeds the query once, before the channels fan out (see hybrid.py)
    needs_embedding = True

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        if query.embedding is None:
            raise ValueError("the vector channel needs the query's embedding")
        return self._store.vector_search(query.visibility, query.embedding, k)
