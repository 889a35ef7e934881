"""A chat agent's loop: every turn is written, then the next question searched.

The application mode (`locomo_app.py`) ingests everything first and searches afterwards, so
each search finds the scope's caches warm. An agent that remembers as it talks alternates:
`add` this turn, `search` for the next. Every `add` changes the scope's entity links, and the
first search after it rebuilds the scope's entity graph (`retrievers/graph.py`); this measures
what that costs, in a fresh process through the public SDK: the LoCoMo dev sessions are
ingested (one `add` per session), then for each question of the first conversation one turn
is added to that conversation's scope and the question searched, and for comparison the same
questions are searched again with no write in between (their query embeddings cached by then:
compare the stages, not only the totals). After a write the `embed` stage includes the
rebuild too: the topic channel asks for the graph before the question is embedded.

    python -m memsvc.evals.chat_loop /work/shared/data/locomo-dev [--mode raw] [--tag T]

Results: `evals/results/chat-loop-<mode>[-<tag>].json|.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memsvc.evals.metrics import latency_summary
from memsvc.evals.report import RESULTS_DIR, environment, git_state, write_results


def measure(paths: Sequence[str], mode: str) -> dict[str, Any]:
    """Runs in the child process: the only memsvc imports are public ones."""
    from memsvc import Memory
    from memsvc.evals.locomo import MODES, load_conversations

    conversations = load_conversations(paths)
    samples: dict[str, dict[str, list[float]]] = {"after_add": {}, "no_write": {}}
    with tempfile.TemporaryDirectory(prefix="memsvc-chat-loop-") as tmp:
        memory = Memory(db_path=Path(tmp) / "chat.db")
        try:
            for conv in conversations:
                for session in conv.sessions:
                    if session.turns:
                        memory.add([{"role": "user", "name": t.speaker, "content": t.text}
                                    for t in session.turns], user_id=conv.sample_id,
                                   session_id=f"session_{session.number}",
                                   timestamp=session.timestamp, infer=MODES[mode])
            first = conversations[0]
            speaker = first.sessions[0].turns[0].speaker
            questions = [q.question for q in first.questions if q.evidence]
            for phase in ("after_add", "no_write"):
                for number, question in enumerate(questions):
                    if phase == "after_add":
                        memory.add([{"role": "user", "name": speaker,
                                     "content": f"Turn {number} of today's chat: {question}"}],
                                   user_id=first.sample_id, session_id="chat", infer=MODES[mode])
                    start = time.perf_counter()
                    response = memory.search(question, user_id=first.sample_id, limit=20)
                    elapsed = (time.perf_counter() - start) * 1000
                    stages = samples[phase]
                    stages.setdefault("search", []).append(elapsed)
                    for stage, ms in response.timing_ms.items():
                        stages.setdefault(stage, []).append(ms)
        finally:
            memory.close()
    return samples


def run(paths: Sequence[str], *, mode: str, out_dir: Path, tag: str | None) -> dict[str, Any]:
    load_at_start = environment()["load_average_1_5_15"]
    child = subprocess.run(
        [sys.executable, "-m", "memsvc.evals.chat_loop", "--child", mode, *paths],
        check=True, capture_output=True, text=True,
    )
    samples = json.loads(child.stdout.strip().splitlines()[-1])
    report = {
        "benchmark": "chat-loop", "mode": mode,
        "search": {phase: {stage: latency_summary(ms) for stage, ms in stages.items()}
                   for phase, stages in samples.items()},
        "config": {"git": git_state(), "environment": environment(),
                   "load_average_at_start": load_at_start, "tag": tag,
                   "data_files": list(paths)},
    }
    stem = f"chat-loop-{mode}" + (f"-{tag}" if tag else "")
    write_results(out_dir, stem, report, render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Chat loop — `{report['mode']}` ({report['config']['tag'] or 'untagged'})", "",
             "Each question of the first LoCoMo conversation searched right after an `add` to "
             "its scope, then again with no write before it; p50 ms (p95), limit 20.", "",
             "| search | total | stages (p50 ms) |", "| --- | --- | --- |"]
    for phase, stages in report["search"].items():
        others = ", ".join(f"{name} {s['p50_ms']:.1f}" for name, s in stages.items()
                           if name != "search")
        total = stages["search"]
        lines.append(f"| {phase.replace('_', ' ')} | {total['p50_ms']:.1f} "
                     f"({total['p95_ms']:.1f}) | {others} |")
    config = report["config"]
    lines += ["", f"- git `{config['git']['commit']}` (dirty: {config['git']['dirty']}); "
              f"{config['environment']['cpus']} CPUs; load average "
              f"{config['load_average_at_start']} at start", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        mode, *paths = argv[1:]
        print(json.dumps(measure(paths, mode)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="LoCoMo JSON files or folders of them")
    parser.add_argument("--mode", choices=("raw", "infer"), default="raw")
    parser.add_argument("--tag", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    print(render_markdown(run(args.paths, mode=args.mode, out_dir=args.out, tag=args.tag)))


if __name__ == "__main__":
    main()
