"""BM25 statistics per scope: N, total length and n(t) per tenant+user, kept by triggers.

FTS5's `bm25()` counts documents and term frequencies over the whole file, so one tenant's
memories changed another user's scores. These tables hold what BM25 needs per scope, as the
PostgreSQL backend's `fts_scopes` / `fts_terms` do, and the store scores with them
(`storage/bm25_formula.py`):

- `memory_terms` (pk, term, tf): each memory's terms as FTS5 tokenizes them (same tokenizer,
  so stems agree with the MATCH), with `memory_fts_len` (pk, len) its length in tokens;
- `fts_terms` (tenant, user_key, term, df) and `fts_scopes` (tenant, user_key, n_docs,
  total_len), `user_key` being the user id or '' for memories of no user.

SQLite has no tokenize function, so the triggers borrow FTS5's: the new text goes into a
one-row FTS5 table (`fts_tok`), its `fts5vocab` view lists (term, count), and the row is
removed again, all inside the writing statement, so the statistics cannot drift from the
rows. Existing memories are indexed here, in pk order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TOKENIZE = "porter unicode61 remove_diacritics 2"  # memory_fts's, from migration 0001

# {pk}, {text}, {tenant}, {user}: `new.`/`old.` columns in a trigger, bound values in the
# backfill.
_ADD = """
INSERT INTO fts_tok(rowid, text) VALUES (1, {text});
INSERT INTO memory_terms(pk, term, tf) SELECT {pk}, term, cnt FROM fts_tok_vocab;
DELETE FROM fts_tok;
INSERT INTO memory_fts_len(pk, len)
    SELECT {pk}, coalesce(sum(tf), 0) FROM memory_terms WHERE pk = {pk};
INSERT INTO fts_terms(tenant, user_key, term, df)
    SELECT {tenant}, coalesce({user}, ''), term, 1 FROM memory_terms WHERE pk = {pk} AND 1
    ON CONFLICT DO UPDATE SET df = df + 1;
INSERT INTO fts_scopes(tenant, user_key, n_docs, total_len)
    SELECT {tenant}, coalesce({user}, ''), 1, len FROM memory_fts_len WHERE pk = {pk} AND 1
    ON CONFLICT DO UPDATE SET n_docs = n_docs + 1, total_len = total_len + excluded.total_len;
"""
_REMOVE = """
UPDATE fts_terms SET df = df - 1
    WHERE tenant = {tenant} AND user_key = coalesce({user}, '')
    AND term IN (SELECT term FROM memory_terms WHERE pk = {pk});
DELETE FROM fts_terms WHERE tenant = {tenant} AND user_key = coalesce({user}, '')
    AND term IN (SELECT term FROM memory_terms WHERE pk = {pk}) AND df <= 0;
UPDATE fts_scopes SET n_docs = n_docs - 1,
    total_len = total_len - coalesce((SELECT len FROM memory_fts_len WHERE pk = {pk}), 0)
    WHERE tenant = {tenant} AND user_key = coalesce({user}, '');
DELETE FROM fts_scopes WHERE tenant = {tenant} AND user_key = coalesce({user}, '')
    AND n_docs <= 0;
DELETE FROM memory_terms WHERE pk = {pk};
DELETE FROM memory_fts_len WHERE pk = {pk};
"""


def _body(template: str, row: str) -> str:
    return template.format(pk=f"{row}.pk", text=f"{row}.text", tenant=f"{row}.tenant",
                           user=f"{row}.user_id")


def upgrade() -> None:
    op.execute(f"CREATE VIRTUAL TABLE fts_tok USING fts5(text, tokenize='{TOKENIZE}')")
    op.execute("CREATE VIRTUAL TABLE fts_tok_vocab USING fts5vocab(fts_tok, row)")
    op.execute("CREATE TABLE memory_terms (pk INTEGER NOT NULL, term TEXT NOT NULL, "
               "tf INTEGER NOT NULL, PRIMARY KEY (pk, term)) WITHOUT ROWID")
    op.execute("CREATE TABLE memory_fts_len (pk INTEGER PRIMARY KEY, len INTEGER NOT NULL)")
    op.execute("CREATE TABLE fts_terms (tenant TEXT NOT NULL, user_key TEXT NOT NULL, "
               "term TEXT NOT NULL, df INTEGER NOT NULL, "
               "PRIMARY KEY (tenant, user_key, term)) WITHOUT ROWID")
    op.execute("CREATE TABLE fts_scopes (tenant TEXT NOT NULL, user_key TEXT NOT NULL, "
               "n_docs INTEGER NOT NULL, total_len INTEGER NOT NULL, "
               "PRIMARY KEY (tenant, user_key)) WITHOUT ROWID")
    conn = op.get_bind()
    rows = conn.execute(text("SELECT pk, text, tenant, user_id FROM memories ORDER BY pk")).all()
    backfill = [text(s) for s in _ADD.format(pk=":pk", text=":text", tenant=":tenant",
                                             user=":user").split(";") if s.strip()]
    for row in rows:
        params = {"pk": row.pk, "text": row.text, "tenant": row.tenant, "user": row.user_id}
        for statement in backfill:
            conn.execute(statement, params)
    op.execute(f"CREATE TRIGGER memories_bm25_ai AFTER INSERT ON memories BEGIN "
               f"{_body(_ADD, 'new')} END")
    op.execute(f"CREATE TRIGGER memories_bm25_ad AFTER DELETE ON memories BEGIN "
               f"{_body(_REMOVE, 'old')} END")
    op.execute(f"CREATE TRIGGER memories_bm25_au AFTER UPDATE OF text, tenant, user_id "
               f"ON memories BEGIN {_body(_REMOVE, 'old')} {_body(_ADD, 'new')} END")


def downgrade() -> None:
    for trigger in ("memories_bm25_au", "memories_bm25_ad", "memories_bm25_ai"):
        op.execute(f"DROP TRIGGER {trigger}")
    for table in ("fts_scopes", "fts_terms", "memory_fts_len", "memory_terms", "fts_tok_vocab",
                  "fts_tok"):
        op.execute(f"DROP TABLE {table}")
