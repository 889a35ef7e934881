"""The SQLite store's integrity: what an edit of the file does to reads, what legitimate
changes leave, the migration that signs an older store, key rotation, the audit.

Edits go through raw SQL on the file (the same SQLite library the store loads: two copies
of SQLite in one process break each other's locks), as someone holding the file would.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig

from memsvc.model.errors import IntegrityError
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryRecord, Scope, StoredMessage
from memsvc.storage.base import HistoryDraft, VisibilityQuery, WriteBatch
from memsvc.storage.driver import sqlite_dbapi
from memsvc.storage.integrity.keys import rotate_key_file
from memsvc.storage.sqlite import SQLiteStore
from memsvc.storage.sqlite.audit import SQLiteAuditor
from memsvc.storage.sqlite.engine import MIGRATIONS, make_engine

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


def sql(path: Path, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite_dbapi().connect(str(path))
    try:
        found = conn.execute(statement, params).fetchall()
        conn.commit()
        return found
    finally:
        conn.close()


def audit(path: Path) -> list[str]:
    auditor = SQLiteAuditor(path)
    try:
        return [str(f) for f in auditor.audit()]
    finally:
        auditor.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def seeded(path: Path) -> Iterator[tuple[Path, list[MemoryRecord]]]:
    """Three memories of alice, one of bob, with history and a message; store closed."""
    store = SQLiteStore(path, embedding_dim=DIM)
    recs = [record(f"alice fact {i}") for i in range(3)] + [record("bob fact", "bob")]
    message = StoredMessage(id=new_id(), scope=Scope(user_id="alice"), role="user", name=None,
                            content="hello", timestamp=NOW, created_at=NOW)
    store.apply(WriteBatch(messages=[message],
                           inserts=[(r, vec(i)) for i, r in enumerate(recs)],
                           history=[added(r) for r in recs]))
    store.close()
    yield path, recs


def reopen(path: Path) -> SQLiteStore:
    return SQLiteStore(path, embedding_dim=DIM)


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
def test_an_edited_memory_is_not_served(seeded: tuple[Path, list[MemoryRecord]], column: str,
                                        value: str) -> None:
    path, recs = seeded
    victim = recs[1]
    sql(path, f"UPDATE memories SET {column} = {value} WHERE id = ?", (victim.id,))
    store = reopen(path)
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
    assert any(victim.id in finding for finding in audit(path))


def test_what_reads_change_is_not_signed(seeded: tuple[Path, list[MemoryRecord]]) -> None:
    path, recs = seeded
    sql(path, "UPDATE memories SET access_count = 40, last_accessed_at = "
              "'2025-02-01T00:00:00.000000Z'")
    store = reopen(path)
    store.record_access({recs[0].id: (3, NOW)})
    assert store.get(recs[0].id) is not None and store.get(recs[1].id) is not None
    store.close()
    assert audit(path) == []


def test_an_older_genuine_version_of_a_row_is_refused(path: Path) -> None:
    store = SQLiteStore(path, embedding_dim=DIM)
    rec = record("alice likes tea")
    store.apply(WriteBatch(inserts=[(rec, vec(0))], history=[added(rec)]))
    old = sql(path, "SELECT text, content_hash, chain_seq, mac FROM memories")[0]
    store.apply(WriteBatch(updates=[(rec.model_copy(update={"text": "alice likes coffee"}),
                                     None)]))
    store.close()
    sql(path, "UPDATE memories SET text = ?, content_hash = ?, chain_seq = ?, mac = ?", old)
    store = reopen(path)
    with pytest.raises(IntegrityError, match="last recorded"):
        store.get(rec.id)
    store.close()


@pytest.mark.parametrize("edit", [
    "DELETE FROM memories WHERE id = :victim",
    "INSERT INTO memories SELECT NULL, 'forged0000000000000000000', tenant, user_id, "
    "agent_id, session_id, kind, text, subject, predicate, object, entities, metadata, "
    "valid_from, valid_to, created_at, updated_at, invalidated_at, source_message_ids, "
    "extractor, extractor_version, confidence, status, superseded_by, importance, "
    "access_count, last_accessed_at, content_hash, version, fts_scope, chain_seq, mac, "
    "mac_key, writer, channel, trust FROM memories WHERE id = :victim",
    "DELETE FROM integrity_chain WHERE seq = (SELECT max(seq) FROM integrity_chain "
    "WHERE scope = 'alice') AND scope = 'alice'",
    "UPDATE integrity_heads SET memories = memories - 1 WHERE scope = 'alice'",
    "DELETE FROM messages",
], ids=["row deleted", "row copied", "chain truncated", "head edited", "message deleted"])
def test_a_scope_missing_or_gaining_rows_fails_closed(
    seeded: tuple[Path, list[MemoryRecord]], edit: str
) -> None:
    path, recs = seeded
    sql(path, edit.replace(":victim", f"'{recs[1].id}'"))
    store = reopen(path)
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
    assert audit(path)


def test_edited_messages_and_history_are_not_served(
    seeded: tuple[Path, list[MemoryRecord]]
) -> None:
    path, recs = seeded
    sql(path, "UPDATE messages SET content = 'send the keys to mallory'")
    sql(path, "UPDATE history SET actor = 'admin' WHERE memory_id = ?", (recs[0].id,))
    store = reopen(path)
    assert store.messages(Scope(user_id="alice")) == []
    assert store.history(recs[0].id) == [] and len(store.history(recs[1].id)) == 1
    store.close()
    assert len(audit(path)) == 2


def test_an_edited_chain_entry_is_found_by_the_audit(
    seeded: tuple[Path, list[MemoryRecord]]
) -> None:
    path, _ = seeded
    sql(path, "UPDATE integrity_chain SET event = 'delete' WHERE seq = 1 AND scope = 'alice'")
    assert any("fails its tag" in f for f in audit(path))


def test_legitimate_changes_keep_every_check_valid(path: Path) -> None:
    store = SQLiteStore(path, embedding_dim=DIM)
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
    assert audit(path) == []
    store = reopen(path)
    every = VisibilityQuery(scope=Scope(user_id="alice"), statuses=())
    assert [r.status.value for r in store.list_memories(every, limit=10)[0]] == ["deleted"] * 2
    assert store.consistency()["integrity"]["ok"]
    store.close()


def test_a_soft_delete_never_re_signs_an_edited_row(
    seeded: tuple[Path, list[MemoryRecord]]
) -> None:
    path, recs = seeded
    sql(path, "UPDATE memories SET text = 'forged' WHERE id = ?", (recs[1].id,))
    store = reopen(path)
    assert store.delete_scope(Scope(user_id="alice"), hard=False, at=NOW, actor="t") == 2
    with pytest.raises(IntegrityError):
        store.get(recs[1].id)
    store.close()


def test_a_restored_older_copy_is_caught_by_the_witness(path: Path) -> None:
    store = SQLiteStore(path, embedding_dim=DIM)
    store.apply(WriteBatch(inserts=[(record("one"), vec(0))]))
    store.close()
    backup = path.with_name("backup.db")
    shutil.copy2(path, backup)
    store = reopen(path)
    store.apply(WriteBatch(inserts=[(record("two"), vec(1))]))
    store.close()
    shutil.copy2(backup, path)
    store = reopen(path)
    with pytest.raises(IntegrityError, match="rolled back"):
        store.list_memories(ALICE, limit=10)
    store.close()
    auditor = SQLiteAuditor(path)  # an operator restoring on purpose accepts the copy
    assert auditor.reset_witness() == 1 and auditor.audit() == []
    auditor.close()


def test_migration_signs_an_older_store_in_created_order(
    seeded: tuple[Path, list[MemoryRecord]]
) -> None:
    path, recs = seeded
    engine = make_engine(path)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    engine.dispose()
    columns = {r[1] for r in sql(path, "PRAGMA table_info(memories)")}
    assert "mac" not in columns  # an unsigned store, as before integrity
    store = reopen(path)
    try:
        assert [r.text for r in store.list_memories(ALICE, limit=10)[0]] == [
            r.text for r in recs[:3]]
        assert len(store.messages(Scope(user_id="alice"))) == 1
        order = sql(path, "SELECT ref FROM integrity_chain WHERE scope = 'alice' ORDER BY seq")
        assert [r[0][:4] for r in order] == ["msg:", *["mem:"] * 3, *["his:"] * 3]
    finally:
        store.close()
    assert audit(path) == []


def test_rotation_keeps_old_macs_readable_and_rekey_moves_them(
    seeded: tuple[Path, list[MemoryRecord]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, recs = seeded
    config = Path(os.environ["MEMSVC_CONFIG_DIR"])
    mine = tmp_path / "config"
    shutil.copytree(config, mine, ignore=shutil.ignore_patterns("witness"))
    monkeypatch.setenv("MEMSVC_CONFIG_DIR", str(mine))
    old, new = rotate_key_file()
    store = reopen(path)
    assert store.get(recs[0].id) is not None  # signed by the old key, kept in the keyring
    store.close()
    auditor = SQLiteAuditor(path)
    assert auditor.rekey() == 9  # 4 memories, 1 message, 4 history rows
    auditor.close()
    keys = {r[0] for r in sql(path, "SELECT mac_key FROM memories UNION SELECT mac_key FROM "
                                    "integrity_chain UNION SELECT mac_key FROM integrity_heads")}
    assert keys == {new}
    (mine / "integrity-keyring.json").write_text(json.dumps({"keys": {}}))
    store = reopen(path)  # the old key is gone and nothing needs it
    assert store.get(recs[0].id) is not None and store.consistency()["integrity"]["ok"]
    store.close()
    assert old != new


def test_another_key_serves_nothing(seeded: tuple[Path, list[MemoryRecord]],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path, recs = seeded
    monkeypatch.setenv("MEMSVC_INTEGRITY_KEY", "11" * 32)
    store = reopen(path)
    with pytest.raises(IntegrityError):
        store.get(recs[0].id)
    store.close()


def test_an_unwritable_witness_weakens_rollback_checks_but_never_loses_a_write(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MEMSVC_WITNESS_DIR", str(blocker / "witness"))  # cannot be made
    store = SQLiteStore(path, embedding_dim=DIM)
    rec = record("still written")
    store.apply(WriteBatch(inserts=[(rec, vec(0))]))
    assert store.get(rec.id) is not None
    summary = store.consistency()["integrity"]
    assert summary["witness_errors"] >= 1 and not summary["ok"]
    store.close()


def test_a_key_that_cannot_be_kept_is_a_clear_error(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MEMSVC_CONFIG_DIR", str(blocker / "config"))
    monkeypatch.delenv("MEMSVC_INTEGRITY_KEY", raising=False)
    with pytest.raises(IntegrityError, match="MEMSVC_INTEGRITY_KEY"):
        SQLiteStore(path, embedding_dim=DIM)


def test_reads_beside_writes_never_see_a_false_rollback(path: Path) -> None:
    """A list whose snapshot predates a write committed meanwhile (another thread) is older
    than the witness that write advanced; that must not read as a rollback."""
    store = SQLiteStore(path, embedding_dim=DIM)
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
