"""Access counts: gathered from searches, written in batches, never on the read path."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from memsvc import Memory
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope
from memsvc.sdk.access_log import AccessLog
from memsvc.storage.base import WriteBatch
from memsvc.storage.sqlite import SQLiteStore


def stored_counts(store: SQLiteStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT id, access_count FROM memories").all())


def test_searches_count_their_hits_and_reads_see_the_counts(memory: Memory) -> None:
    memory.add("I adopted a guinea pig named Oscar", user_id="u1")
    hit = memory.search("guinea pig", user_id="u1", limit=1).results[0].memory
    memory.search("Oscar the guinea pig", user_id="u1", limit=1)
    assert memory.get(hit.id).access_count == 2  # get flushes what is pending
    assert memory.get_all(user_id="u1").items[0].last_accessed_at is not None


def test_a_search_does_not_wait_for_a_writer(memory: Memory, db_path: Path) -> None:
    """Another connection holds the write lock; the search still answers (no touch write)."""
    memory.add("The band played jazz all night", user_id="u1")
    writer = sqlite3.connect(db_path, timeout=30)
    writer.execute("BEGIN IMMEDIATE")
    answered = threading.Event()

    def search() -> None:
        memory.search("jazz", user_id="u1")
        answered.set()

    thread = threading.Thread(target=search, daemon=True)
    try:
        thread.start()
        assert answered.wait(15), "search blocked behind the write lock"  # busy timeout is 30 s
    finally:
        writer.rollback()
        writer.close()
    memory.get_all(user_id="u1")  # and the count lands once the lock is free


def test_pending_counts_land_on_their_own(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", embedding_dim=8)
    memory_ids = _two_memories(store)
    log = AccessLog(store, flush_after_s=0.05)
    log.record(memory_ids, datetime(2025, 1, 1, tzinfo=UTC))
    log.record(memory_ids[:1], datetime(2025, 1, 2, tzinfo=UTC))
    deadline = time.monotonic() + 10
    while stored_counts(store)[memory_ids[0]] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored_counts(store) == {memory_ids[0]: 2, memory_ids[1]: 1}
    store.close()


def test_a_full_buffer_is_written_at_once_and_close_writes_the_rest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", embedding_dim=8)
    memory_ids = _two_memories(store)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    log = AccessLog(store, flush_after_s=3600, max_pending=2)
    log.record(memory_ids, at)  # two distinct ids: the buffer is full
    assert stored_counts(store) == {memory_ids[0]: 1, memory_ids[1]: 1}
    log.record(memory_ids[1:], at)
    log.close()
    assert stored_counts(store) == {memory_ids[0]: 1, memory_ids[1]: 2}
    store.close()


def _two_memories(store: SQLiteStore) -> list[str]:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    records = [
        MemoryRecord(id=new_id(), scope=Scope(user_id="u1"), kind=MemoryKind.FACT, text=text,
                     created_at=now, updated_at=now, content_hash=content_hash("fact", text))
        for text in ("first", "second")
    ]
    store.apply(WriteBatch(inserts=[(r, np.ones(8, dtype=np.float32)) for r in records]))
    return [r.id for r in records]
