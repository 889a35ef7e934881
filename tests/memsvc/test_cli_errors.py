"""Issue 11, L4: bad files, paths, argv and filters are one typed line and a non-zero exit.

The CLI printed Python tracebacks for a missing or undecodable import file, an export into
a missing folder, a `--db` that is not a store (for `keys`), a bad LLM URL, a port out of
range, and benchmark files that are not JSON. Every case here must end with exit code 2
(or typer's usage error, also 2), one line that says `error`, and no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MEMSVC_EMBED_THREADS", "1")
    (tmp_path / "folder").mkdir()
    (tmp_path / "not-utf8.jsonl").write_bytes(b"\xff\xfe{}\n")
    (tmp_path / "not-a-store.db").write_text("plain text, not SQLite")
    (tmp_path / "truncated.json").write_text('{"a": ')
    return {
        "db": str(tmp_path / "cli.db"),
        "missing": str(tmp_path / "missing.jsonl"),
        "folder": str(tmp_path / "folder"),
        "not_utf8": str(tmp_path / "not-utf8.jsonl"),
        "not_a_store": str(tmp_path / "not-a-store.db"),
        "truncated": str(tmp_path / "truncated.json"),
        "no_dir_file": str(tmp_path / "no" / "such" / "dir" / "out.jsonl"),
        "out": str(tmp_path / "results"),
    }


CASES = [
    ("import", "{missing}", "--db", "{db}"),
    ("import", "{folder}", "--db", "{db}"),
    ("import", "{not_utf8}", "--db", "{db}"),
    ("export", "{no_dir_file}", "--db", "{db}"),
    ("export", "{folder}", "--db", "{db}"),
    ("keys", "list", "--db", "{not_a_store}"),
    ("keys", "create", "n", "--tenant", "t", "--db", "{folder}"),
    ("keys", "revoke", "x", "--db", "{not_a_store}"),
    ("list", "--user-id", "u", "--db", "{not_a_store}"),
    ("search", "x", "--user-id", "u", "--filters", "[1]", "--db", "{db}"),
    ("search", "x", "--user-id", "u", "--filters", '{{"a": {{"like": 1}}}}', "--db", "{db}"),
    ("llm", "status", "--base-url", "not a url"),
    ("llm", "status", "--base-url", "http://[::1"),
    ("llm", "status", "--port", "99999"),
    ("serve", "--port", "99999", "--db", "{db}"),
    ("eval", "locomo", "{missing}", "--out-dir", "{out}"),
    ("eval", "locomo", "{not_utf8}", "--out-dir", "{out}"),
    ("eval", "longmemeval", "{truncated}", "--out-dir", "{out}"),
    ("get", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--no-such-flag"),
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a[:2]))
def test_bad_input_is_one_line_not_a_traceback(
    files: dict[str, str], args: tuple[str, ...]
) -> None:
    argv = [a.format(**files) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, (result.exit_code, repr(result.exception), result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    assert "Traceback" not in result.output
    assert "error" in result.output.lower()
