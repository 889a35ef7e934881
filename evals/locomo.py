"""LoCoMo evidence-recall eval: load conversations, ingest them, ask every question, score.

Each conversation becomes one scope (`user_id` = its sample id); each session is one
`Memory.add` call of its turns, with the speaker as `name` and the session's date as the
timestamp; a shared photo's caption is part of the turn text. Every question is then searched
in that scope, and the memories returned are mapped back, through their provenance (source
message ids), to the dialogue ids they were built from. Scores are evidence recall@k, hit@k and
MRR per category; "overall" is categories 1-4 (category 5 asks about things never said, so it
is reported on its own).

    python -m memsvc.evals.locomo /work/shared/data/locomo-dev --mode raw

Only the public API is used; every run gets a fresh temporary database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from memsvc.evals.metrics import (
    DEFAULT_KS,
    Aggregate,
    QueryScore,
    latency_summary,
    score_ranking,
)
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    file_fingerprint,
    git_state,
    markdown_table,
    write_results,
)

CATEGORIES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
OVERALL_CATEGORIES = (1, 2, 3, 4)
MODES = {"raw": False, "infer": True}

_DIA_ID = re.compile(r"D\s*(\d+)\s*:\s*(\d+)")
_SESSION_KEY = re.compile(r"session_(\d+)$")
_SESSION_DATE = re.compile(
    r"(\d{1,2}):(\d{2})\s*([ap])\.?m\.?\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})", re.IGNORECASE
)
_MONTHS = {
    name: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")],
        start=1,
    )
    for name in names
}
_CAPTION_PREFIX = re.compile(r"^\s*(?:a\s+)?(?:photo|photograph|photography|picture|image)\s+of\s+",
                             re.IGNORECASE)


# -- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str  # what the memory store is given: the words, plus the photo caption if any


@dataclass(frozen=True)
class Session:
    number: int
    timestamp: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    question: str
    category: int
    evidence: tuple[str, ...]  # normalised dia_ids that exist in the conversation
    answer: Any = None
    dropped_evidence: tuple[str, ...] = ()  # evidence strings that name no turn


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    speakers: tuple[str, ...]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]
    source: str

    @property
    def turns(self) -> Iterator[Turn]:
        for session in self.sessions:
            yield from session.turns

    @property
    def last_date(self) -> datetime:
        return max(s.timestamp for s in self.sessions)


def normalise_dia_id(raw: str) -> str | None:
    """'D1:3', 'D01:03', 'D 1: 3' → 'D1:3'; None for anything that is not a dialogue id."""
    match = _DIA_ID.fullmatch(raw.strip())
    return f"D{int(match.group(1))}:{int(match.group(2))}" if match else None


def split_evidence(items: Sequence[Any]) -> list[str]:
    """Evidence entries as single dia_ids (some files pack several into one string)."""
    out: list[str] = []
    for item in items:
        for match in _DIA_ID.finditer(str(item)):
            dia = f"D{int(match.group(1))}:{int(match.group(2))}"
            if dia not in out:
                out.append(dia)
    return out


def parse_session_date(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' → 2023-05-08 13:56 UTC (the dataset gives no time zone)."""
    match = _SESSION_DATE.search(text)
    if match is None:
        raise ValueError(f"unrecognised LoCoMo session date {text!r}")
    hour, minute, half, day, month_name, year = match.groups()
    month = _MONTHS.get(month_name.lower())
    if month is None:
        raise ValueError(f"unknown month {month_name!r} in session date {text!r}")
    hour_24 = int(hour) % 12 + (12 if half.lower() == "p" else 0)
    return datetime(int(year), month, int(day), hour_24, int(minute), tzinfo=UTC)


def turn_text(raw: dict[str, Any]) -> str:
    """The turn's words plus, for a shared photo, '[shares a photo of: <caption>]'."""
    words = str(raw.get("text") or "").strip()
    caption = str(raw.get("blip_caption") or "").strip()
    if caption:
        caption = _CAPTION_PREFIX.sub("", caption)
        photo = f"[shares a photo of: {caption}]"
        return f"{words} {photo}" if words else photo
    return words


def _conversation_body(sample: dict[str, Any]) -> dict[str, Any]:
    # The released locomo10.json nests the turns under "conversation"; the dev files are flat.
    body = sample.get("conversation")
    return body if isinstance(body, dict) else sample


def parse_conversation(sample: dict[str, Any], *, sample_id: str, source: str) -> Conversation:
    body = _conversation_body(sample)
    speakers = tuple(str(body[k]) for k in ("speaker_a", "speaker_b") if body.get(k))
    sessions: list[Session] = []
    known: set[str] = set()
    for key, value in body.items():
        match = _SESSION_KEY.fullmatch(key)
        if match is None or not isinstance(value, list) or not value:
            continue  # "session_N_date_time" may exist for sessions that have no turns
        number = int(match.group(1))
        date_text = body.get(f"session_{number}_date_time")
        if not date_text:
            raise ValueError(
                f"{source}: session {number} has turns but no session_{number}_date_time"
            )
        turns: list[Turn] = []
        for i, raw in enumerate(value):
            dia = normalise_dia_id(str(raw.get("dia_id", "")))
            if dia is None:
                raise ValueError(f"{source}: session {number} turn {i} has no usable dia_id")
            text = turn_text(raw)
            if not text:
                continue  # nothing a store could keep; evidence naming it is reported dropped
            turns.append(Turn(dia_id=dia, speaker=str(raw.get("speaker") or "unknown"), text=text))
            known.add(dia)
        sessions.append(Session(number, parse_session_date(str(date_text)), tuple(turns)))
    if not sessions:
        raise ValueError(f"{source}: no sessions with turns")
    sessions.sort(key=lambda s: s.number)
    questions: list[Question] = []
    for raw in sample.get("qa", []):
        evidence = split_evidence(raw.get("evidence") or [])
        questions.append(
            Question(
                question=str(raw["question"]),
                category=int(raw["category"]),
                evidence=tuple(e for e in evidence if e in known),
                answer=raw.get("answer", raw.get("adversarial_answer")),
                dropped_evidence=tuple(e for e in evidence if e not in known),
            )
        )
    return Conversation(sample_id, speakers, tuple(sessions), tuple(questions), source)


def load_conversations(paths: Sequence[str | Path]) -> list[Conversation]:
    """Every conversation in the given files or folders (folders: their *.json, sorted).

    Accepts one conversation per file (the dev split), a released sample with `sample_id` and
    `conversation`, or a list of either.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.glob("*.json") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no LoCoMo file or folder at {path}")
    if not files:
        raise FileNotFoundError(f"no *.json files in {[str(p) for p in paths]}")
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        samples = data if isinstance(data, list) else [data]
        for i, sample in enumerate(samples):
            default_id = path.stem if len(samples) == 1 else f"{path.stem}-{i}"
            sample_id = str(sample.get("sample_id") or default_id)
            if sample_id in seen:
                sample_id = f"{path.stem}-{sample_id}"
            seen.add(sample_id)
            conversations.append(parse_conversation(sample, sample_id=sample_id, source=str(path)))
    return conversations


# -- running ------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Scores per category, and the overall group (categories 1-4)."""

    ks: tuple[int, ...]
    by_category: dict[int, Aggregate] = field(default_factory=dict)
    overall: Aggregate = field(init=False)

    def __post_init__(self) -> None:
        self.overall = Aggregate(self.ks)

    def add(self, category: int, score: QueryScore) -> None:
        self.by_category.setdefault(category, Aggregate(self.ks)).add(score)
        if category in OVERALL_CATEGORIES:
            self.overall.add(score)


def run(
    paths: Sequence[str | Path],
    *,
    mode: str = "raw",
    plan: SearchPlan | str | None = None,
    weights: Mapping[str, float] | None = None,
    depths: Mapping[str, int] | None = None,
    rrf_k: int | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    use_as_of: bool = False,
    group: bool = True,
    out_dir: Path | None = RESULTS_DIR,
    tag: str | None = None,
    memory_factory: MemoryFactory = default_memory,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the eval and return the report; with `out_dir`, also write JSON + Markdown there.

    `mode` is "raw" (`add(infer=False)`: episodes only) or "infer" (`add(infer=True)`).
    `plan` is a `SearchPlan`, a recipe name, or None for the store's default plan;
    `weights` / `depths` (per channel) and `rrf_k` override parts of it, for experiments.
    `use_as_of` passes the conversation's last session date as `as_of` to every search;
    `group=False` asks for the flat ranking (one hit per memory) instead of one per source.
    Files are `locomo-<mode>[-<tag>].json|.md|-questions.jsonl`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    ks = tuple(sorted(set(ks)))
    conversations = load_conversations(paths)
    load_at_start = environment()["load_average_1_5_15"]
    tally = _Tally(ks)
    timings = Timings()
    per_question: list[dict[str, Any]] = []
    distinct_turns: list[int] = []  # turns covered by each question's top max(ks) hits
    skipped_questions = 0
    with tempfile.TemporaryDirectory(prefix="memsvc-locomo-") as tmp:
        memory = memory_factory(Path(tmp) / "locomo.db")
        try:
            warm_up(memory)
            search_plan = build_plan(
                plan, memory=memory, weights=weights, depths=depths, rrf_k=rrf_k
            ).with_limit(max(ks))
            for conv in conversations:
                dia_of_message = _ingest(memory, conv, mode, timings)
                if progress:
                    print(f"[locomo] ingested {conv.sample_id}: {len(dia_of_message)} turns",
                          file=sys.stderr)
                for q in conv.questions:
                    if not q.evidence:
                        skipped_questions += 1
                        continue
                    covered, response = timed_search(
                        memory, q.question, timings, dia_of_message,
                        user_id=conv.sample_id, limit=max(ks), plan=search_plan,
                        as_of=conv.last_date if use_as_of else None, group=group,
                    )
                    score = score_ranking(covered, q.evidence, ks)
                    distinct_turns.append(len(set().union(*covered[: max(ks)])))
                    tally.add(q.category, score)
                    per_question.append({
                        "sample_id": conv.sample_id,
                        "category": q.category,
                        "question": q.question,
                        "evidence": list(q.evidence),
                        "first_rank": score.first_rank,
                        f"recall@{ks[-1]}": score.recall[ks[-1]],
                        "top": [sorted(c) for c in covered[: max(ks)]],
                        "top_texts": [h.memory.text[:160] for h in response.results[:5]],
                    })
                if progress:
                    print(f"[locomo] asked {len(conv.questions)} questions of {conv.sample_id}",
                          file=sys.stderr)
            config = {
                "mode": mode,
                "infer": MODES[mode],
                "settings": memory.settings.describe(),
                "embedder": getattr(memory.embedder, "name", type(memory.embedder).__name__),
                "extractor": getattr(memory.extractor, "name", None),
                "search_plan": search_plan.describe(),
                "search_limit": max(ks),
                "as_of": "last session date" if use_as_of else None,
                "group": group,
                "data_files": sorted(
                    {c.source for c in conversations}
                ),
                "data_fingerprints": [
                    file_fingerprint(Path(p)) for p in sorted({c.source for c in conversations})
                ],
                "git": git_state(),
                "environment": environment(),
                "load_average_at_start": load_at_start,
                "tag": tag,
            }
        finally:
            memory.close()
    report = _report(conversations, tally, timings, config, skipped_questions)
    report["overall"][f"distinct_turns@{max(ks)}"] = (
        round(sum(distinct_turns) / len(distinct_turns), 2) if distinct_turns else float("nan")
    )
    if out_dir is not None:
        _write(report, per_question, out_dir, mode, tag)
    return report


def _ingest(memory: Any, conv: Conversation, mode: str, timings: Timings) -> dict[str, str]:
    """Add every session of `conv` (one call each); map stored message ids to dia_ids."""
    dia_of_message: dict[str, str] = {}
    for session in conv.sessions:
        if not session.turns:
            continue
        messages = [{"role": "user", "name": t.speaker, "content": t.text} for t in session.turns]
        ids = timed_add(
            memory, messages, timings,
            user_id=conv.sample_id, session_id=f"session_{session.number}",
            timestamp=session.timestamp, infer=MODES[mode],
        )
        dia_of_message.update(zip(ids, (t.dia_id for t in session.turns), strict=True))
    return dia_of_message


def _report(
    conversations: Sequence[Conversation],
    tally: _Tally,
    timings: Timings,
    config: dict[str, Any],
    skipped_questions: int,
) -> dict[str, Any]:
    by_category = {
        str(cat): {"name": CATEGORIES.get(cat, f"category {cat}"), **agg.summary()}
        for cat, agg in sorted(tally.by_category.items())
    }
    return {
        "benchmark": "locomo",
        "overall": {"categories": list(OVERALL_CATEGORIES), **tally.overall.summary()},
        "by_category": by_category,
        "timing": {
            "ingest": {
                "turns": timings.add_items,
                "add_calls": len(timings.add_ms),
                "seconds": round(sum(timings.add_ms) / 1000, 3),
                "turns_per_s": timings.ingest_rate(),
                "per_call": latency_summary(timings.add_ms),
            },
            "query": latency_summary(timings.search_ms),
            "query_channels": {
                name: latency_summary(ms) for name, ms in sorted(timings.channel_ms.items())
            },
        },
        "data": {
            "conversations": [
                {
                    "sample_id": c.sample_id,
                    "sessions": len(c.sessions),
                    "turns": sum(len(s.turns) for s in c.sessions),
                    "questions": len(c.questions),
                }
                for c in conversations
            ],
            "questions_without_evidence": skipped_questions,
            "dropped_evidence_ids": sum(len(q.dropped_evidence)
                                        for c in conversations for q in c.questions),
        },
        "config": config,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page: the metric table, timing, then the configuration."""
    ks = sorted(int(key.split("@")[1]) for key in report["overall"] if key.startswith("recall@"))
    header = ["category", "n", *[f"R@{k}" for k in ks], *[f"hit@{k}" for k in ks], "MRR"]

    def row(label: str, s: dict[str, Any]) -> list[Any]:
        return [label, s["n"], *[s[f"recall@{k}"] for k in ks], *[s[f"hit@{k}"] for k in ks],
                s["mrr"]]

    rows = [row(f"{cat} {s['name']}", s) for cat, s in report["by_category"].items()]
    rows.append(row("**overall (1-4)**", report["overall"]))
    ingest, query = report["timing"]["ingest"], report["timing"]["query"]
    config = report["config"]
    lines = [
        f"# LoCoMo evidence recall — mode `{config['mode']}`"
        + (f" ({config['tag']})" if config.get("tag") else ""),
        "",
        markdown_table(header, rows),
        "",
        "Recall@k: share of a question's evidence turns found among the source turns of the "
        "top-k hits (a grouped hit covers its memory's and its related memories' turns); "
        "hit@k: at least one found; MRR over the top "
        f"{config['search_limit']}. Distinct turns covered by the top "
        f"{config['search_limit']} hits, mean per question: "
        f"{report['overall'].get('distinct_turns@' + str(config['search_limit']))} "
        f"({'grouped' if config.get('group', True) else 'flat'} search).",
        "",
        "## Timing",
        "",
        f"- ingest: {ingest['turns']} turns in {ingest['add_calls']} `add` calls, "
        f"{ingest['seconds']} s → **{ingest['turns_per_s']} turns/s**",
        f"- query (`search`, wall clock, {query.get('n', 0)} questions): "
        f"p50 **{query.get('p50_ms')} ms**, p95 {query.get('p95_ms')} ms",
        *[
            f"  - inside search, `{name}`: p50 {s.get('p50_ms')} ms, p95 {s.get('p95_ms')} ms"
            for name, s in report["timing"]["query_channels"].items()
        ],
        "",
        "## Configuration",
        "",
        f"- git: `{config['git'].get('commit')}` (dirty: {config['git'].get('dirty')})",
        f"- search plan: `{json.dumps(config['search_plan'])}`",
        f"- embedder: `{config['embedder']}`, extractor: `{config['extractor']}`, "
        f"as_of: {config['as_of']}",
        f"- data: {', '.join(config['data_files'])}",
        f"- machine: {config['environment'].get('cpus')} CPUs, torch "
        f"{config['environment'].get('torch')}, Python {config['environment'].get('python')}; "
        f"load average (1/5/15 min) {config.get('load_average_at_start')} at start, "
        f"{config['environment'].get('load_average_1_5_15')} at end (a shared machine: "
        "timings move with it, recall does not)",
        "",
    ]
    return "\n".join(lines)


def _write(report: dict[str, Any], per_question: list[dict[str, Any]], out_dir: Path,
           mode: str, tag: str | None) -> None:
    stem = f"locomo-{mode}" + (f"-{tag}" if tag else "")
    write_results(out_dir, stem, report, render_markdown(report))
    with (out_dir / f"{stem}-questions.jsonl").open("w", encoding="utf-8") as fh:
        for item in per_question:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


# -- command line -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m memsvc.evals.locomo",
        description="LoCoMo evidence recall@k / hit@k / MRR of memsvc search.",
    )
    parser.add_argument("paths", nargs="+", help="LoCoMo JSON files or folders of them")
    parser.add_argument("--mode", choices=sorted(MODES), default="raw")
    parser.add_argument("--plan", default=None, help="recipe name (fast, balanced, deep)")
    parser.add_argument("--vector-weight", type=float, default=None)
    parser.add_argument("--bm25-weight", type=float, default=None)
    parser.add_argument("--vector-k", type=int, default=None)
    parser.add_argument("--bm25-k", type=int, default=None)
    parser.add_argument("--rrf-k", type=int, default=None)
    parser.add_argument("--as-of", action="store_true",
                        help="pass the conversation's last session date as as_of")
    parser.add_argument("--flat", action="store_true",
                        help="search with group=False (one hit per memory, not per source)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--tag", default=None, help="suffix for the result files")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--app", action="store_true",
                        help="application mode (evals/locomo_app.py): one store in a fresh "
                        "process, everything ingested first, default plan, limit 10 and 20")
    parser.add_argument("--db", default=None,
                        help="store to run on instead of a temp SQLite file (a file or a "
                        "postgresql+psycopg:// URL); its tenant is erased first")
    return parser.parse_args(argv)


def memory_at(location: str) -> MemoryFactory:
    """A factory that ignores the temp file and opens `location`, emptied (reset) first, so
    a run on another backend starts from the same empty store as the default."""

    def factory(_: Path) -> Memory:
        memory = Memory(db_path=location)
        memory.reset()
        return memory

    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    args = parse_args(argv)
    if args.app:
        from memsvc.evals import locomo_app

        app_report = locomo_app.run(args.paths, mode=args.mode, tag=args.tag,
                                    out_dir=None if args.no_write else args.out)
        print(locomo_app.render_markdown(app_report))
        return 0
    weights = {n: w for n, w in (("vector", args.vector_weight), ("bm25", args.bm25_weight))
               if w is not None}
    depths = {n: k for n, k in (("vector", args.vector_k), ("bm25", args.bm25_k)) if k is not None}
    report = run(
        args.paths, mode=args.mode, plan=args.plan, weights=weights, depths=depths,
        rrf_k=args.rrf_k, use_as_of=args.as_of, group=not args.flat,
        out_dir=None if args.no_write else args.out, tag=args.tag, progress=True,
        memory_factory=default_memory if args.db is None else memory_at(args.db),
    )
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
