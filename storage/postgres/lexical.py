"""BM25 over PostgreSQL full text, scored like SQLite FTS5's `bm25()`.

`ts_rank` / `ts_rank_cd` have no inverse document frequency: a word in every memory weighs
as much as a rare name, which is what makes BM25 worth having next to the vectors. So the
score is computed in SQL with FTS5's formula and constants (`storage/bm25_formula.py`, which
the SQLite backend shares).

Statistics are per scope — the tenant's memories of the queried user, or the whole tenant
when the query names no user — and kept in the writing transaction by triggers
(`fts_scopes`: N and the total length; `fts_terms`: n(t) per lexeme; migration pg0001), so a
query reads them in a few index lookups. FTS5 counts over the whole file, every tenant
included; per-scope statistics rank a user's memories by what is rare for that user, and
leak nothing between tenants (the SQLite backend keeps the same statistics since its
migration 0007). f(t,d) comes from each match's `tsvector` cut down to the
query's lexemes (`setweight` marks them, `ts_filter` keeps them).

Pruning: a term in more than half of the scope has idf clamped to 1e-6, so a memory matching
only such terms can never outrank one matching any other term. Memories are therefore
matched on the informative terms only (scored on all of them), which spares walking the
postings of a word every memory holds. When that yields fewer than k memories, the store
asks again with `fill`: up to FILL more memories matching any term are scored too. That is
exactly FTS5's ranking whenever the scope has at most FILL such memories; beyond, the tail
of near-zero scores (≤ 2.2e-6 per term) is ranked among FILL arbitrary ones of them.

Terms go through the same configuration as the documents (`memsvc_english`: snowball
English stemming, stop words dropped, accents folded), so query and document agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, bindparam, select, text
from sqlalchemy.types import Boolean, Integer, String

from memsvc.storage.bm25_formula import (
    raw_idf_sql,
    term_score_sql,
    words_of_match,
    words_of_text,
)
from memsvc.storage.postgres.tables import pg_memories as memories

CONFIG = "memsvc_english"
FILL = 1000


def _scope(user_id: str | None, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"{prefix}tenant = :tenant" + (
        f" AND {prefix}user_id = :user_id" if user_id is not None else "")


def bm25_statement(user_id: str | None) -> TextClause:
    """Every memory of the scope matching a query term, with its BM25 score (`pk`, `score`,
    and `pruned`: whether terms were left out of the matching).

    Parameters: `tenant`, `user_id` (when given), `words` (the query's words, space-joined)
    `prune` and `fill` (how many memories matching any term, informative or not, to score
    besides those matching an informative one).
    """
    sql = f"""
        WITH q AS MATERIALIZED (
            SELECT tsvector_to_array(to_tsvector('{CONFIG}', :words)) AS terms
        ),
        st AS MATERIALIZED (
            SELECT coalesce(sum(n_docs), 0)::float8 AS n,
                   coalesce(sum(total_len)::float8 / nullif(sum(n_docs), 0), 0) AS avgdl
            FROM fts_scopes WHERE {_scope(user_id)}
        ),
        dfs AS MATERIALIZED (
            SELECT t.lexeme, {raw_idf_sql("st.n", "t.df")} AS raw_idf
            FROM (SELECT lexeme, sum(df)::float8 AS df FROM fts_terms, q
                  WHERE {_scope(user_id)} AND lexeme = ANY (q.terms) GROUP BY lexeme) t, st
            WHERE t.df > 0
        ),
        pick AS MATERIALIZED (
            SELECT
                memsvc_any_of(array_agg(lexeme) FILTER (
                    WHERE raw_idf > 0
                    OR NOT (:prune AND EXISTS (SELECT 1 FROM dfs WHERE raw_idf > 0))
                )) AS main,
                memsvc_any_of(array_agg(lexeme)) AS every
            FROM dfs
        ),
        candidates AS MATERIALIZED (
            (SELECT m.pk FROM pick, memories m
             WHERE {_scope(user_id, "m")} AND m.tsv @@ pick.main)
            UNION
            (SELECT m.pk FROM pick, memories m
             WHERE {_scope(user_id, "m")} AND m.tsv @@ pick.every LIMIT :fill)
        ),
        tf AS MATERIALIZED (
            SELECT m.pk, m.fts_len, t.lexeme, cardinality(t.positions) AS f
            FROM q, candidates c JOIN memories m USING (pk)
            CROSS JOIN LATERAL unnest(ts_filter(setweight(m.tsv, 'A', q.terms), '{{a}}')) t
        )
        SELECT tf.pk,
            (SELECT :prune AND bool_or(raw_idf <= 0) AND bool_or(raw_idf > 0) FROM dfs)
                AS pruned,
            sum({term_score_sql("d.raw_idf", "tf.f", "tf.fts_len", "st.avgdl",
                                greatest="greatest")}) AS score
        FROM tf JOIN dfs d USING (lexeme) CROSS JOIN st
        GROUP BY tf.pk
    """
    return text(sql).bindparams(
        bindparam("words", type_=String()), bindparam("prune", type_=Boolean()),
        bindparam("fill", type_=Integer()))


def ranked(
    words: list[str], tenant: str, user_id: str | None, where: ColumnElement[bool], k: int,
    *, fill: int = 0,
) -> tuple[Select[Any], dict[str, Any]]:
    """The top-k statement: scored matches joined back to the rows the query may see."""
    params: dict[str, Any] = {"tenant": tenant, "words": " ".join(words), "prune": True,
                              "fill": fill}
    if user_id is not None:
        params["user_id"] = user_id
    scored = (
        bm25_statement(user_id)
        .columns(pk=memories.c.pk.type, pruned=Boolean(), score=memories.c.confidence.type)
        .subquery("scored")
    )
    stmt = (
        select(memories.c.id, scored.c.score, scored.c.pruned)
        .select_from(scored.join(memories, memories.c.pk == scored.c.pk))
        .where(where)
        .order_by(scored.c.score.desc(), memories.c.id)
        .limit(k)
    )
    return stmt, params


__all__ = ["bm25_statement", "ranked", "words_of_match", "words_of_text"]
