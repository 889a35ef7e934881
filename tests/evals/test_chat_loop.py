"""The chat-loop benchmark end to end on the small LoCoMo file made for the tests."""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals import chat_loop

DATA = Path(__file__).parent / "data"


def test_each_question_is_searched_after_a_write_and_without_one(tmp_path: Path) -> None:
    report = chat_loop.run([str(DATA / "locomo_tiny.json")], mode="raw", out_dir=tmp_path,
                           tag="t")
    after, quiet = report["search"]["after_add"], report["search"]["no_write"]
    questions = after["search"]["n"]
    assert questions > 0 and quiet["search"]["n"] == questions
    assert after["graph"]["n"] == questions  # each search's own stages are reported
    on_disk = json.loads((tmp_path / "chat-loop-raw-t.json").read_text())
    assert on_disk["search"] == report["search"]
    assert "| after add |" in (tmp_path / "chat-loop-raw-t.md").read_text()
