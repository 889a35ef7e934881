"""BM25 as SQL text, shared by both backends, with SQLite FTS5's formula and constants:

    score(d) = Σ_t idf(t) · f(t,d)·(k1+1) / (f(t,d) + k1·(1 − b + b·|d|/avgdl))
    idf(t)   = max(ln((N − n(t) + 0.5) / (n(t) + 0.5)), 1e-6),   k1 = 1.2, b = 0.75

Each backend computes N, n(t), |d| and avgdl over one scope (the tenant's memories of the
queried user, or the whole tenant when no user is named), from tables its triggers keep, so a
user's ranking never depends on anyone else's data; the formula itself lives only here. It
also turns the FTS5 MATCH strings the store is handed back into words.
"""

from __future__ import annotations

import re

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def raw_idf_sql(n: str, df: str) -> str:
    """ln((N − n(t) + 0.5) / (n(t) + 0.5)), before the clamp (≤ 0: a term in half the scope)."""
    return f"ln(({n} - {df} + 0.5) / ({df} + 0.5))"


def term_score_sql(raw_idf: str, f: str, dl: str, avgdl: str, *, greatest: str) -> str:
    """One term's contribution to a document's score; `greatest` names the SQL function of
    the larger of two numbers (`greatest` on PostgreSQL, two-argument `max` on SQLite)."""
    return (f"{greatest}({raw_idf}, {MIN_IDF}) * {f} * {K1 + 1} / "
            f"({f} + {K1} * (1 - {B} + {B} * {dl} / {greatest}({avgdl}, 1)))")


def words_of_text(raw: str) -> list[str]:
    """The distinct words of a user's query, in order (stop words are left to the database)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(raw)))


def words_of_match(match: str) -> list[str]:
    """The words of an FTS5 MATCH string as `bm25_search` callers build it (`"a" OR "b"`)."""
    quoted = _QUOTED.findall(match)
    return words_of_text(" ".join(quoted) if quoted else match)
