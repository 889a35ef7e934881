"""BM25 channel: SQLite FTS5 over memory text.

The query is turned into an OR of its content words, each quoted, so user text can never be
read as FTS5 syntax, and so a memory matching some of the words still ranks (BM25 adds
candidates the vector channel missed, rather than only re-scoring its hits).
"""

from __future__ import annotations

import re

from memsvc.retrievers.base import ChannelQuery
from memsvc.storage.base import Hit, MemoryStore

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)

# Function words that only add cost: BM25's IDF already discounts them, but each one would
# pull thousands of postings through the join.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves s t don""".split()
)


def match_expression(text: str) -> str:
    """An FTS5 MATCH string: the distinct content words of `text`, quoted, ORed."""
    words: list[str] = []
    for raw in _WORD.findall(text.lower()):
        word = raw.split("'")[0]
        if word and word not in STOPWORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{w}"' for w in words)


class BM25Channel:
    name = "bm25"

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        return self._store.bm25_search(query.visibility, match_expression(query.text), k)
