"""What every eval writes next to its numbers: where it ran, on what, with which settings.

A number without the exact configuration and code version behind it cannot be compared with
the next run, so every result file carries them. Output goes to `evals/results/` as JSON (for
machines) and Markdown (for people).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def git_state(where: Path | None = None) -> dict[str, Any]:
    """The commit the code ran from and whether the work tree had uncommitted changes."""
    cwd = str(where or Path(__file__).resolve().parent)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def file_fingerprint(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def environment() -> dict[str, Any]:
    """Interpreter, platform and the versions of the libraries that decide speed."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    info["cpus"] = os.cpu_count()
    # Other work on a shared machine distorts every timing; record how busy it was.
    info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    for module in ("torch", "numpy", "sentence_transformers", "sqlite_vec"):
        try:
            info[module] = __import__(module).__version__
        except Exception:
            info[module] = None
    return info


def _clean(value: Any) -> Any:
    """JSON cannot hold NaN; write null instead so every reader can parse the file."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2, default=str) + "\n", encoding="utf-8")
    return path


def write_results(out_dir: Path, stem: str, report: dict[str, Any], markdown: str) -> None:
    """`<stem>.json` and `<stem>.md` in `out_dir`: the pair every eval and benchmark writes."""
    write_json(out_dir / f"{stem}.json", report)
    (out_dir / f"{stem}.md").write_text(markdown, encoding="utf-8")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats get 3 decimals, missing values a dash."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
