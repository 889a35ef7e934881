"""English function words, shared by lexical search, the graph channel and consolidation.

They only add cost to a lexical query (BM25's IDF already discounts them, but each one would
pull thousands of postings through the join) and are never entity names or content words.
One list, so every backend's lexical search and the read path agree on what a content word is.
"""

from __future__ import annotations

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
