"""agmi's API family against memsvc's REST server with per-writer keys: the attacker's
memory is kept out on the external and laundered channels of every attack, and user B never
sees user A's memories. (The agent-laundered channel, content through the user's own key,
is reported, not asserted: provenance alone cannot close it.)"""

from __future__ import annotations

import json
from pathlib import Path

from memsvc.evals import agmi_api


def test_the_api_family_is_kept_out_on_the_external_and_laundered_channels(
    tmp_path: Path,
) -> None:
    assert agmi_api.main(["--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "agmi.json").read_text())
    rows = {r["attack"]: r for r in report["attacks"]}
    assert set(rows) == set(agmi_api.COLUMNS)
    assert all(r["status"] != "n/a" for r in rows.values()), rows  # every cell a verdict
    for name, row in rows.items():
        channels = ["cross-user"] if name == "cross_session_bleed" else ["external", "laundered"]
        for channel in channels:
            assert row["channels"][channel]["outcomes"] == [False] * 5, (name, channel)
    assert report["kept_out"] == {"external": True, "laundered": True, "cross-user": True}
    assert "| memsvc, per-writer API keys" in (tmp_path / "agmi.md").read_text()
