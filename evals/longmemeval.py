"""LongMemEval retrieval eval: session- and turn-level recall@k of memsvc search.

LongMemEval (Wu et al., 2024) gives each question its own haystack of chat sessions. Each
instance here becomes its own scope (`user_id` = question id); each haystack session is one
`Memory.add` call of its turns (`session_id` = the haystack session id, timestamp = its date).
The question is then searched in that scope and the returned memories are mapped back through
their provenance to the turns and sessions they came from:

- session level: gold = `answer_session_ids`; a session counts as found when any of the top-k
  memories came from it (k counts memories, not distinct sessions);
- turn level: gold = the turns flagged `has_answer`; instances without such flags are left out
  of the turn-level numbers (and counted).

Abstention questions (id ending in `_abs`) have no evidence to find and are left out, as in
the benchmark's own retrieval evaluation.

    python -m memsvc.evals.longmemeval longmemeval_s.json --mode raw --limit 50
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memsvc import Memory, SearchPlan
from memsvc.evals.harness import (
    MemoryFactory,
    Timings,
    build_plan,
    default_memory,
    timed_add,
    timed_search,
    warm_up,
)
from memsvc.evals.metrics import DEFAULT_KS, Aggregate, latency_summary, score_ranking
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    file_fingerprint,
    git_state,
    markdown_table,
    write_results,
)

MODES = {"raw": False, "infer": True}
ROLES = frozenset({"user", "assistant", "system", "tool"})
_DATE = re.compile(
    r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:\s*\([A-Za-z]+\))?(?:[\sT]+(\d{1,2}):(\d{2}))?"
)


# -- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LMETurn:
    turn_id: str  # "<session id>#<index in the session>"
    role: str
    content: str
    has_answer: bool


@dataclass(frozen=True)
class LMESession:
    session_id: str
    timestamp: datetime
    turns: tuple[LMETurn, ...]


@dataclass(frozen=True)
class Instance:
    question_id: str
    question_type: str
    question: str
    question_date: datetime | None
    answer: Any
    sessions: tuple[LMESession, ...]
    answer_session_ids: tuple[str, ...]

    @property
    def is_abstention(self) -> bool:
        return self.question_id.endswith("_abs")

    @property
    def answer_turn_ids(self) -> tuple[str, ...]:
        return tuple(t.turn_id for s in self.sessions for t in s.turns if t.has_answer)


def parse_date(text: str) -> datetime:
    """'2023/05/20 (Sat) 02:21' → 2023-05-20 02:21 UTC (the benchmark gives no time zone)."""
    match = _DATE.search(str(text))
    if match is None:
        raise ValueError(f"unrecognised LongMemEval date {text!r}")
    year, month, day, hour, minute = match.groups()
    return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=UTC)


def parse_instance(raw: dict[str, Any], *, where: str) -> Instance:
    missing = [k for k in ("question_id", "question", "haystack_sessions", "haystack_dates")
               if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    question_id = str(raw["question_id"])
    sessions_raw = raw["haystack_sessions"]
    dates = raw["haystack_dates"]
    ids = raw.get("haystack_session_ids") or [f"session_{i}" for i in range(len(sessions_raw))]
    if not (len(sessions_raw) == len(dates) == len(ids)):
        raise ValueError(
            f"{where} ({question_id}): {len(sessions_raw)} sessions, {len(dates)} dates and "
            f"{len(ids)} session ids must line up"
        )
    sessions: list[LMESession] = []
    for session_id, date, turns_raw in zip(ids, dates, sessions_raw, strict=True):
        turns = []
        for i, turn in enumerate(turns_raw):
            role = str(turn.get("role", "user"))
            if role not in ROLES:
                raise ValueError(f"{where} ({question_id}): session {session_id} turn {i} has "
                                 f"role {role!r}")
            turns.append(
                LMETurn(
                    turn_id=f"{session_id}#{i}",
                    role=role,
                    content=str(turn.get("content") or ""),
                    has_answer=bool(turn.get("has_answer", False)),
                )
            )
        sessions.append(LMESession(str(session_id), parse_date(date), tuple(turns)))
    question_date = raw.get("question_date")
    return Instance(
        question_id=question_id,
        question_type=str(raw.get("question_type") or "unknown"),
        question=str(raw["question"]),
        question_date=parse_date(question_date) if question_date else None,
        answer=raw.get("answer"),
        sessions=tuple(sessions),
        answer_session_ids=tuple(str(s) for s in raw.get("answer_session_ids") or []),
    )


def load_instances(path: str | Path, *, limit: int | None = None) -> list[Instance]:
    """The instances of a LongMemEval file (a JSON list; one object is taken as a list of one)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    items = data if isinstance(data, list) else [data]
    if limit is not None:
        items = items[:limit]
    return [parse_instance(item, where=f"{path}[{i}]") for i, item in enumerate(items)]


def _fit(text: str, max_bytes: int) -> str:
    """Cut a turn to the store's size limit on a character boundary (counted by the caller)."""
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


# -- running ------------------------------------------------------------------------------


def _ingest(memory: Memory, inst: Instance, mode: str, timings: Timings,
            counts: dict[str, int]) -> dict[str, str]:
    """Add every session of `inst`; map stored message ids to turn ids."""
    turn_of_message: dict[str, str] = {}
    limit = memory.settings.max_text_bytes
    for session in inst.sessions:
        kept = [t for t in session.turns if t.content.strip()]
        counts["empty_turns"] += len(session.turns) - len(kept)
        if not kept:
            continue
        counts["truncated_turns"] += sum(len(t.content.encode("utf-8")) > limit for t in kept)
        messages = [{"role": t.role, "content": _fit(t.content, limit)} for t in kept]
        ids = timed_add(
            memory, messages, timings, user_id=inst.question_id, session_id=session.session_id,
            timestamp=session.timestamp, infer=MODES[mode],
        )
        turn_of_message.update(zip(ids, (t.turn_id for t in kept), strict=True))
    return turn_of_message


def run(
    path: str | Path,
    *,
    mode: str = "raw",
    plan: SearchPlan | str | None = None,
    weights: Mapping[str, float] | None = None,
    depths: Mapping[str, int] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    limit: int | None = None,
    use_as_of: bool = False,
    out_dir: Path | None = RESULTS_DIR,
    tag: str | None = None,
    memory_factory: MemoryFactory = default_memory,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the eval on one file; with `out_dir`, write `longmemeval-<mode>[-<tag>].json|.md`.

    `limit` takes the first N instances; `use_as_of` searches as of each question's date.
    One fresh temporary database holds every instance (each in its own scope).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    ks = tuple(sorted(set(ks)))
    instances = load_instances(path, limit=limit)
    session_level = {"all": Aggregate(ks)}
    turn_level = {"all": Aggregate(ks)}
    counts = {"instances": len(instances), "abstention_skipped": 0, "no_answer_sessions": 0,
              "no_answer_turns": 0, "empty_turns": 0, "truncated_turns": 0}
    timings = Timings()
    with tempfile.TemporaryDirectory(prefix="memsvc-lme-") as tmp:
        memory = memory_factory(Path(tmp) / "longmemeval.db")
        try:
            warm_up(memory)
            search_plan = build_plan(plan, memory=memory, weights=weights,
                                     depths=depths).with_limit(max(ks))
            for n, inst in enumerate(instances, start=1):
                if inst.is_abstention:
                    counts["abstention_skipped"] += 1
                    continue
                turn_of_message = _ingest(memory, inst, mode, timings, counts)
                session_of_turn = {t.turn_id: s.session_id
                                   for s in inst.sessions for t in s.turns}
                covered_turns, _ = timed_search(
                    memory, inst.question, timings, turn_of_message,
                    user_id=inst.question_id, limit=max(ks), plan=search_plan,
                    as_of=inst.question_date if use_as_of else None,
                )
                covered_sessions = [{session_of_turn[t] for t in c} for c in covered_turns]
                if inst.answer_session_ids:
                    score = score_ranking(covered_sessions, inst.answer_session_ids, ks)
                    session_level["all"].add(score)
                    session_level.setdefault(inst.question_type, Aggregate(ks)).add(score)
                else:
                    counts["no_answer_sessions"] += 1
                stored_turns = set(turn_of_message.values())
                gold_turns = [t for t in inst.answer_turn_ids if t in stored_turns]
                if gold_turns:
                    score = score_ranking(covered_turns, gold_turns, ks)
                    turn_level["all"].add(score)
                    turn_level.setdefault(inst.question_type, Aggregate(ks)).add(score)
                else:
                    counts["no_answer_turns"] += 1
                if progress and n % 10 == 0:
                    print(f"[longmemeval] {n}/{len(instances)} instances", file=sys.stderr)
            config = {
                "mode": mode,
                "infer": MODES[mode],
                "settings": memory.settings.describe(),
                "embedder": getattr(memory.embedder, "name", type(memory.embedder).__name__),
                "extractor": getattr(memory.extractor, "name", None),
                "search_plan": search_plan.describe(),
                "search_limit": max(ks),
                "as_of": "question date" if use_as_of else None,
                "data_file": file_fingerprint(Path(path)),
                "limit": limit,
                "git": git_state(),
                "environment": environment(),
                "tag": tag,
            }
        finally:
            memory.close()
    report = {
        "benchmark": "longmemeval",
        "session_level": {name: agg.summary() for name, agg in sorted(session_level.items())},
        "turn_level": {name: agg.summary() for name, agg in sorted(turn_level.items())},
        "counts": counts,
        "timing": {
            "ingest": {
                "turns": timings.add_items,
                "add_calls": len(timings.add_ms),
                "seconds": round(sum(timings.add_ms) / 1000, 3),
                "turns_per_s": timings.ingest_rate(),
            },
            "query": latency_summary(timings.search_ms),
        },
        "config": config,
    }
    if out_dir is not None:
        stem = f"longmemeval-{mode}" + (f"-{tag}" if tag else "")
        write_results(out_dir, stem, report, render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    first = report["session_level"]["all"]
    ks = sorted(int(key.split("@")[1]) for key in first if key.startswith("recall@"))
    header = ["level", "question type", "n", *[f"R@{k}" for k in ks],
              *[f"all@{k}" for k in ks], "MRR"]
    rows = [
        [level, name, s["n"], *[s[f"recall@{k}"] for k in ks], *[s[f"all@{k}"] for k in ks],
         s["mrr"]]
        for level in ("session_level", "turn_level")
        for name, s in report[level].items()
    ]
    config, timing = report["config"], report["timing"]
    return "\n".join([
        f"# LongMemEval retrieval — mode `{config['mode']}`",
        "",
        markdown_table(header, rows),
        "",
        "R@k: share of gold sessions (turns) behind the top-k memories; all@k: every gold one "
        "found; MRR of the first memory from a gold session (turn).",
        "",
        f"- counts: `{json.dumps(report['counts'])}`",
        f"- ingest: {timing['ingest']['turns']} turns, {timing['ingest']['turns_per_s']} turns/s; "
        f"query p50 {timing['query'].get('p50_ms')} ms, p95 {timing['query'].get('p95_ms')} ms",
        f"- search plan: `{json.dumps(config['search_plan'])}`",
        f"- git: `{config['git'].get('commit')}` (dirty: {config['git'].get('dirty')}), "
        f"data: {config['data_file']['path']}",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memsvc.evals.longmemeval",
        description="LongMemEval session- and turn-level recall@k of memsvc search.",
    )
    parser.add_argument("path", type=Path, help="a LongMemEval JSON file")
    parser.add_argument("--mode", choices=sorted(MODES), default="raw")
    parser.add_argument("--plan", default=None, help="recipe name (fast, balanced, deep)")
    parser.add_argument("--limit", type=int, default=None, help="first N instances only")
    parser.add_argument("--as-of", action="store_true", help="search as of the question date")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.path, mode=args.mode, plan=args.plan, limit=args.limit,
                 use_as_of=args.as_of, out_dir=None if args.no_write else args.out,
                 tag=args.tag, progress=True)
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
