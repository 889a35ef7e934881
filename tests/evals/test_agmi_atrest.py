"""agmi's at-rest suite (T1–T9) against memsvc on both backends: every edit is refused on
the read path (PostgreSQL: an embedded server started for the run, edited as its
superuser)."""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals import agmi_atrest


def test_every_at_rest_edit_is_rejected_on_read(tmp_path: Path) -> None:
    assert agmi_atrest.main(["--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "agmi-atrest.json").read_text())
    assert set(report["backends"]) == {"sqlite", "postgres"}
    for backend, edits in report["backends"].items():
        verdicts = {row["attack"]: row["verdict"] for row in edits}
        assert verdicts == {
            name: "REJECTED"
            for name in ("tamper", "truncate", "delete_middle", "reorder", "forge",
                         "cross_replay", "rollback_replay", "metadata_tamper",
                         "snapshot_rollback")
        }, backend
        # each refusal is memsvc's own IntegrityError, not a crash of the harness
        assert all("IntegrityError" in row["detail"] for row in edits), backend
    text = (tmp_path / "agmi-atrest.md").read_text()
    assert "## sqlite" in text and "## postgres" in text
    assert text.count("| T9 snapshot rollback | REJECTED |") == 2
