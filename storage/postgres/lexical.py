"""BM25 over PostgreSQL full text, scored like SQLite FTS5's `bm25()`.

`ts_rank` / `ts_rank_cd` have no inverse document frequency: a word in every memory weighs
as much as a rare name, which is what makes BM25 worth having next to the vectors. So the
score is computed in SQL from the stored `tsvector`s, with FTS5's formula and constants:

    score(d) = Σ_t idf(t) · f(t,d)·(k1+1) / (f(t,d) + k1·(1 − b + b·|d|/avgdl))
    idf(t)   = max(ln((N − n(t) + 0.5) / (n(t) + 0.5)), 1e-6),   k1 = 1.2, b = 0.75

Statistics are per scope, computed at query time (nothing to keep in step on writes):
N and avgdl over the tenant's memories of the queried user (an index-only scan of
`ix_memories_user`, which carries `fts_len`), n(t) and f(t,d) from the memories of that
population that match some query term (the GIN index on `tsv`). A match's term frequencies
come from its `tsvector` cut down to the query's lexemes first (`setweight` marks them,
`ts_filter` keeps them): unnesting whole vectors was twice as slow. FTS5 counts over the whole
file, every tenant included; per-scope statistics rank a user's memories by what is rare for
that user, and leak nothing between tenants.

Terms go through the same configuration as the documents (`memsvc_english`: snowball
English stemming, stop words dropped, accents folded), so query and document agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, bindparam, select, text
from sqlalchemy.types import String

from memsvc.storage.postgres.tables import pg_memories as memories

K1 = 1.2
B = 0.75
CONFIG = "memsvc_english"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def words_of_text(raw: str) -> list[str]:
    """The distinct words of a user's query, in order (stop words are left to the database)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(raw)))


def words_of_match(match: str) -> list[str]:
    """The words of an FTS5 MATCH string as `bm25_search` callers build it (`"a" OR "b"`)."""
    quoted = _QUOTED.findall(match)
    return words_of_text(" ".join(quoted) if quoted else match)


def _scope_filter(user_id: str | None, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    where = f"{prefix}tenant = :tenant"
    return where + (f" AND {prefix}user_id = :user_id" if user_id is not None else "")


def bm25_statement(words: Iterable[str], user_id: str | None) -> TextClause:
    """Every memory of the population matching some word, with its BM25 score (`pk`, `score`).

    `words` are plain words (letters and digits only), so joining them with `|` is a
    well-formed tsquery whatever the user typed.
    """
    population = _scope_filter(user_id)
    sql = f"""
        WITH q AS MATERIALIZED (
            SELECT tsvector_to_array(to_tsvector('{CONFIG}', :words)) AS terms,
                   to_tsquery('{CONFIG}', :tsquery) AS tsq
        ),
        stats AS (
            SELECT count(*)::float8 AS n, coalesce(avg(fts_len), 0)::float8 AS avgdl
            FROM memories WHERE {population}
        ),
        tf AS MATERIALIZED (
            SELECT m.pk, m.fts_len, t.lexeme, cardinality(t.positions) AS f
            FROM q, memories m
            CROSS JOIN LATERAL unnest(ts_filter(setweight(m.tsv, 'A', q.terms), '{{a}}')) t
            WHERE {_scope_filter(user_id, "m")} AND m.tsv @@ q.tsq
        ),
        df AS (SELECT lexeme, count(*)::float8 AS n FROM tf GROUP BY lexeme)
        SELECT tf.pk, sum(
            greatest(ln((s.n - df.n + 0.5) / (df.n + 0.5)), 1e-6)
            * tf.f * {K1 + 1}
            / (tf.f + {K1} * (1 - {B} + {B} * tf.fts_len / greatest(s.avgdl, 1)))
        ) AS score
        FROM tf JOIN df USING (lexeme) CROSS JOIN stats s
        GROUP BY tf.pk
    """
    return text(sql).bindparams(
        bindparam("tsquery", " | ".join(words), type_=String()),
        bindparam("words", " ".join(words), type_=String()),
    )


def ranked(
    words: list[str], tenant: str, user_id: str | None, where: ColumnElement[bool], k: int
) -> tuple[Select[Any], dict[str, Any]]:
    """The top-k statement: scored matches joined back to the rows the query may see."""
    params: dict[str, Any] = {"tenant": tenant}
    if user_id is not None:
        params["user_id"] = user_id
    scored = (
        bm25_statement(words, user_id)
        .columns(pk=memories.c.pk.type, score=memories.c.confidence.type)
        .subquery("scored")
    )
    stmt = (
        select(memories.c.id, scored.c.score)
        .select_from(scored.join(memories, memories.c.pk == scored.c.pk))
        .where(where)
        .order_by(scored.c.score.desc(), memories.c.id)
        .limit(k)
    )
    return stmt, params


__all__ = ["bm25_statement", "ranked", "words_of_match", "words_of_text"]
