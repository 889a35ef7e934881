"""Export and import carry memories, raw messages and history (issue 11 L2): a store moved
SQLite → JSONL → PostgreSQL → JSONL → SQLite keeps all three; imported rows are checked and
signed by the importing store (nothing derived is taken from the file); old export files
(memories only) still import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memsvc import Memory
from memsvc.cli.main import app
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.errors import InvalidInputError
from memsvc.model.settings import Settings
from memsvc.storage.postgres.audit import PostgresAuditor
from memsvc.storage.sqlite.audit import SQLiteAuditor

USERS = ("alice", "bob")


def open_memory(where: Path | str, embedder: SentenceTransformerEmbedder) -> Memory:
    return Memory(settings=Settings(db_path=where), embedder=embedder)


def fill(m: Memory) -> None:
    for user in USERS:
        m.add([{"role": "user", "content": f"{user} lives in Lisbon"},
               {"role": "assistant", "content": "Noted."}], user_id=user, infer=True)
        m.add(f"{user} likes green tea", user_id=user)
    first = m.get_all(user_id="alice").items[0]
    m.update(first.id, "alice lives in Porto")


def export_lines(m: Memory) -> list[dict[str, Any]]:
    return [json.loads(item.model_dump_json()) for item in m.export(full=True)]


def contents(m: Memory) -> dict[str, Any]:
    """What must survive a move: memories, messages, and each memory's history."""
    out: dict[str, Any] = {}
    for user in USERS:
        memories = m.get_all(user_id=user, include_inactive=True).items
        out[user] = {
            "memories": sorted((r.id, r.text, r.status.value) for r in memories),
            "messages": [(s.id, s.role, s.content) for s in m.messages(user_id=user)],
            "history": {r.id: [(h.event.value, h.actor, h.created_at) for h in m.history(r.id)]
                        for r in memories},
        }
    return out


def audit(auditor: SQLiteAuditor | PostgresAuditor) -> list[str]:
    try:
        return [str(f) for f in auditor.audit()]
    finally:
        auditor.close()


@pytest.fixture
def source(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Path]:
    path = tmp_path / "source.db"
    with open_memory(path, embedder) as m:
        fill(m)
    yield path


def test_sqlite_to_postgres_and_back_keeps_memories_messages_and_history(
    source: Path, pg_url: str, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with open_memory(source, embedder) as m:
        expected = contents(m)
        lines = export_lines(m)
    assert {line.get("type") for line in lines} == {None, "message", "history"}
    assert all(expected[u]["messages"] and expected[u]["history"] for u in USERS)
    with open_memory(pg_url, embedder) as pg:
        result = pg.import_records(lines)
        assert result["messages"] == 6 and result["skipped"] == 0  # 3 messages a user
        got = contents(pg)
        for user in USERS:
            for part in ("memories", "messages", "history"):
                assert got[user][part] == expected[user][part], (user, part)
        again = pg.import_records(lines)  # a second import changes nothing
        assert again["imported"] == again["messages"] == again["history"] == 0
        assert contents(pg) == expected
        back = export_lines(pg)
    assert audit(PostgresAuditor(pg_url)) == []  # signed by PostgreSQL, not by the file
    target = tmp_path / "back.db"
    with open_memory(target, embedder) as m:
        m.import_records(back)
        assert contents(m) == expected
    assert audit(SQLiteAuditor(target)) == []


def test_the_cli_moves_a_whole_store_to_postgres(source: Path, pg_url: str, tmp_path: Path,
                                                 embedder: SentenceTransformerEmbedder) -> None:
    dump = tmp_path / "dump.jsonl"
    runner = CliRunner()
    exported = runner.invoke(app, ["export", str(dump), "--full", "--db", str(source)])
    assert exported.exit_code == 0, exported.output
    imported = runner.invoke(app, ["import", str(dump), "--db", pg_url, "--batch-size", "3"])
    assert imported.exit_code == 0, imported.output
    with open_memory(source, embedder) as m:
        expected = contents(m)
    with open_memory(pg_url, embedder) as pg:
        assert contents(pg) == expected


def test_derived_fields_in_the_file_are_not_trusted(
    source: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with open_memory(source, embedder) as m:
        lines = [line for line in export_lines(m) if "type" not in line][:1]
        original = m.get(lines[0]["id"])
    forged = {**lines[0], "content_hash": "0" * 64, "mac": "f" * 64, "chain_seq": 1}
    with open_memory(tmp_path / "t.db", embedder) as m:
        m.import_records([forged])
        assert m.get(forged["id"]).content_hash == original.content_hash
        # an old file (memories only): the import itself is the memory's history
        assert [h.actor for h in m.history(forged["id"])] == ["import"]
    assert audit(SQLiteAuditor(tmp_path / "t.db")) == []


def test_bad_messages_and_orphan_history_are_refused_before_anything_is_written(
    source: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with open_memory(source, embedder) as m:
        lines = export_lines(m)
    message = next(line for line in lines if line.get("type") == "message")
    history = next(line for line in lines if line.get("type") == "history")
    memory = next(line for line in lines if "type" not in line)
    cases = [
        ({**message, "id": "x" * 100_000}, "id"),
        ({**message, "content": "\ud800"}, "content"),
        ({**message, "scope": {}}, "scope"),
        ({**history, "memory_id": "nobody-has-this"}, "memory_id"),
        ({**history, "new": {"k": "\ud800"}, "memory_id": memory["id"]}, "new"),
        ({**history, "created_at": "yesterday", "memory_id": memory["id"]}, "created_at"),
    ]
    with open_memory(tmp_path / "t.db", embedder) as m:
        for bad, field in cases:
            with pytest.raises(InvalidInputError) as caught:
                m.import_records([memory, bad])
            assert field in (caught.value.field or "") or field in caught.value.message
        assert m.get_all(user_id=memory["scope"]["user_id"]).items == []
