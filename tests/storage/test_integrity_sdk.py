"""Integrity through the public SDK and the CLI: a tampered memory is not served, the SDK's
own changes (update, delete, consolidation) keep the store valid, `memsvc verify` says so."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc import Memory
from memsvc.cli.main import app
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.errors import IntegrityError
from memsvc.model.settings import Settings

runner = CliRunner()


def sql(path: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(str(path))  # the stdlib's, with every store of the test closed
    try:
        conn.execute(statement, params)
        conn.commit()
    finally:
        conn.close()


def verify(path: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "--db", str(path), *extra])
    return result.exit_code, result.output


@pytest.fixture
def filled(db_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[list[str]]:
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        ids = [m.add(f"My sister lives in city number {i}", user_id="alice").results[0].id
               for i in range(4)]
    yield ids


def test_a_tampered_memory_is_refused_on_every_read(
    filled: list[str], db_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    victim = filled[2]
    sql(db_path, "UPDATE memories SET text = 'My sister lives on the moon' WHERE id = ?",
        victim)
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        with pytest.raises(IntegrityError):
            m.get(victim)
        assert victim not in [r.id for r in m.get_all(user_id="alice").items]
        hits = m.search("Where does my sister live? the moon", user_id="alice", limit=10)
        assert hits.results and victim not in [h.memory.id for h in hits.results]
        assert m.get(filled[0]).text.endswith("number 0")
        assert m.store.consistency()["integrity"]["refused"] >= 2
    code, output = verify(db_path)
    assert code == 1 and f"FINDING tenant 'default' scope 'alice': memory {victim}" in output


def test_deleted_rows_make_the_user_fail_closed(
    filled: list[str], db_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    sql(db_path, "DELETE FROM memories WHERE id = ?", filled[3])
    with (Memory(settings=Settings(db_path=db_path), embedder=embedder) as m,
          pytest.raises(IntegrityError, match="head says")):
        m.get_all(user_id="alice")
    assert verify(db_path)[0] == 1


def test_sdk_changes_and_consolidation_keep_the_store_valid(
    filled: list[str], db_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        m.add("My sister lives in city number 1", user_id="alice")  # a near-duplicate
        m.add([{"role": "user", "content": "I adopted a dog called Rex"}], user_id="alice",
              infer=True)
        m.update(filled[0], "My sister moved to Lisbon")
        m.delete(filled[1])
        m.delete(filled[2], hard=True)
        m.search("sister", user_id="alice")
        report = m.consolidate(user_id="alice")
        m.add("My brother lives in Porto", user_id="alice")
        m.consolidate(user_id="alice")  # the second run updates what the first wrote
        m.delete_all(user_id="bob", hard=True)
        assert m.store.consistency()["integrity"]["ok"]
    assert report.summaries_added >= 1  # consolidation wrote (signed) memories
    code, output = verify(db_path)
    assert code == 0 and "intact" in output, output
    with Memory(settings=Settings(db_path=db_path), embedder=embedder) as m:
        assert m.get(filled[0]).text == "My sister moved to Lisbon"
        assert m.get_all(user_id="alice").total >= 2


def test_verify_rekey_and_a_missing_store(filled: list[str], db_path: Path,
                                          tmp_path: Path) -> None:
    code, output = verify(db_path, "--rekey")
    assert code == 0 and "re-signed" in output
    code, output = verify(tmp_path / "nowhere.db")
    assert code == 2 and "no store" in output
