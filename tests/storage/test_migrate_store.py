"""`memsvc migrate-store`: SQLite → PostgreSQL → SQLite keeps everything, re-running copies
nothing twice, and bad input is one line, exit 2, with nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from memsvc.cli.main import app
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    HistoryEvent,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Scope,
    StoredMessage,
)
from memsvc.storage.base import HistoryDraft, MemoryStore, WriteBatch
from memsvc.storage.factory import open_auditor, open_store
from memsvc.storage.postgres.server import EmbeddedPostgres

DIM = 8
NOW = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
runner = CliRunner()


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def memory(text: str, user: str, n: int, **extra: Any) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id=user, agent_id="bot", session_id=f"s{n % 2}"),
        kind=MemoryKind.FACT, text=text, created_at=NOW + timedelta(seconds=n),
        updated_at=NOW + timedelta(seconds=n), content_hash=content_hash("fact", text),
        **extra,
    )


def fill(store: MemoryStore, tenant: str, n: int, start: int = 0) -> None:
    """`n` memories of two users (entities, relations, statuses, metadata), a message each,
    and history: what a store that has been used holds."""
    view = store.for_tenant(tenant)
    msgs = [StoredMessage(id=new_id(), scope=Scope(user_id=f"u{i % 2}", session_id="s0"),
                          role="user", name=None, content=f"{tenant} says {i}",
                          timestamp=NOW + timedelta(minutes=i), created_at=NOW,
                          metadata={"i": i}) for i in range(start, start + n)]
    recs = [memory(f"{tenant} Alice likes Bob {i}", f"u{i % 2}", i,
                   entities=["Alice", "Bob"], subject="Alice", predicate="likes", object="Bob",
                   metadata={"n": i, "tags": ["x", "y"]}, importance=0.25 + i / 1000,
                   valid_from=NOW - timedelta(days=i))
            for i in range(start, start + n)]
    view.apply(WriteBatch(messages=msgs, inserts=[(r, vec(i)) for i, r in enumerate(recs, start)],
                          history=[HistoryDraft(r.id, HistoryEvent.ADD, None, {"text": r.text},
                                                "test", None, r.created_at) for r in recs]))
    old = recs[0]
    newer = old.model_copy(update={"status": MemoryStatus.SUPERSEDED, "version": 2,
                                   "updated_at": NOW + timedelta(hours=1)})
    view.apply(WriteBatch(updates=[(newer, None)], history=[HistoryDraft(
        old.id, HistoryEvent.UPDATE, {"status": "active"}, {"status": "superseded"}, "test",
        "newer fact", NOW + timedelta(hours=1))]))
    view.record_access({recs[-1].id: (3, NOW + timedelta(days=1))})


def snapshot(location: str, tenants: list[str]) -> dict[str, Any]:
    """Everything a tenant holds, as comparable values (history without its row ids)."""
    store = open_store(location, tenant="default", embedding_dim=DIM)
    try:
        out: dict[str, Any] = {}
        for tenant in tenants:
            view = store.for_tenant(tenant)
            ids = [r.id for u in ("u0", "u1") for r in view.list_memories(
                _all(u), limit=10_000)[0]]
            out[tenant] = {
                "memories": view.get_many(ids),
                "vectors": {k: v.round(6).tolist() for k, v in view.embeddings(ids).items()},
                "messages": [m for u in ("u0", "u1") for m in view.messages(Scope(user_id=u))],
                "history": {mid: [e.model_dump(exclude={"id"}) for e in entries]
                            for mid, entries in view.dump_history(ids).items()},
                "graph": _graph(view),
                "counts": view.transfer_counts(),
            }
        out["keys"] = store.key_store().dump_keys()
        return out
    finally:
        store.close()


def _all(user: str) -> Any:
    from memsvc.storage.base import VisibilityQuery

    return VisibilityQuery(scope=Scope(user_id=user), statuses=())


def _graph(view: MemoryStore) -> Any:
    """The scope's graph with entity pks (which differ between stores) replaced by names."""
    data = view.graph_data(Scope(user_id="u0", agent_id="bot"))
    name = {pk: n for pk, (n, _) in data.entities.items()}
    return (sorted((n, sorted(a)) for n, a in data.entities.values()),
            sorted((m, name[pk]) for m, pk in data.links),
            sorted((name[a], name[b], p) for a, b, p in data.relations))


def migrate(src: str, dst: str) -> Any:
    return runner.invoke(app, ["migrate-store", src, dst, "--embedding-dim", str(DIM)])


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = str(tmp_path / "src.db")
    store = open_store(path, tenant="default", embedding_dim=DIM)
    try:
        fill(store, "acme", 12)
        fill(store, "globex", 5)
        store.key_store().create("ci", "acme")
    finally:
        store.close()
    return path


def test_sqlite_to_postgres_and_back_keeps_everything(
    source: str, pg_url: str, tmp_path: Path
) -> None:
    tenants = ["acme", "globex"]
    before = snapshot(source, tenants)
    result = migrate(source, pg_url)
    assert result.exit_code == 0, result.output
    assert "memories: 17 copied" in result.output and "verified: 2 tenant(s)" in result.output
    assert snapshot(pg_url, tenants) == before

    back = str(tmp_path / "back.db")
    result = migrate(pg_url, back)
    assert result.exit_code == 0, result.output
    assert snapshot(back, tenants) == before
    auditor = open_auditor(back)  # the copy is signed by its own store: the audit is clean
    try:
        assert auditor.audit() == []
    finally:
        auditor.close()


def test_running_it_again_copies_nothing_twice_and_resumes(source: str, pg_url: str) -> None:
    assert migrate(source, pg_url).exit_code == 0
    again = migrate(source, pg_url)
    assert again.exit_code == 0, again.output
    assert "memories: 0 copied, 17 already there" in again.output
    assert "api_keys: 0 copied, 1 already there" in again.output

    store = open_store(source, tenant="default", embedding_dim=DIM)
    try:
        fill(store, "acme", 3, start=100)  # the source goes on being used
    finally:
        store.close()
    third = migrate(source, pg_url)
    assert third.exit_code == 0, third.output
    assert "memories: 3 copied, 17 already there" in third.output
    assert snapshot(pg_url, ["acme", "globex"]) == snapshot(source, ["acme", "globex"])


def test_a_destination_that_is_another_store_is_refused_untouched(
    source: str, pg_url: str, tmp_path: Path
) -> None:
    other = str(tmp_path / "other.db")
    store = open_store(other, tenant="default", embedding_dim=DIM)
    try:
        fill(store, "acme", 2)
    finally:
        store.close()
    before = snapshot(other, ["acme", "globex"])
    result = migrate(source, other)
    assert result.exit_code == 2
    assert "error" in result.output and "another store" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(other, ["acme", "globex"]) == before

    # a partial copy that then diverged is another store too
    assert migrate(source, pg_url).exit_code == 0
    pg = open_store(pg_url, tenant="acme", embedding_dim=DIM)
    try:
        fill(pg, "acme", 1, start=500)
    finally:
        pg.close()
    result = migrate(source, pg_url)
    assert result.exit_code == 2 and "another store" in result.output


@pytest.mark.parametrize("bad", [
    "postgresql+psycopg://nobody@/nowhere?host=/nonexistent-socket-dir",
    "mysql://u@h/db",
    "postgresql://u@h/db",
])
def test_a_wrong_url_is_one_line_and_exit_2(source: str, bad: str) -> None:
    for args in ((source, bad), (bad, source)):
        result = migrate(*args)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_missing_source_is_refused_and_not_created(tmp_path: Path, pg_url: str) -> None:
    missing = tmp_path / "nope.db"
    result = migrate(str(missing), pg_url)
    assert result.exit_code == 2 and "no store" in result.output
    assert not missing.exists()


def test_a_database_without_pgvector_is_refused_and_left_empty(
    source: str, pg_server: EmbeddedPostgres
) -> None:
    """A role that may not enable pgvector (it is not a trusted extension): what a managed
    PostgreSQL without pgvector looks like from the outside."""
    with psycopg.connect(pg_server.conninfo(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS novector")
        conn.execute("DROP ROLE IF EXISTS plain_user")
        conn.execute("CREATE ROLE plain_user LOGIN")
        conn.execute("CREATE DATABASE novector OWNER plain_user")
    url = pg_server.url(database="novector", user="plain_user")
    result = migrate(source, url)
    assert result.exit_code == 2, result.output
    assert "pgvector" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with psycopg.connect(pg_server.conninfo(database="novector"), autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


def test_a_copied_memory_changed_since_is_refused(source: str, pg_url: str) -> None:
    assert migrate(source, pg_url).exit_code == 0
    pg = open_store(pg_url, tenant="globex", embedding_dim=DIM)
    try:
        rec = pg.list_memories(_all("u0"), limit=1)[0][0]
        pg.apply(WriteBatch(updates=[(rec.model_copy(update={"text": "edited"}), None)]))
    finally:
        pg.close()
    result = migrate(source, pg_url)
    assert result.exit_code == 2, result.output
    assert f"memory {rec.id} (tenant 'globex') differs" in result.output
