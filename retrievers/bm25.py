"""BM25 channel: the store's full-text ranking of the query's words (FTS5 on SQLite).

The channel hands the store the user's text as it is; turning it into a query the full-text
index understands, safely, is the backend's job (see `LexicalSearch`), so the channel works
unchanged on any backend.
"""

from __future__ import annotations

from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, LexicalSearch


class BM25Channel:
    name = "bm25"

    def __init__(self, store: LexicalSearch) -> None:
        self._store = store

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        return self._store.lexical_search(query.visibility, query.text, k)
