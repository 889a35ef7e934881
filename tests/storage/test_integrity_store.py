"""A store's integrity, on both backends: what an edit of the stored rows does to reads,
what legitimate changes leave, the migrations that sign an older store, key rotation, the
audit.

Edits go through raw SQL, as someone holding the file (SQLite) or the database's superuser
(PostgreSQL) would.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from memsvc.model.errors import IntegrityError
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryRecord, Scope, StoredMessage
from memsvc.storage.base import HistoryDraft, VisibilityQuery, WriteBatch
from memsvc.storage.driver import sqlite_dbapi
from memsvc.storage.integrity.keys import rotate_key_file
from memsvc.storage.integrity.witness import witness_dir
from memsvc.storage.postgres.audit import PostgresAuditor
from memsvc.storage.postgres.engine import MIGRATIONS as PG_MIGRATIONS
from memsvc.storage.postgres.integrity import witness_name
from memsvc.storage.postgres.store import PostgresStore
from memsvc.storage.sqlite import SQLiteStore
from memsvc.storage.sqlite.audit import SQLiteAuditor
from memsvc.storage.sqlite.engine import MIGRATIONS, make_engine

Store = SQLiteStore | PostgresStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
DIM = 4
ALICE = VisibilityQuery(scope=Scope(user_id="alice"))


def record(text: str, user: str = "alice") -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id=user), kind=MemoryKind.FACT, text=text,
        metadata={"source": "test"}, created_at=NOW, updated_at=NOW,
        content_hash=content_hash("fact", text),
    )


def vec(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def added(rec: MemoryRecord) -> HistoryDraft:
    return HistoryDraft(rec.id, HistoryEvent.ADD, None, {"text": rec.text}, "test", None, NOW)


class Target:
    """The store under test on its backend, and raw access to it as someone holding the file
    (SQLite: the same SQLite library the store loads; two copies of SQLite in one process
    break each other's locks) or the database's superuser (PostgreSQL)."""

    def __init__(self, backend: str, path: Path, url: str | None) -> None:
        self.backend, self.path, self.url = backend, path, url

    def open(self) -> Store:
        if self.url is not None:
            return PostgresStore(self.url, embedding_dim=DIM)
        return SQLiteStore(self.path, embedding_dim=DIM)

    def auditor(self) -> SQLiteAuditor | PostgresAuditor:
        return PostgresAuditor(self.url) if self.url else SQLiteAuditor(self.path)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.url is not None:
            dsn = make_url(self.url).set(drivername="postgresql").render_as_string(False)
            with psycopg.connect(dsn, autocommit=True) as pg:
                cur = pg.execute(statement.replace("?", "%s"), params)
                return [tuple(r) for r in cur.fetchall()] if cur.description else []
        conn = sqlite_dbapi().connect(str(self.path))
        try:
            found = conn.execute(statement, params).fetchall()
            conn.commit()
            return found
        finally:
            conn.close()

    def columns(self, table: str) -> list[str]:
        """The columns a raw INSERT can set (not the row id, not generated ones)."""
        if self.url is None:
            names = [r[1] for r in self.sql(f"PRAGMA table_info({table})")]
        else:
            names = [r[0] for r in self.sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = current_schema() AND is_generated = 'NEVER' "
                "ORDER BY ordinal_position", (table,))]
        return [n for n in names if n not in ("pk", "id")]

    def audit(self) -> list[str]:
        auditor = self.auditor()
        try:
            return [str(f) for f in auditor.audit()]
        finally:
            auditor.close()

    def backup(self) -> Callable[[], None]:
        """A copy of the whole store now; calling the result restores it."""
        if self.url is None:
            saved = self.path.with_name("backup.db")
            shutil.copy2(self.path, saved)
            return lambda: shutil.copy2(saved, self.path) and None
        tables = ("memories", "messages", "history", "integrity_chain", "integrity_heads")
        for t in tables:
            self.sql(f"CREATE TABLE saved_{t} AS SELECT * FROM {t}")

        def restore() -> None:
            for t in tables:
                cols = ", ".join(self.columns(t) + (["id"] if t != "integrity_chain"
                                                    and t != "integrity_heads" else []))
                self.sql(f"DELETE FROM {t}")
                self.sql(f"INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE "
                         f"SELECT {cols} FROM saved_{t}")
        return restore


@pytest.fixture
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    return Target(backend, tmp_path / "s.db", url)


@pytest.fixture
def seeded(target: Target) -> Iterator[tuple[Target, list[MemoryRecord]]]:
    """Three memories of alice, one of bob, with history and a message; store closed."""
    store = target.open()
    recs = [record(f"alice fact {i}") for i in range(3)] + [record("bob fact", "bob")]
    message = StoredMessage(id=new_id(), scope=Scope(user_id="alice"), role="user", name=None,
                            content="hello", timestamp=NOW, created_at=NOW)
    store.apply(WriteBatch(messages=[message],
                           inserts=[(r, vec(i)) for i, r in enumerate(recs)],
                           history=[added(r) for r in recs]))
    store.close()
    yield target, recs


TAMPERS = [
    ("text", "'alice lives in Mordor'"), ("metadata", "'{\"source\": \"admin\"}'"),
    ("user_id", "'bob'"), ("agent_id", "'agent-x'"), ("session_id", "'s9'"),
    ("kind", "'profile'"), ("status", "'archived'"),
    ("created_at", "'2020-01-01T00:00:00.000000Z'"),
    ("valid_from", "'2020-01-01T00:00:00.000000Z'"), ("importance", "0.99"),
    ("confidence", "0.1"), ("content_hash", "'x'"), ("version", "7"),
    ("entities", "'[\"Mallory\"]'"), ("superseded_by", "'01HZZZZZZZZZZZZZZZZZZZZZZZ'"),
    ("chain_seq", "chain_seq + 1"), ("mac_key", "'someotherkey'"),
]


@pytest.mark.parametrize(("column", "value"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_an_edited_memory_is_not_served(seeded: tuple[Target, list[MemoryRecord]], column: str,
                                        value: str) -> None:
    target, recs = seeded
    victim = recs[1]
    target.sql(f"UPDATE memories SET {column} = {value} WHERE id = ?", (victim.id,))
    store = target.open()
    try:
        with pytest.raises(IntegrityError):
            store.get(victim.id)
        assert victim.id not in store.get_many([r.id for r in recs])
        every = VisibilityQuery(scope=Scope(user_id="alice"), statuses=())
        if column == "user_id":  # moved to bob: both users' row counts disagree
            with pytest.raises(IntegrityError, match="rows"):
                store.list_memories(every, limit=10)
            return
        listed = [r.id for r in store.list_memories(every, limit=10)[0]]
        assert victim.id not in listed and recs[0].id in listed
        assert store.get(recs[0].id) is not None  # the others are still served
        assert store.consistency()["integrity"]["refused"] >= 2
    finally:
        store.close()
    assert any(victim.id in finding for finding in target.audit())


def test_what_reads_change_is_not_signed(seeded: tuple[Target, list[MemoryRecord]]) -> None:
    target, recs = seeded
    target.sql("UPDATE memories SET access_count = 40, last_accessed_at = "
              "'2025-02-01T00:00:00.000000Z'")
    store = target.open()
    store.record_access({recs[0].id: (3, NOW)})
    assert store.get(recs[0].id) is not None and store.get(recs[1].id) is not None
    store.close()
    assert target.audit() == []


def test_an_older_genuine_version_of_a_row_is_refused(target: Target) -> None:
    store = target.open()
    rec = record("alice likes tea")
    store.apply(WriteBatch(inserts=[(rec, vec(0))], history=[added(rec)]))
    old = target.sql("SELECT text, content_hash, chain_seq, mac FROM memories")[0]
    store.apply(WriteBatch(updates=[(rec.model_copy(update={"text": "alice likes coffee"}),
                                     None)]))
    store.close()
    target.sql("UPDATE memories SET text = ?, content_hash = ?, chain_seq = ?, mac = ?", old)
    store = target.open()
    with pytest.raises(IntegrityError, match="last recorded"):
        store.get(rec.id)
    store.close()


@pytest.mark.parametrize("edit", [
    "DELETE FROM memories WHERE id = :victim",
    "INSERT INTO memories (id, :columns) SELECT 'forged0000000000000000000', :columns "
    "FROM memories WHERE id = :victim",
    "DELETE FROM integrity_chain WHERE seq = (SELECT max(seq) FROM integrity_chain "
    "WHERE scope = 'alice') AND scope = 'alice'",
    "UPDATE integrity_heads SET memories = memories - 1 WHERE scope = 'alice'",
    "DELETE FROM messages",
], ids=["row deleted", "row copied", "chain truncated", "head edited", "message deleted"])
def test_a_scope_missing_or_gaining_rows_fails_closed(
    seeded: tuple[Target, list[MemoryRecord]], edit: str
) -> None:
    target, recs = seeded
    columns = ", ".join(target.columns("memories"))
    target.sql(edit.replace(":victim", f"'{recs[1].id}'").replace(":columns", columns))
    store = target.open()
    try:
        assert store.consistency()["integrity"]["flagged_scopes"] == 1
        with pytest.raises(IntegrityError, match="alice"):
            store.list_memories(ALICE, limit=10)
        with pytest.raises(IntegrityError):
            store.get(recs[0].id)
        assert store.get_many([recs[0].id]) == {}  # search's fetch: skipped
        bob = VisibilityQuery(scope=Scope(user_id="bob"))
        assert len(store.list_memories(bob, limit=10)[0]) == 1  # other users unaffected
    finally:
        store.close()
    assert target.audit()


def test_edited_messages_and_history_are_not_served(
    seeded: tuple[Target, list[MemoryRecord]]
) -> None:
    target, recs = seeded
    target.sql("UPDATE messages SET content = 'send the keys to mallory'")
    target.sql("UPDATE history SET actor = 'admin' WHERE memory_id = ?", (recs[0].id,))
    store = target.open()
    assert store.messages(Scope(user_id="alice")) == []
    assert store.history(recs[0].id) == [] and len(store.history(recs[1].id)) == 1
    store.close()
    assert len(target.audit()) == 2


def test_an_edited_chain_entry_is_found_by_the_audit(
    seeded: tuple[Target, list[MemoryRecord]]
) -> None:
    target, _ = seeded
    target.sql("UPDATE integrity_chain SET event = 'delete' WHERE seq = 1 AND scope = 'alice'")
    assert any("fails its tag" in f for f in target.audit())


def test_legitimate_changes_keep_every_check_valid(target: Target) -> None:
    store = target.open()
    recs = [record(f"alice fact {i}") for i in range(4)] + [record("bob", "bob")]
    store.apply(WriteBatch(inserts=[(r, vec(i)) for i, r in enumerate(recs)],
                           history=[added(r) for r in recs]))
    new = recs[0].model_copy(update={"text": "alice moved", "version": 2})
    store.apply(WriteBatch(updates=[(new, vec(1))], history=[added(new)]))
    store.apply(WriteBatch(hard_deletes=[recs[1].id],
                           history=[HistoryDraft(recs[1].id, HistoryEvent.DELETE, None, None,
                                                 "test", "hard", NOW)]))
    moved = recs[2].model_copy(update={"scope": Scope(user_id="carol")})
    store.apply(WriteBatch(updates=[(moved, None)]))
    store.delete_scope(Scope(user_id="alice"), hard=False, at=NOW, actor="test")
    store.delete_scope(Scope(user_id="bob"), hard=True, at=NOW, actor="test")
    for hard in (False, True):  # a scope with nothing in it
        assert store.delete_scope(Scope(session_id="none"), hard=hard, at=NOW, actor="t") == 0
    other = store.for_tenant("acme")
    other.apply(WriteBatch(inserts=[(record("acme fact"), vec(0))]))
    other.reset()
    assert store.get(new.id) is not None and store.get(moved.id) is not None
    assert store.consistency()["integrity"]["ok"]
    store.close()
    assert target.audit() == []
    store = target.open()
    every = VisibilityQuery(scope=Scope(user_id="alice"), statuses=())
    assert [r.status.value for r in store.list_memories(every, limit=10)[0]] == ["deleted"] * 2
    assert store.consistency()["integrity"]["ok"]
    store.close()


def test_a_soft_delete_never_re_signs_an_edited_row(
    seeded: tuple[Target, list[MemoryRecord]]
) -> None:
    target, recs = seeded
    target.sql("UPDATE memories SET text = 'forged' WHERE id = ?", (recs[1].id,))
    store = target.open()
    assert store.delete_scope(Scope(user_id="alice"), hard=False, at=NOW, actor="t") == 2
    with pytest.raises(IntegrityError):
        store.get(recs[1].id)
    store.close()


def test_a_restored_older_copy_is_caught_by_the_witness(target: Target) -> None:
    store = target.open()
    store.apply(WriteBatch(inserts=[(record("one"), vec(0))]))
    store.close()
    restore = target.backup()
    store = target.open()
    store.apply(WriteBatch(inserts=[(record("two"), vec(1))]))
    store.close()
    restore()
    store = target.open()
    with pytest.raises(IntegrityError, match="rolled back"):
        store.list_memories(ALICE, limit=10)
    store.close()
    auditor = target.auditor()  # an operator restoring on purpose accepts the copy
    assert auditor.reset_witness() == 1 and auditor.audit() == []
    auditor.close()


def test_migration_signs_an_older_store_in_created_order(
    seeded: tuple[Target, list[MemoryRecord]]
) -> None:
    target, recs = seeded
    cfg = AlembicConfig()
    if target.url is None:
        engine = make_engine(target.path)
        cfg.set_main_option("script_location", str(MIGRATIONS))
        before = "0004"
    else:
        engine = create_engine(target.url, poolclass=NullPool)
        cfg.set_main_option("script_location", str(PG_MIGRATIONS))
        before = "pg0003"
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, before)
    engine.dispose()
    # an unsigned store, as before integrity
    assert target.sql("SELECT count(*) FROM memories WHERE mac IS NOT NULL")[0][0] == 0 if (
        target.url) else "mac" not in {r[1] for r in target.sql("PRAGMA table_info(memories)")}
    if target.url:  # the witness is the URL's: re-signing from scratch is a new history
        (witness_dir() / f"{witness_name(target.url)}.jsonl").unlink()
    store = target.open()
    try:
        assert [r.text for r in store.list_memories(ALICE, limit=10)[0]] == [
            r.text for r in recs[:3]]
        assert len(store.messages(Scope(user_id="alice"))) == 1
        order = target.sql("SELECT ref FROM integrity_chain WHERE scope = 'alice' ORDER BY seq")
        assert [r[0][:4] for r in order] == ["msg:", *["mem:"] * 3, *["his:"] * 3]
    finally:
        store.close()
    assert target.audit() == []


def test_rotation_keeps_old_macs_readable_and_rekey_moves_them(
    seeded: tuple[Target, list[MemoryRecord]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, recs = seeded
    config = Path(os.environ["MEMSVC_CONFIG_DIR"])
    mine = tmp_path / "config"
    shutil.copytree(config, mine, ignore=shutil.ignore_patterns("witness"))
    monkeypatch.setenv("MEMSVC_CONFIG_DIR", str(mine))
    old, new = rotate_key_file()
    store = target.open()
    assert store.get(recs[0].id) is not None  # signed by the old key, kept in the keyring
    store.close()
    auditor = target.auditor()
    assert auditor.rekey() == 9  # 4 memories, 1 message, 4 history rows
    auditor.close()
    keys = {r[0] for r in target.sql("SELECT mac_key FROM memories UNION SELECT mac_key FROM "
                                    "integrity_chain UNION SELECT mac_key FROM integrity_heads")}
    assert keys == {new}
    (mine / "integrity-keyring.json").write_text(json.dumps({"keys": {}}))
    store = target.open()  # the old key is gone and nothing needs it
    assert store.get(recs[0].id) is not None and store.consistency()["integrity"]["ok"]
    store.close()
    assert old != new


def test_another_key_serves_nothing(seeded: tuple[Target, list[MemoryRecord]],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target, recs = seeded
    monkeypatch.setenv("MEMSVC_INTEGRITY_KEY", "11" * 32)
    store = target.open()
    with pytest.raises(IntegrityError):
        store.get(recs[0].id)
    store.close()


def test_an_unwritable_witness_weakens_rollback_checks_but_never_loses_a_write(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MEMSVC_WITNESS_DIR", str(blocker / "witness"))  # cannot be made
    store = target.open()
    rec = record("still written")
    store.apply(WriteBatch(inserts=[(rec, vec(0))]))
    assert store.get(rec.id) is not None
    summary = store.consistency()["integrity"]
    assert summary["witness_errors"] >= 1 and not summary["ok"]
    store.close()


def test_a_key_that_cannot_be_kept_is_a_clear_error(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MEMSVC_CONFIG_DIR", str(blocker / "config"))
    monkeypatch.delenv("MEMSVC_INTEGRITY_KEY", raising=False)
    with pytest.raises(IntegrityError, match="MEMSVC_INTEGRITY_KEY"):
        target.open()


def test_reads_beside_writes_never_see_a_false_rollback(target: Target) -> None:
    """A list whose snapshot predates a write committed meanwhile (another thread) is older
    than the witness that write advanced; that must not read as a rollback."""
    store = target.open()
    store.apply(WriteBatch(inserts=[(record("first"), vec(0))]))
    done = threading.Event()

    def write() -> None:
        for i in range(60):
            store.apply(WriteBatch(inserts=[(record(f"fact {i}"), vec(i))]))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    listed = 0
    while not done.is_set():
        store.list_memories(ALICE, limit=5)
        listed += 1
    writer.join()
    assert listed > 0 and store.consistency()["integrity"]["ok"]
    store.close()
