"""LoCoMo the way an application uses memsvc: one store, everything ingested first, then asked.

`evals/locomo.py` ingests a conversation and asks its questions before the next one, with a
warmed embedder and an explicit plan: right for recall, kind to latency. An application
opens one `Memory` in a fresh process, writes everything it has (one `add` per session), and
searches later with the defaults. This mode does exactly that, in a child process that imports
nothing but the public SDK, and times `add` and `search` only (no warm-up: an application's
first call pays for the model too, which the p50 absorbs). Each of `limit=10` and `limit=20`
gets its own fresh process and store (asked twice in one process, the second pass would be
answered by the query-embedding cache); recall is scored as in `locomo.py`.

    python -m memsvc.evals.locomo --app /work/shared/data/locomo-dev --mode raw

Results: `evals/results/locomo-app-<mode>[-<tag>].json|.md`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memsvc.evals.metrics import Aggregate, latency_summary, score_ranking, units_of
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    git_state,
    markdown_table,
    write_results,
)

APP_LIMITS = (10, 20)


def measure(paths: Sequence[str], mode: str, limit: int) -> dict[str, Any]:
    """Ingest all conversations into one fresh store, then ask every question; the raw
    samples (runs in the child process: the only memsvc imports are public ones)."""
    from memsvc import Memory
    from memsvc.evals.locomo import MODES, OVERALL_CATEGORIES, load_conversations

    conversations = load_conversations(paths)
    samples: dict[str, Any] = {"add_ms": [], "add_turns": [], "turns": 0, "search": {}}
    scores: dict[int, Aggregate] = {}
    with tempfile.TemporaryDirectory(prefix="memsvc-locomo-app-") as tmp:
        memory = Memory(db_path=Path(tmp) / "app.db")
        try:
            dia_of: dict[str, str] = {}
            for conv in conversations:
                for session in conv.sessions:
                    if not session.turns:
                        continue
                    messages = [{"role": "user", "name": t.speaker, "content": t.text}
                                for t in session.turns]
                    start = time.perf_counter()
                    result = memory.add(messages, user_id=conv.sample_id,
                                        session_id=f"session_{session.number}",
                                        timestamp=session.timestamp, infer=MODES[mode])
                    samples["add_ms"].append((time.perf_counter() - start) * 1000)
                    samples["turns"] += len(messages)
                    samples["add_turns"].append(len(messages))
                    dia_of.update(zip(result.message_ids, (t.dia_id for t in session.turns),
                                      strict=True))
            timing: dict[str, list[float]] = {"search": []}
            for conv in conversations:
                for q in conv.questions:
                    if not q.evidence:
                        continue
                    start = time.perf_counter()
                    response = memory.search(q.question, user_id=conv.sample_id, limit=limit)
                    timing["search"].append((time.perf_counter() - start) * 1000)
                    for stage, ms in response.timing_ms.items():
                        timing.setdefault(stage, []).append(ms)
                    covered = [units_of(_sources(hit), dia_of) for hit in response.results]
                    score = score_ranking(covered, q.evidence, (limit,))
                    if q.category in OVERALL_CATEGORIES:
                        scores.setdefault(0, Aggregate((limit,))).add(score)
                    scores.setdefault(q.category, Aggregate((limit,))).add(score)
            samples["search"] = timing
        finally:
            memory.close()
    samples["recall"] = {str(cat): agg.summary() for cat, agg in scores.items()}
    return samples


def _sources(hit: Any) -> list[str]:
    """A hit's source messages, its grouped `related` memories' too when it has them."""
    sources = list(hit.memory.provenance.source_message_ids)
    for related in getattr(hit, "related", None) or ():
        memory = getattr(related, "memory", related)
        sources.extend(memory.provenance.source_message_ids)
    return sources


def run(paths: Sequence[str], *, mode: str = "raw", out_dir: Path | None = RESULTS_DIR,
        tag: str | None = None) -> dict[str, Any]:
    """Measure in a fresh child process and write the report (JSON + Markdown)."""
    load_at_start = environment()["load_average_1_5_15"]
    runs = {}
    for limit in APP_LIMITS:
        child = subprocess.run(
            [sys.executable, "-m", "memsvc.evals.locomo_app", "--child", mode, str(limit),
             *paths], check=True, capture_output=True, text=True,
        )
        runs[str(limit)] = json.loads(child.stdout.strip().splitlines()[-1])
    add_ms = [ms for samples in runs.values() for ms in samples["add_ms"]]
    turns = sum(samples["turns"] for samples in runs.values())
    # each process's first add also loads the model: the rest is what an add costs later
    later_ms = sum(sum(samples["add_ms"][1:]) for samples in runs.values())
    later_turns = sum(sum(samples["add_turns"][1:]) for samples in runs.values())
    report: dict[str, Any] = {
        "benchmark": "locomo-app",
        "mode": mode,
        "ingest": {
            "turns": turns, "add_calls": len(add_ms), "processes": len(runs),
            "ms_per_turn": round(sum(add_ms) / max(turns, 1), 3),
            "ms_per_turn_after_first_add": round(later_ms / max(later_turns, 1), 3),
            "first_add_ms": [round(samples["add_ms"][0], 1) for samples in runs.values()
                             if samples["add_ms"]],
            "per_call": latency_summary(add_ms),
        },
        "search": {
            limit: {stage: latency_summary(ms) for stage, ms in samples["search"].items()}
            for limit, samples in runs.items()
        },
        "recall": {limit: samples["recall"] for limit, samples in runs.items()},
        "config": {"git": git_state(), "environment": environment(),
                   "load_average_at_start": load_at_start, "tag": tag,
                   "data_files": list(paths)},
    }
    if out_dir is not None:
        stem = f"locomo-app-{mode}" + (f"-{tag}" if tag else "")
        write_results(out_dir, stem, report, render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """Per-limit search latency (total and each stage's p50) and recall, then ingest."""
    from memsvc.evals.locomo import CATEGORIES

    rows = []
    for limit, stages in report["search"].items():
        recall = report["recall"][limit]
        overall = recall.get("0", {})
        rows.append([
            limit, stages["search"].get("p50_ms"), stages["search"].get("p95_ms"),
            ", ".join(f"{name} {s.get('p50_ms')}" for name, s in stages.items()
                      if name != "search"),
            overall.get(f"recall@{limit}"),
            *[recall.get(str(cat), {}).get(f"recall@{limit}") for cat in (1, 2, 3, 4)],
        ])
    ingest = report["ingest"]
    config = report["config"]
    header = ["limit", "search p50 ms", "p95 ms", "stage p50s (ms, inside search)",
              "R@limit (1-4)", *[CATEGORIES[c] for c in (1, 2, 3, 4)]]
    return "\n".join([
        f"# LoCoMo, application mode — `{report['mode']}`"
        + (f" ({config['tag']})" if config.get("tag") else ""),
        "",
        "One `Memory` in a fresh process, all conversations ingested first (one `add` per "
        "session), then every question with the default plan; wall clock around `add` and "
        "`search` only, no warm-up.",
        "",
        markdown_table(header, rows),
        "",
        f"- ingest: {ingest['turns']} turns in {ingest['add_calls']} `add` calls "
        f"({ingest['processes']} processes), "
        f"**{ingest['ms_per_turn']} ms per turn**; after each process's first `add` (which "
        f"also loads the model: {ingest.get('first_add_ms')} ms) "
        f"**{ingest.get('ms_per_turn_after_first_add')} ms per turn**",
        f"- git `{config['git'].get('commit')}` (dirty: {config['git'].get('dirty')}); "
        f"{config['environment'].get('cpus')} CPUs; load average "
        f"{config.get('load_average_at_start')} at start, "
        f"{config['environment'].get('load_average_1_5_15')} at end",
        "",
    ])


def _child(argv: Sequence[str]) -> int:
    mode, limit, *paths = argv
    print(json.dumps(measure(paths, mode, int(limit))))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(_child(sys.argv[2:]))
    raise SystemExit("run it as: python -m memsvc.evals.locomo --app PATHS --mode raw|infer")


__all__ = ["APP_LIMITS", "measure", "run"]
