"""What only the PostgreSQL store has: row-level security, its roles and migration chain, the
HNSW path of the KNN, jsonb filters and BM25 measured against SQLite's FTS5."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError

from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope, StoredMessage
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.postgres.server import EmbeddedPostgres
from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DIM = 8
U1 = VisibilityQuery(scope=Scope(user_id="u1"))


def record(text_: str, user: str = "u1", **extra: Any) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id=user), kind=MemoryKind.FACT, text=text_,
        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text_), **extra,
    )


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v + [0.0] * (DIM - len(v)), dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url, embedding_dim=DIM)
    yield s
    s.close()


def _fill_two_tenants(store: PostgresStore) -> tuple[MemoryRecord, MemoryRecord]:
    mine, theirs = record("Ana lives in Paris", entities=["Ana"]), record("Ben lives in Rome")
    message = StoredMessage(id=new_id(), scope=Scope(user_id="u1"), role="user", name=None,
                            content="hi", timestamp=NOW, created_at=NOW)
    store.apply(WriteBatch(inserts=[(mine, unit([1.0]))], messages=[message]))
    store.for_tenant("acme").apply(WriteBatch(inserts=[(theirs, unit([1.0]))]))
    return mine, theirs


def test_an_unscoped_query_sees_only_its_own_tenant(store: PostgresStore) -> None:
    """Raw SQL with no tenant filter, through the store's own engine: row-level security."""
    mine, theirs = _fill_two_tenants(store)
    with store._read() as conn:
        ids = [r.id for r in conn.execute(text("SELECT * FROM memories"))]
        tenants = {r[0] for table in ("memories", "messages", "entities", "memory_entities",
                                      "graph_state")
                   for r in conn.exec_driver_sql(f"SELECT tenant FROM {table}")}
    assert ids == [mine.id]
    assert tenants == {"default"}
    with store.for_tenant("acme")._read() as conn:
        assert [r.id for r in conn.execute(text("SELECT id FROM memories"))] == [theirs.id]
    with store.engine.connect() as conn:  # no tenant set at all: nothing
        assert conn.execute(text("SELECT count(*) FROM memories")).scalar_one() == 0


def test_a_row_for_another_tenant_cannot_be_written(store: PostgresStore) -> None:
    with pytest.raises(DBAPIError, match="row-level security"), store._read() as conn:
        conn.execute(text(
            "INSERT INTO graph_state (tenant, user_id, version) VALUES ('acme', 'u1', 1)"))


def test_the_store_works_as_an_unprivileged_role(store: PostgresStore) -> None:
    with store._read() as conn:
        user, superuser, bypass = conn.execute(text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user")).one()
        forced = dict(conn.execute(text(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE relname IN ('memories', 'messages', 'history', 'entities', "
            "'memory_entities', 'entity_relations', 'graph_state') "
            "AND relnamespace = current_schema()::regnamespace")).all())
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert (user, superuser, bypass) == ("memsvc_app", False, False)
    assert len(forced) == 7 and all(forced.values())
    # the superuser URL migrated the schema on open, to the newest revision
    from alembic.script import ScriptDirectory

    from memsvc.storage.postgres.engine import migration_config

    assert revision == ScriptDirectory.from_config(migration_config()).get_current_head()


def test_the_app_role_does_not_carry_the_owners_password(pg_url: str) -> None:
    """The embedded server trusts its socket, so a password in the URL is accepted and must
    not be handed on to memsvc_app's connections."""
    url = make_url(pg_url).set(password="owner-secret").render_as_string(False)
    store = PostgresStore(url, embedding_dim=DIM)
    try:
        assert store.engine.url.username == "memsvc_app"
        assert store.engine.url.password is None
        assert store.engine.url.query == make_url(pg_url).query
    finally:
        store.close()


def test_stores_in_two_schemas_of_a_fresh_database_share_its_extensions(
    pg_server: EmbeddedPostgres,
) -> None:
    """A database without unaccent or pgvector: the first store must not create them in its
    own schema, where the second could not see them and a DROP SCHEMA would take them."""
    database = f"fresh_{new_id()[:8].lower()}"
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    try:
        with psycopg.connect(pg_server.conninfo(database), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA first; CREATE SCHEMA second")
            assert conn.execute("SELECT count(*) FROM pg_extension "
                                "WHERE extname IN ('vector', 'unaccent')").fetchone() == (0,)
        base = make_url(pg_server.url(database))

        def url(schema: str) -> str:
            options = {"options": f"-csearch_path={schema},public"}
            return base.update_query_dict(options).render_as_string(False)

        one = PostgresStore(url("first"), embedding_dim=DIM)
        one.apply(WriteBatch(inserts=[(record("Ana visited Zürich"), unit([1.0]))]))
        one.close()
        with psycopg.connect(pg_server.conninfo(database), autocommit=True) as conn:
            homes = dict(conn.execute(
                "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace").fetchall())
            assert homes["vector"] == homes["unaccent"] == "public"
            conn.execute("DROP SCHEMA first CASCADE")
        two = PostgresStore(url("second"), embedding_dim=DIM)
        try:
            two.apply(WriteBatch(inserts=[(record("Ben visited Zurich"), unit([1.0]))]))
            hits = two.lexical_search(U1, "zurich", 5)  # accents folded by unaccent
            assert len(hits) == 1
        finally:
            two.close()
    finally:
        with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {database} WITH (FORCE)")


def test_an_unprivileged_owner_is_filtered_too(pg_server: EmbeddedPostgres, pg_url: str) -> None:
    """A URL whose role owns the tables but is no superuser: the store works as it, and
    FORCE ROW LEVEL SECURITY still applies the policies to it."""
    schema = make_url(pg_url).query["options"].split("=")[1].split(",")[0]
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute("DO $$ BEGIN CREATE ROLE memsvc_owner_test LOGIN; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA {schema} TO memsvc_owner_test")
    url = make_url(pg_url).set(username="memsvc_owner_test").render_as_string(False)
    owned = PostgresStore(url, embedding_dim=DIM)
    try:
        assert owned.engine.url.username == "memsvc_owner_test"
        mine, _ = _fill_two_tenants(owned)
        with owned._read() as conn:
            assert [r.id for r in conn.execute(text("SELECT id FROM memories"))] == [mine.id]
    finally:
        owned.close()


def test_large_scopes_walk_the_hnsw_index_with_the_scope_inside(pg_url: str) -> None:
    """300 vectors of u2 are closer to the query than any of u1's 40. The index path's
    statement, run on the HNSW index (as the planner does on a big table), walks past them
    with the iterative scan and returns exactly what the exact path returns."""
    exact = PostgresStore(pg_url, embedding_dim=DIM)
    indexed = PostgresStore(pg_url, embedding_dim=DIM, exact_search_below=1)
    rng = np.random.default_rng(3)
    crowd = [(record(f"crowd {i}", "u2"), unit([1.0, 0.01 * i])) for i in range(300)]
    mine = [(record(f"mine {i}", "u1"), rng.standard_normal(DIM)) for i in range(40)]
    exact.apply(WriteBatch(inserts=[*crowd, *mine]))
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(indexed.engine, "before_cursor_execute", capture)
    try:
        got = indexed.vector_search(U1, unit([1.0]), 10)
    finally:
        event.remove(indexed.engine, "before_cursor_execute", capture)
    want = exact.vector_search(U1, unit([1.0]), 10)
    assert [h.memory_id for h in got] == [h.memory_id for h in want]
    assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(got, want, strict=True))
    statement, parameters = next((s, p) for s, p in statements if "candidates" in s)
    with indexed._read() as conn:
        for name, value in (("enable_seqscan", "off"), ("enable_sort", "off"),
                            ("hnsw.ef_search", "10"), ("hnsw.iterative_scan", "off")):
            conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
        plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        plain = conn.exec_driver_sql(statement, parameters).all()
        conn.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))
        iterative = conn.exec_driver_sql(statement, parameters).all()
    assert "ix_memories_embedding" in plan
    assert len(plain) < 10  # without the iterative scan the scope starves the top 10
    assert [r.id for r in iterative] == [h.memory_id for h in want]
    exact.close()
    indexed.close()


def _both(tmp_path: Path, pg_url: str) -> tuple[SQLiteStore, PostgresStore]:
    return SQLiteStore(tmp_path / "s.db", embedding_dim=DIM), PostgresStore(pg_url,
                                                                           embedding_dim=DIM)


FILTERS = [
    {"topic": "food"}, {"topic": {"ne": "food"}}, {"topic": {"in": ["food", "work"]}},
    {"topic": {"nin": ["food"]}}, {"n": {"gt": 2}}, {"n": {"lte": 2}}, {"n": 3.0},
    {"flag": True}, {"flag": {"ne": None}}, {"missing": None}, {"nested.key": "x"},
    {"OR": [{"topic": "work"}, {"n": {"gte": 5}}]}, {"NOT": {"topic": "food"}},
    {"date": {"gte": "2024-02-01"}}, {"kind": "fact", "importance": {"gt": 0.4}},
]


def test_metadata_filters_select_what_sqlite_selects(tmp_path: Path, pg_url: str) -> None:
    metadata = [
        {"topic": "food", "n": 1, "flag": True, "date": "2024-01-15"},
        {"topic": "work", "n": 3, "flag": False, "nested": {"key": "x"}},
        {"topic": "food", "n": 5.5, "nested": {"key": "y"}, "date": "2024-03-01"},
        {"topic": None, "n": None},
        {},
    ]
    recs = [(record(f"m{i}", metadata=m), unit([1.0, i])) for i, m in enumerate(metadata)]
    lite, pg = _both(tmp_path, pg_url)
    for s in (lite, pg):
        s.apply(WriteBatch(inserts=recs))
    names = {r.id: r.text for r, _ in recs}
    try:
        for raw in FILTERS:
            query = VisibilityQuery(scope=Scope(user_id="u1"), filters=parse_filters(raw))
            want = sorted(names[r.id] for r in lite.list_memories(query, limit=10)[0])
            got = sorted(names[r.id] for r in pg.list_memories(query, limit=10)[0])
            assert got == want, raw
        # where they differ, on purpose: ordering compares JSON values of the operand's type
        # only; SQLite's json_extract would call any text greater than any number
        text_seven = record("m7", metadata={"n": "7"})
        pg.apply(WriteBatch(inserts=[(text_seven, unit([1.0]))]))
        query = VisibilityQuery(scope=Scope(user_id="u1"), filters=parse_filters({"n": {"gt": 2}}))
        assert sorted(r.text for r in pg.list_memories(query, limit=10)[0]) == ["m1", "m2"]
    finally:
        lite.close()
        pg.close()


CORPUS = [
    "Ana adopted a guinea pig named Oscar last spring",
    "Oscar the guinea pig loves fresh hay and carrots",
    "Ana works as a nurse at the city hospital",
    "Ben plays jazz piano in a small band on Fridays",
    "Ben and Ana went hiking in the mountains in July",
    "The mountains near Denver were covered in snow",
    "Ana is learning to play the piano",
    "Ben moved from Boston to Denver for a new job",
    "Carla painted a sunset over the lake",
    "Carla and Ana met at a painting class",
    "The band released its first jazz album",
    "Ana's hospital shifts are long on weekends",
    "Ben likes carrots but hates hay fever season",
    "A guinea pig needs vitamin C every day",
    "Denver has many breweries and bike lanes",
]
QUERIES = ['"guinea" OR "pig" OR "hay"', '"ana" OR "piano"', '"jazz" OR "band" OR "album"',
           '"denver" OR "mountains" OR "snow"', '"hospital" OR "nurse" OR "shifts"',
           '"carla" OR "painting"', '"ben" OR "boston" OR "job"', '"carrots"']


def test_bm25_scores_as_fts5_does(tmp_path: Path, pg_url: str) -> None:
    """Same corpus, one scope: the same memories, the same best one, scores within 3%
    (documents are counted in slightly different tokens, so not to the last digit)."""
    recs = [(record(t), unit([1.0])) for t in CORPUS]
    lite, pg = _both(tmp_path, pg_url)
    for s in (lite, pg):
        s.apply(WriteBatch(inserts=recs))
    try:
        for match in QUERIES:
            want = {h.memory_id: h.score for h in lite.bm25_search(U1, match, 5)}
            got = pg.bm25_search(U1, match, 5)
            assert got[0].memory_id == next(iter(want)), match
            assert {h.memory_id for h in got} == set(want), match
            assert all(abs(h.score - want[h.memory_id]) < 0.03 * want[h.memory_id]
                       for h in got), match
    finally:
        lite.close()
        pg.close()


def test_lexical_search_takes_raw_text(store: PostgresStore) -> None:
    cafe, other = record("Dinner at the Café Olé with Ana"), record("Lunch with Ben")
    store.apply(WriteBatch(inserts=[(cafe, unit([1.0])), (other, unit([1.0]))]))
    for raw in ('cafe "ole"', "CAFÉ!!", "café OR NEAR(x) AND -ole*", "dinners:"):
        assert [h.memory_id for h in store.lexical_search(U1, raw, 5)] == [cafe.id], raw
    assert store.lexical_search(U1, "the and of ?!", 5) == []  # stop words only


def test_api_keys_live_in_the_database(store: PostgresStore) -> None:
    keys = ApiKeyStore(store.engine)
    info, key = keys.create("ci", "acme")
    assert keys.resolve(key) == "acme"
    keys.revoke(info.id)
    keys.clear_cache()
    assert keys.resolve(key) is None and keys.count_active() == 0


def test_concurrent_writers_share_one_entity_row(store: PostgresStore) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(5):
                rec = record(f"Oscar note {i}-{j}", entities=["Oscar", f"Thing{i}"])
                store.apply(WriteBatch(inserts=[(rec, unit([1.0, i, j]))]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = [name for name, _ in store.graph_data(Scope(user_id="u1")).entities.values()]
    # the concept "note" (memsvc.text.concepts, stored as its stem) is one shared row too
    assert sorted(names) == ["Oscar", "Thing0", "Thing1", "Thing2", "Thing3", "~not"]
    assert len(store.graph_data(Scope(user_id="u1")).links) == 60


def test_bm25_statistics_follow_every_write(store: PostgresStore) -> None:
    """The per-scope document counts and frequencies the triggers keep match a recount after
    inserts, text and user changes, status-only updates, hard deletes and scope deletes."""
    a, b, c = record("red apples and red pears"), record("green apples"), record("plums", "u2")
    store.apply(WriteBatch(inserts=[(a, unit([1.0])), (b, unit([1.0])), (c, unit([1.0]))]))
    assert store.consistency()["fts_stats_drift"] == 0
    with store._read() as conn:
        df = dict(conn.execute(text(
            "SELECT lexeme, df FROM fts_terms WHERE user_id = 'u1'")).all())
        scope = conn.execute(text(
            "SELECT n_docs, total_len FROM fts_scopes WHERE user_id = 'u1'")).one()
    assert df == {"red": 1, "appl": 2, "pear": 1, "green": 1}
    assert tuple(scope) == (2, 5 + 2)  # "red apples and red pears" is 5 tokens long
    store.apply(WriteBatch(updates=[
        (a.model_copy(update={"text": "yellow bananas"}), None),
        (b.model_copy(update={"scope": Scope(user_id="u2")}), None),
    ]))
    store.record_access({c.id: (3, NOW)})
    assert store.consistency()["fts_stats_drift"] == 0
    store.apply(WriteBatch(hard_deletes=[c.id]))
    assert store.consistency()["fts_stats_drift"] == 0
    store.delete_scope(Scope(user_id="u2"), hard=True, at=NOW, actor="test")
    consistency = store.consistency()
    assert consistency["fts_stats_drift"] == 0 and consistency["consistent"]
    with store._read() as conn:
        assert conn.execute(text(
            "SELECT n_docs FROM fts_scopes WHERE user_id = 'u2'")).scalar_one() == 0


def test_common_words_are_pruned_from_the_matching_not_from_the_ranking(
    store: PostgresStore,
) -> None:
    """'note' is in every memory (idf clamped): matching skips it when the rare word finds
    enough memories, and scores still count it; with too few, the memories holding only the
    common word fill the rest, as FTS5 would rank them."""
    rows = [(record(f"note {i} " + ("about rivers" if i < 12 else "other")), unit([1.0]))
            for i in range(40)]
    store.apply(WriteBatch(inserts=rows))
    hits = store.lexical_search(U1, "note rivers", 10)
    assert {h.memory_id for h in hits} <= {r.id for r, _ in rows[:12]} and len(hits) == 10
    few = store.lexical_search(U1, "note rivers", 20)
    assert len(few) == 20 and {h.memory_id for h in few[:12]} == {r.id for r, _ in rows[:12]}
    assert all(h.score < 1e-4 for h in few[12:])


def test_vectors_travel_in_binary_and_come_back_bit_for_bit(store: PostgresStore) -> None:
    """Every connection of the store's pool dumps a vector in pgvector's binary form (not the
    20-characters-a-float text), and a stored vector reads back exactly."""
    from pgvector import Vector
    from psycopg.adapt import PyFormat
    from psycopg.pq import Format

    rng = np.random.default_rng(7)
    rec = record("a vector round trip")
    vector = rng.standard_normal(store.embedding_dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    store.apply(WriteBatch(inserts=[(rec, vector)]))
    assert np.array_equal(store.embeddings([rec.id])[rec.id], vector)
    for _ in range(2):  # a second connection registers from the cached type info
        with store.engine.connect() as conn, store.engine.connect() as other:
            for c in (conn, other):
                raw = c.connection.driver_connection
                assert raw is not None
                assert raw.adapters.get_dumper(Vector, PyFormat.AUTO).format == Format.BINARY
