"""Lexical search on SQLite: the user's text → a safe FTS5 query → BM25 over the scope.

The query is turned into an OR of its content words, each quoted, so user text can never be
read as FTS5 syntax, and so a memory matching some of the words still ranks (BM25 adds
candidates the vector channel missed, rather than only re-scoring its hits). The MATCH string
is built here, inside the backend, because it is FTS5's query language: another backend
turns the same text into its own (PostgreSQL: a tsquery).

FTS5 finds the matches; the score is not its `bm25()`, whose statistics span the whole file
(another tenant's memories would change this user's ranking), but the same formula over the
scope's statistics (`storage/bm25_formula.py`, tables of migration 0007). The query's words
become FTS5 terms (stemmed as the documents were) through an FTS5 table in the connection's
temp schema, each word once per process (`query_terms`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, Float, Integer, column, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from memsvc.storage.base import Hit, VisibilityQuery
from memsvc.storage.bm25_formula import raw_idf_sql, term_score_sql, words_of_match
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.schema import memories, scope_token
from memsvc.storage.sqlite.visibility_sql import visibility_sql
from memsvc.text.stopwords import STOPWORDS

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
TOKENIZE = "porter unicode61 remove_diacritics 2"  # memory_fts's (migration 0001)
QUERY_TOKENIZER = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_tok USING fts5(text, tokenize='{TOKENIZE}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_tok_instances "
    "USING fts5vocab(temp, query_tok, instance)",
)
# A word's FTS5 terms, as the tokenizer (fixed above) makes them: each word goes through the
# temp table once per process, not once per query. Cleared when full.
_WORD_TERMS: dict[str, tuple[str, ...]] = {}
WORD_TERMS_MAX = 100_000


def fts5_match(text: str) -> str:
    """An FTS5 MATCH string: the distinct content words of `text`, quoted, ORed."""
    words: list[str] = []
    for raw in _WORD.findall(text.lower()):
        word = raw.split("'")[0]
        if word and word not in STOPWORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{w}"' for w in words)


class _CrossJoin(Join):
    """`left CROSS JOIN right ON …`: the one join SQLite never reorders."""

    inherit_cache = True


@compiles(_CrossJoin, "sqlite")
def _compile_cross_join(element: _CrossJoin, compiler: Any, **kw: Any) -> str:
    # the last JOIN is this one's: the left side may be a subquery with joins of its own
    head, _, tail = str(compiler.visit_join(element, **kw)).rpartition(" JOIN ")
    return f"{head} CROSS JOIN {tail}"


def query_terms(conn: Connection, match: str) -> list[str]:
    """The FTS5 terms of a MATCH string's words (stemmed and folded as the index's), sorted.

    The tokenizer splits at spaces, so the terms of the words together are those of each
    word: a word not seen before is tokenized as a row of its own (the `instance` vocabulary
    says which row each term came from) and remembered."""
    words = words_of_match(match)
    known = {w: _WORD_TERMS.get(w) for w in words}
    missing = [w for w, terms in known.items() if terms is None]
    if missing:
        found: dict[int, set[str]] = {i: set() for i in range(1, len(missing) + 1)}
        conn.exec_driver_sql("DELETE FROM temp.query_tok")
        conn.exec_driver_sql("INSERT INTO temp.query_tok(rowid, text) VALUES (?, ?)",
                             list(enumerate(missing, 1)))
        for doc, term in conn.exec_driver_sql("SELECT doc, term FROM temp.query_tok_instances"):
            found[doc].add(term)
        conn.exec_driver_sql("DELETE FROM temp.query_tok")
        if len(_WORD_TERMS) + len(missing) > WORD_TERMS_MAX:
            _WORD_TERMS.clear()
        for i, word in enumerate(missing, 1):
            known[word] = _WORD_TERMS[word] = tuple(sorted(found[i]))
    return sorted({term for terms in known.values() if terms for term in terms})


def _scored_sql(user_scoped: bool, kinds_only: bool) -> str:
    """Every match of the MATCH expression with its BM25 score over the scope's statistics.

    The matches are materialized and drive the rest: each one's terms and length are looked
    up by primary key; statistics are a few rows of the scope's tables. With `kinds_only`
    the matches of other kinds (parameter `kinds`, a JSON list) are dropped before they are
    scored, one primary-key lookup each, instead of scored and dropped after: the write
    path's neighbour lookup asks for facts in scopes that are mostly episodes. The scores
    do not change: statistics stay the scope's, every kind included.
    """
    scope = "tenant = :tenant" + (" AND user_key = :user_key" if user_scoped else "")
    score = term_score_sql("d.raw_idf", "mt.tf", "l.len", "st.avgdl", greatest="max")
    matches = "SELECT rowid AS pk FROM memory_fts WHERE memory_fts MATCH :match"
    if kinds_only:
        matches = f"""SELECT f.pk FROM ({matches}) AS f
            CROSS JOIN memories AS m ON m.pk = f.pk
            WHERE m.kind IN (SELECT value FROM json_each(:kinds))"""
    return f"""
        WITH fts_matches AS MATERIALIZED (
            {matches}
        ),
        st AS MATERIALIZED (
            SELECT coalesce(sum(n_docs), 0) * 1.0 AS n,
                   coalesce(sum(total_len) * 1.0 / nullif(sum(n_docs), 0), 0) AS avgdl
            FROM fts_scopes WHERE {scope}
        ),
        dfs AS MATERIALIZED (
            SELECT t.term, {raw_idf_sql("st.n", "t.df")} AS raw_idf
            FROM (SELECT term, sum(df) AS df FROM fts_terms
                  WHERE {scope} AND term IN (SELECT value FROM json_each(:terms))
                  GROUP BY term) AS t, st
            WHERE t.df > 0
        )
        SELECT c.pk AS pk, sum({score}) AS score
        FROM fts_matches AS c
        CROSS JOIN dfs AS d
        CROSS JOIN memory_terms AS mt ON mt.pk = c.pk AND mt.term = d.term
        CROSS JOIN memory_fts_len AS l ON l.pk = c.pk
        CROSS JOIN st
        GROUP BY c.pk
    """


def bm25(
    conn: Connection, tenant: str, query: VisibilityQuery, match: str, k: int
) -> list[Hit]:
    """BM25 over the scope; `match` is an FTS5 query already made safe (`fts5_match`)."""
    if not match:
        return []
    terms = query_terms(conn, match)
    if not terms:
        return []
    user_id = query.scope.user_id
    expression = f"text : ({match})"
    params: dict[str, Any] = {"tenant": tenant, "terms": json.dumps(terms)}
    if user_id is not None:
        expression += f" AND fts_scope : {scope_token(tenant, user_id)}"
        params["user_key"] = user_id
    params["match"] = expression
    if query.kinds:
        params["kinds"] = json.dumps(list(query.kinds))
    visible = visibility_sql(tenant, query)
    if visible is not None:  # the statement as text: nothing to compose or compile
        condition, visible_params = visible
        scored_sql = _scored_sql(user_id is not None, bool(query.kinds))
        sql = (f"SELECT memories.id, scored.score FROM ({scored_sql}) AS scored "
               f"CROSS JOIN memories ON memories.pk = scored.pk "
               f"WHERE {condition} ORDER BY scored.score DESC, memories.id LIMIT :k")
        found = conn.exec_driver_sql(sql, {**params, **visible_params, "k": k}).fetchall()
        return [Hit(r[0], float(r[1])) for r in found]
    scored = (
        text(_scored_sql(user_id is not None, bool(query.kinds))).bindparams(**params)
        .columns(column("pk", Integer), column("score", Float))
        .subquery("scored")
    )
    # The scored matches drive the join (each looks its row up by primary key): left to
    # itself SQLite's planner walks a big scope's rows by index and probes the matches.
    stmt = (
        select(memories.c.id, scored.c.score)
        .select_from(_CrossJoin(scored, memories, memories.c.pk == scored.c.pk))
        .where(visibility_clause(tenant, query))
        .order_by(scored.c.score.desc(), memories.c.id)
        .limit(k)
    )
    return [Hit(r.id, float(r.score)) for r in conn.execute(stmt).all()]
