"""The application mode of the LoCoMo eval, end to end on the small files made for the tests.

It starts real child processes (one per limit), each a fresh `Memory` on a temp database:
the point of the mode is that nothing of the parent (a warmed model, a plan) reaches them.
"""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals import locomo_app

DATA = Path(__file__).parent / "data"
FILES = [str(DATA / "locomo_tiny.json"), str(DATA / "locomo_released.json")]


def test_app_mode_measures_each_limit_in_its_own_process(tmp_path: Path) -> None:
    report = locomo_app.run(FILES, mode="raw", out_dir=tmp_path)
    assert set(report["search"]) == {"10", "20"}
    for limit in ("10", "20"):
        stages = report["search"][limit]
        assert stages["search"]["n"] == 6  # 7 questions, one without usable evidence
        assert stages["embed"]["n"] == 6  # every stage's own timing is reported
        # at most 7 turns per conversation: the top 10 already holds every turn
        assert report["recall"][limit]["0"][f"recall@{limit}"] == 1.0
    assert report["ingest"]["turns"] == 18 and report["ingest"]["processes"] == 2
    # the model loads in each process's first add, reported apart from the adds after it
    ingest = report["ingest"]
    assert len(ingest["first_add_ms"]) == 2
    assert min(ingest["first_add_ms"]) > ingest["per_call"]["p50_ms"]
    assert 0 < ingest["ms_per_turn_after_first_add"] < ingest["ms_per_turn"]
    on_disk = json.loads((tmp_path / "locomo-app-raw.json").read_text())
    assert on_disk["recall"] == report["recall"]
    markdown = (tmp_path / "locomo-app-raw.md").read_text()
    assert "ms per turn" in markdown and "| 20 |" in markdown
