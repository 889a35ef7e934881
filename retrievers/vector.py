"""Vector channel: the store's cosine KNN (sqlite-vec on SQLite), restricted to the scope."""

from __future__ import annotations

from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, VectorSearch


class VectorChannel:
    name = "vector"
    # the retriever embeds the query once, before the channels fan out (see hybrid.py)
    needs_embedding = True

    def __init__(self, store: VectorSearch) -> None:
        self._store = store

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        if query.embedding is None:
            raise ValueError("the vector channel needs the query's embedding")
        return self._store.vector_search(query.visibility, query.embedding, k)
