"""What tamper evidence needs from PostgreSQL beyond what both backends share
(test_integrity_store.py): replicas writing one chain concurrently never fork it, jsonb
numbers are signed as they are read back, the witness is keyed by the URL without its
password, and `memsvc verify --db postgresql+psycopg://...` audits the database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import psycopg
from sqlalchemy import make_url
from typer.testing import CliRunner

from memsvc.cli.main import app
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.postgres.audit import PostgresAuditor
from memsvc.storage.postgres.integrity import witness_name
from memsvc.storage.postgres.store import PostgresStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
DIM = 4
ALICE = VisibilityQuery(scope=Scope(user_id="alice"))


def record(text: str, **metadata: object) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id="alice"), kind=MemoryKind.FACT, text=text,
        metadata=dict(metadata), created_at=NOW, updated_at=NOW,
        content_hash=content_hash("fact", text),
    )


def vec(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def audit(url: str) -> list[str]:
    auditor = PostgresAuditor(url)
    try:
        return [str(f) for f in auditor.audit()]
    finally:
        auditor.close()


def test_replicas_writing_one_user_never_fork_its_chain(pg_url: str) -> None:
    replicas = [PostgresStore(pg_url, embedding_dim=DIM) for _ in range(3)]  # own pools
    errors: list[BaseException] = []

    def write(store: PostgresStore, n: int) -> None:
        try:
            for i in range(15):
                store.apply(WriteBatch(inserts=[(record(f"replica {n} fact {i}"), vec(i))]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    listed, total = replicas[0].list_memories(ALICE, limit=100)
    assert total == 45 and len(listed) == 45
    for store in replicas:
        assert store.consistency()["integrity"]["ok"]
        store.close()
    assert audit(pg_url) == []


def test_jsonb_numbers_are_signed_as_they_are_read_back(pg_url: str) -> None:
    store = PostgresStore(pg_url, embedding_dim=DIM)
    rec = record("numbers", big=1e16, bigger=1.2345678901234567e20, zero=-0.0, small=1e-7,
                 whole=3.0, nested=[{"x": 2e300}])
    store.apply(WriteBatch(inserts=[(rec, vec(0))]))
    assert store.get(rec.id) is not None
    store.close()
    assert audit(pg_url) == []


def test_the_witness_is_the_url_without_its_password() -> None:
    url = "postgresql+psycopg://memsvc@db.example/mem?options=-csearch_path%3Ds1"
    with_password = "postgresql+psycopg://memsvc:secret@db.example/mem?options=-csearch_path%3Ds1"
    assert witness_name(url) == witness_name(with_password)
    assert witness_name(url) != witness_name(url.replace("s1", "s2"))
    assert "secret" not in witness_name(with_password)


def test_memsvc_verify_audits_a_postgres_store(pg_url: str) -> None:
    store = PostgresStore(pg_url, embedding_dim=DIM)
    victim = record("alice likes tea")
    store.apply(WriteBatch(inserts=[(victim, vec(0)), (record("alice likes jam"), vec(1))]))
    store.close()
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "--db", pg_url])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE memories SET text = 'alice likes poison' WHERE id = %s",
                     (victim.id,))
    result = runner.invoke(app, ["verify", "--db", pg_url])
    assert result.exit_code == 1
    assert f"memory {victim.id}" in result.output
