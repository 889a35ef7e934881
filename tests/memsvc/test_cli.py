"""The CLI is the library under the same names; errors exit 2 with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc.cli import app

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMSVC_EMBED_THREADS", "1")
    return tmp_path / "cli.db"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_add_search_list_get_history_delete(db: Path) -> None:
    code, out = run("add", "I adopted a guinea pig named Oscar", "--user-id", "u1",
                    "--name", "Caroline", "--no-infer", "--db", str(db), "--json")
    assert code == 0, out
    memory_id = json.loads(out)["results"][0]["id"]

    code, out = run("search", "guinea pig", "--user-id", "u1", "--db", str(db), "--json")
    assert code == 0
    hit = json.loads(out)["results"][0]
    assert hit["memory"]["id"] == memory_id and "bm25" in hit["channel_ranks"]

    code, out = run("list", "--user-id", "u1", "--db", str(db), "--json")
    assert json.loads(out)["total"] == 1

    code, out = run("get", memory_id, "--db", str(db))
    assert json.loads(out)["text"] == "Caroline: I adopted a guinea pig named Oscar"

    assert run("delete", memory_id, "--db", str(db))[0] == 0
    code, out = run("history", memory_id, "--db", str(db))
    assert [e["event"] for e in json.loads(out)] == ["ADD", "DELETE"]


def test_export_then_import_into_a_new_store(db: Path, tmp_path: Path) -> None:
    for text in ("I live in Boston", "I like jazz", "I run on Sundays"):
        assert run("add", text, "--user-id", "u1", "--no-infer", "--db", str(db))[0] == 0
    dump = tmp_path / "dump.jsonl"
    code, out = run("export", str(dump), "--db", str(db))
    assert code == 0, out
    full = tmp_path / "full.jsonl"
    code, out = run("export", str(full), "--full", "--db", str(db))
    assert code == 0 and len(full.read_text().splitlines()) == 9  # + messages, history
    lines = dump.read_text().splitlines()
    assert len(lines) == 3

    other = tmp_path / "other.db"
    code, out = run("import", str(dump), "--db", str(other))
    assert code == 0 and "imported 3 memories" in out
    code, out = run("import", str(dump), "--db", str(other))
    assert "imported 0 memories, 0 messages, 0 history entries; skipped 3" in out
    code, out = run("search", "jazz", "--user-id", "u1", "--db", str(other), "--json")
    assert json.loads(out)["results"][0]["memory"]["text"] == "user: I like jazz"


def test_options_follow_the_sdk(db: Path, tmp_path: Path) -> None:
    for text in ("I live in Boston", "I like jazz"):
        assert run("add", text, "--user-id", "u1", "--no-infer", "--db", str(db))[0] == 0
    code, out = run("list", "--user-id", "u1", "--kind", "fact", "--db", str(db), "--json")
    assert code == 0 and json.loads(out)["total"] == 0
    code, out = run("list", "--user-id", "u1", "--kind", "episode", "--include-archived",
                    "--db", str(db), "--json")
    assert json.loads(out)["total"] == 2
    jazz = next(i for i in json.loads(out)["items"] if "jazz" in i["text"])
    code, out = run("search", "jazz", "--user-id", "u1", "--now", "2024-05-01",
                    "--include-archived", "--db", str(db), "--json")
    assert code == 0 and json.loads(out)["results"][0]["memory"]["id"] == jazz["id"]
    assert run("delete", jazz["id"], "--db", str(db))[0] == 0
    dump = tmp_path / "active.jsonl"
    assert run("export", str(dump), "--active-only", "--db", str(db))[0] == 0
    assert [json.loads(line)["text"] for line in dump.read_text().splitlines()] == [
        "user: I live in Boston"]


def test_stats_reports_consistent_indexes(db: Path) -> None:
    run("add", "hello there", "--user-id", "u1", "--no-infer", "--db", str(db))
    code, out = run("stats", "--db", str(db))
    assert code == 0
    stats = json.loads(out)
    assert stats["memories"] == 1 and stats["consistency"]["consistent"] is True


@pytest.mark.parametrize(
    "args",
    [
        ("add", "   ", "--user-id", "u1"),
        ("add", "no scope"),
        ("search", "x", "--user-id", "u1", "--filters", "{not json"),
        ("search", "x", "--user-id", "u1", "--filters", '{"a": {"like": 1}}'),
        ("get", "01HZZZZZZZZZZZZZZZZZZZZZZZ"),
        ("add", "hi", "--user-id", "u1", "--timestamp", "when pigs fly"),
    ],
)
def test_bad_input_exits_2_with_a_message(db: Path, args: tuple[str, ...]) -> None:
    code, out = run(*args, "--db", str(db))
    assert code == 2
    assert "error" in out


def test_import_of_a_broken_file_changes_nothing(db: Path, tmp_path: Path) -> None:
    run("add", "keep me", "--user-id", "u1", "--no-infer", "--db", str(db))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\nnot json\n')
    assert run("import", str(broken), "--db", str(db))[0] == 2
    code, out = run("list", "--user-id", "u1", "--db", str(db), "--json")
    assert code == 0
    assert [i["text"] for i in json.loads(out)["items"]] == ["user: keep me"]


def test_demo_loads_and_searches(db: Path) -> None:
    code, out = run("demo", "--db", str(db))
    assert code == 0, out
    assert "Loaded 12 demo turns" in out and "Biscuit" in out
