"""Store benchmark: ingest throughput and search latency, memsvc beside two baselines.

At each size (memories in the whole store, spread over 100 users) and at one extra point with
10k memories in a single scope, it measures:

- ingest: `Memory.add` in batches of messages (100 per call by default), as memories/s;
- search latency p50/p95 over distinct queries, each in one user's scope, for
  - `memsvc`: `Memory.search(query, user_id=..., limit=10)` with the default plan: query
    embedding, every channel of the plan (vector via sqlite-vec, BM25 via FTS5, ...),
    fusion, record fetch and the access-count write, end to end;
  - `rank_bm25`: `rank_bm25.BM25Okapi` over the same scope's texts, held in memory (index
    build time reported apart, not in the latency);
  - `numpy_cosine`: exact cosine over the same scope's stored vectors with NumPy, **including
    the query embedding** (same model, same code path as memsvc's); the product runs on one
    BLAS thread, its best setting here: OpenBLAS's own threads, woken right after torch's,
    turned a 0.3 ms product into 25 ms;
  - `embed_query`: the query embedding alone, to show how much of a search it is.

Queries are never repeated anywhere in a run, so the embedder's LRU query cache never hits.
The baselines see exactly the texts and vectors memsvc stored (the embedder is wrapped to
record them during ingest), so nothing is computed twice and nothing is cached across runs.
Text is synthetic: 8-20 words drawn (Zipf-like) from the embedding model's own word list.

    python -m memsvc.evals.bench_store                       # 1k, 10k, 100k + 10k in one scope
    python -m memsvc.evals.bench_store --quick               # a smoke run, about a minute
    python -m memsvc.evals.bench_store --sizes 1000,10000 --one-scope 0

Writes evals/results/bench_store.json, bench_store.md and bench_store.png (`--quick`:
bench_store-quick.*).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from memsvc import Memory
from memsvc.embedding.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.evals.metrics import latency_summary
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    git_state,
    markdown_table,
    write_results,
)
from memsvc.model.settings import Settings, default_embedder_path

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_USERS = 100
DEFAULT_ONE_SCOPE = 10_000
_FALLBACK_WORDS = (
    "garden river market coffee window travel music winter doctor school train letter piano "
    "mountain bread camera summer friend office ticket dinner island bicycle library museum "
    "kitchen festival painting concert holiday birthday recipe football weekend village "
    "morning evening language project meeting hospital airport restaurant photograph"
).split()


# -- synthetic text -----------------------------------------------------------------------


def vocabulary(limit: int = 8000) -> list[str]:
    """Whole English words from the embedding model's word-piece vocabulary.

    Real words keep the token count per memory close to real chat turns (pseudo-words would
    split into many word pieces and make embedding look slower than it is).
    """
    path = Path(default_embedder_path()) / "vocab.txt"
    try:
        tokens = path.read_text(encoding="utf-8").split()
    except OSError:
        return list(_FALLBACK_WORDS)
    words = [t for t in tokens if re.fullmatch(r"[a-z]{3,12}", t)]
    return words[:limit] or list(_FALLBACK_WORDS)


class TextSource:
    """Seeded sentences and queries; every query it hands out is new within the run."""

    def __init__(self, words: Sequence[str], seed: int) -> None:
        self._words = list(words)
        self._rng = random.Random(seed)
        ranks = np.arange(1, len(self._words) + 1, dtype=float)
        weights = 1.0 / ranks**0.9  # Zipf-like: a few common words, a long tail
        self._cum = list(np.cumsum(weights / weights.sum()))
        self._issued: set[str] = set()

    def _draw(self, n: int) -> list[str]:
        return self._rng.choices(self._words, cum_weights=self._cum, k=n)

    def sentence(self) -> str:
        words = self._draw(self._rng.randint(8, 20))
        return " ".join(words).capitalize() + "."

    def query(self) -> str:
        while True:
            text = " ".join(self._draw(self._rng.randint(3, 6))) + "?"
            if text not in self._issued:
                self._issued.add(text)
                return text


# -- the recording embedder ---------------------------------------------------------------


class RecordingEmbedder:
    """Delegates to the real embedder and keeps (scope, text, vector) of what memsvc stored.

    The baselines are then built on exactly those texts and vectors, without embedding
    anything a second time.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.scope = ""
        self.texts: dict[str, list[str]] = {}
        self.vectors: dict[str, list[np.ndarray]] = {}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = self.inner.embed_documents(texts)
        self.texts.setdefault(self.scope, []).extend(texts)
        self.vectors.setdefault(self.scope, []).append(out)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def matrix(self, scope: str) -> np.ndarray:
        return np.vstack(self.vectors[scope])


# -- baselines ----------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (argpartition, then sort only those)."""
    if scores.size <= k:
        return np.argsort(-scores)
    idx = np.argpartition(-scores, k)[:k]
    return idx[np.argsort(-scores[idx])]


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Point:
    label: str
    total: int
    users: int
    per_scope: int
    ingest: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    memsvc_inside: dict[str, dict[str, Any]] = field(default_factory=dict)
    bm25_build_ms: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "total_memories": self.total, "users": self.users,
            "memories_per_scope": self.per_scope, "ingest": self.ingest, "search": self.search,
            "memsvc_inside_search": self.memsvc_inside, "rank_bm25_build_ms": self.bm25_build_ms,
        }


def _ingest(memory: Memory, recorder: RecordingEmbedder, text: TextSource,
            plan: dict[str, int], batch: int) -> dict[str, Any]:
    """Add `plan[user]` new memories for every user, `batch` messages per `add` call."""
    added, calls, started = 0, 0, time.perf_counter()
    for user, count in plan.items():
        recorder.scope = user
        for start in range(0, count, batch):
            n = min(batch, count - start)
            memory.add([{"role": "user", "content": text.sentence()} for _ in range(n)],
                       user_id=user)
            added += n
            calls += 1
    seconds = time.perf_counter() - started
    return {"memories": added, "add_calls": calls, "seconds": round(seconds, 2),
            "memories_per_s": round(added / seconds, 1) if seconds else None}


def _measure(memory: Memory, recorder: RecordingEmbedder, text: TextSource,
             users: Sequence[str], queries: int, k: int, rng: random.Random,
             point: Point) -> None:
    """Latency of each system over its own distinct queries, in randomly chosen scopes."""
    from rank_bm25 import BM25Okapi

    targets = [rng.choice(list(users)) for _ in range(queries)]
    inner = recorder.inner
    # Baseline indexes for the scopes that will be queried: built once, outside the timing.
    bm25: dict[str, Any] = {}
    matrices: dict[str, np.ndarray] = {}
    build_ms: list[float] = []
    for user in sorted(set(targets)):
        corpus = [tokenize(t) for t in recorder.texts[user]]
        start = time.perf_counter()
        bm25[user] = BM25Okapi(corpus)
        build_ms.append((time.perf_counter() - start) * 1000)
        matrices[user] = recorder.matrix(user)
    point.bm25_build_ms = latency_summary(build_ms)

    def memsvc_search(user: str, q: str) -> Any:
        return memory.search(q, user_id=user, limit=k)

    def bm25_search(user: str, q: str) -> Any:
        return top_k(np.asarray(bm25[user].get_scores(tokenize(q))), k)

    def numpy_search(user: str, q: str) -> Any:
        vector = inner.embed_query(q)
        with threadpool_limits(limits=1, user_api="blas"):
            return top_k(matrices[user] @ vector, k)

    def embed_only(user: str, q: str) -> Any:
        return inner.embed_query(q)

    systems: dict[str, Callable[[str, str], Any]] = {
        "memsvc": memsvc_search, "rank_bm25": bm25_search, "numpy_cosine": numpy_search,
        "embed_query": embed_only,
    }
    inside: dict[str, list[float]] = {}
    for name, fn in systems.items():
        for user in targets[:5]:  # warm-up, not timed
            fn(user, text.query())
        samples = []
        for user in targets:
            q = text.query()
            if name == "memsvc":
                start = time.perf_counter()
                response = memory.search(q, user_id=user, limit=k)
                samples.append((time.perf_counter() - start) * 1000)
                for part, ms in response.timing_ms.items():
                    inside.setdefault(part, []).append(ms)
            else:
                start = time.perf_counter()
                fn(user, q)
                samples.append((time.perf_counter() - start) * 1000)
        point.search[name] = latency_summary(samples)
    point.memsvc_inside = {part: latency_summary(ms) for part, ms in sorted(inside.items())}


def _open(db_path: Path, inner: Embedder) -> tuple[Memory, RecordingEmbedder]:
    recorder = RecordingEmbedder(inner)
    memory = Memory(settings=Settings.from_env(db_path=db_path), embedder=recorder)
    return memory, recorder


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    users: int = DEFAULT_USERS,
    one_scope: int = DEFAULT_ONE_SCOPE,
    queries: int = 200,
    batch: int = 100,
    k: int = 10,
    seed: int = 0,
    out_dir: Path | None = RESULTS_DIR,
    stem: str = "bench_store",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; with `out_dir`, write `<stem>.json` / `.md` / `.png` there.

    Sizes are reached by adding to one store (1k, then 9k more, ...), measuring at each; the
    one-scope point is a separate fresh store with `one_scope` memories for a single user.
    """
    sizes = sorted({int(s) for s in sizes})
    if any(s < users for s in sizes):
        raise ValueError(f"every size must be at least the number of users ({users})")
    if batch < 1 or queries < 1 or k < 1:
        raise ValueError("batch, queries and k must be positive")

    def say(message: str) -> None:
        if progress:
            print(f"[bench_store {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
                  flush=True)

    env_at_start = environment()
    words = vocabulary()
    text = TextSource(words, seed)
    rng = random.Random(seed + 1)
    settings = Settings.from_env()
    inner = SentenceTransformerEmbedder(
        settings.embedder_path or default_embedder_path(), threads=settings.embed_threads,
        cache_size=settings.query_cache_size,
    )
    inner.embed_documents(["warm-up"])
    inner.embed_query("warm-up query")
    points: list[Point] = []
    user_ids = [f"user-{i:03d}" for i in range(users)]
    with tempfile.TemporaryDirectory(prefix="memsvc-bench-") as tmp:
        memory, recorder = _open(Path(tmp) / "multi.db", inner)
        try:
            have = 0
            for size in sizes:
                per_user = size // users
                plan = {u: per_user - have // users for u in user_ids}
                say(f"ingesting up to {size:,} memories ({users} users)")
                point = Point(f"{size:,} total / {users} users", per_user * users, users,
                              per_user)
                point.ingest = _ingest(memory, recorder, text, plan, batch)
                have = per_user * users
                say(f"ingest: {point.ingest}; measuring search")
                _measure(memory, recorder, text, user_ids, queries, k, rng, point)
                say(f"search p50: { {n: s['p50_ms'] for n, s in point.search.items()} }")
                points.append(point)
            settings_used = memory.settings.describe()
            plan_used = memory.default_plan.with_limit(k).describe()
        finally:
            memory.close()
        if one_scope:
            memory, recorder = _open(Path(tmp) / "one.db", inner)
            try:
                say(f"ingesting {one_scope:,} memories into one scope")
                point = Point(f"{one_scope:,} in one scope", one_scope, 1, one_scope)
                point.ingest = _ingest(memory, recorder, text, {"solo": one_scope}, batch)
                say(f"ingest: {point.ingest}; measuring search")
                _measure(memory, recorder, text, ["solo"], queries, k, rng, point)
                say(f"search p50: { {n: s['p50_ms'] for n, s in point.search.items()} }")
                points.append(point)
            finally:
                memory.close()
    report = {
        "benchmark": "bench_store",
        "points": [p.as_dict() for p in points],
        "config": {
            "sizes": sizes, "users": users, "one_scope": one_scope, "queries_per_point": queries,
            "add_batch": batch, "k": k, "seed": seed, "vocabulary_words": len(words),
            "memsvc_settings": settings_used, "memsvc_plan": plan_used,
            "embed_threads": settings.embed_threads or "torch default",
            "numpy_baseline": "exact cosine (matrix @ query) over the scope's stored vectors, "
                              "query embedding included, product on one BLAS thread",
            "rank_bm25_baseline": "BM25Okapi over the scope's stored texts in memory, "
                                  "lower-case alphanumeric tokens, no query embedding",
            "git": git_state(), "environment": env_at_start,
            "load_average_at_end": environment()["load_average_1_5_15"],
        },
    }
    if out_dir is not None:
        write_results(out_dir, stem, report, render_markdown(report))
        plot(report, out_dir / f"{stem}.png")
    return report


# -- output -------------------------------------------------------------------------------

SYSTEMS = ("memsvc", "rank_bm25", "numpy_cosine", "embed_query")


def render_markdown(report: dict[str, Any]) -> str:
    ingest_rows = [
        [p["label"], p["ingest"]["memories"], p["ingest"]["add_calls"], p["ingest"]["seconds"],
         p["ingest"]["memories_per_s"]]
        for p in report["points"]
    ]
    search_rows = [
        [p["label"], p["memories_per_scope"], name, p["search"][name]["p50_ms"],
         p["search"][name]["p95_ms"]]
        for p in report["points"] for name in SYSTEMS if name in p["search"]
    ]
    inside_rows = [
        [p["label"], part, s["p50_ms"], s["p95_ms"]]
        for p in report["points"] for part, s in p["memsvc_inside_search"].items()
    ]
    config = report["config"]
    env = config["environment"]
    return "\n".join([
        "# Store benchmark: ingest and search latency",
        "",
        f"{env.get('cpus')} CPUs ({env.get('platform')}), torch {env.get('torch')}, "
        f"load average {env.get('load_average_1_5_15')} at start, "
        f"{config.get('load_average_at_end')} at end, "
        f"git `{config['git'].get('commit')}` (dirty: {config['git'].get('dirty')}); "
        f"{config['queries_per_point']} distinct queries per point, top {config['k']}.",
        "",
        "## Ingest (`Memory.add`, "
        f"{config['add_batch']} messages per call, embedding included)",
        "",
        markdown_table(["point", "memories added", "add calls", "seconds", "memories/s"],
                       ingest_rows),
        "",
        "## Search latency (ms, wall clock, one user's scope)",
        "",
        markdown_table(["point", "memories in scope", "system", "p50", "p95"], search_rows),
        "",
        f"- `memsvc`: `Memory.search(q, user_id=..., limit={config['k']})`, default plan "
        f"`{config['memsvc_plan']}`, end to end (query embedding, every channel of the plan, "
        "fusion, record fetch, access-count write).",
        f"- `numpy_cosine`: {config['numpy_baseline']}.",
        f"- `rank_bm25`: {config['rank_bm25_baseline']}.",
        "- `embed_query`: the query embedding alone (uncached).",
        "",
        "## Inside memsvc's search (ms, from `SearchResponse.timing_ms`)",
        "",
        markdown_table(["point", "part", "p50", "p95"], inside_rows),
        "",
    ])


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [p["label"] for p in points]
    x = np.arange(len(points))
    width = 0.2
    for i, name in enumerate(SYSTEMS):
        p50 = [p["search"][name]["p50_ms"] for p in points]
        p95 = [p["search"][name]["p95_ms"] for p in points]
        offset = (i - (len(SYSTEMS) - 1) / 2) * width
        left.bar(x + offset, p50, width, label=f"{name} p50")
        left.scatter(x + offset, p95, marker="_", s=120, color="black",
                     label="p95" if i == 0 else None, zorder=3)
    left.axhline(15, color="red", linestyle="--", linewidth=1, label="15 ms target")
    left.set_yscale("log")
    left.set_xticks(x, labels, rotation=15, fontsize=8)
    left.set_ylabel("search latency (ms, log scale)")
    left.set_title("Search latency per point (bars p50, ticks p95)")
    left.legend(fontsize=7)
    rates = [p["ingest"]["memories_per_s"] or 0 for p in points]
    right.bar(x, rates, color="tab:green")
    for xi, p, rate in zip(x, points, rates, strict=True):
        per_call = p["ingest"]["memories"] / max(p["ingest"]["add_calls"], 1)
        right.annotate(f"{per_call:.0f} msgs/call", (xi, rate), ha="center", va="bottom",
                       fontsize=7)
    right.axhline(100, color="red", linestyle="--", linewidth=1, label="100/s target")
    right.set_xticks(x, labels, rotation=15, fontsize=8)
    right.set_ylabel("memories added per second")
    right.set_title("Ingest throughput (Memory.add, embedding included)")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsvc.evals.bench_store",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="total memories per point, comma separated")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--one-scope", type=int, default=DEFAULT_ONE_SCOPE,
                        help="memories in the single-scope point (0: skip it)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="messages per add call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sizes 1000,2000, one scope of 1000, 50 queries; "
                        "writes bench_store-quick.*")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default=None, help="write bench_store-<tag>.* instead")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    one_scope, queries = args.one_scope, args.queries
    if args.quick:
        sizes, one_scope, queries = [1000, 2000], 1000, 50
    suffix = f"-{args.tag}" if args.tag else "-quick" if args.quick else ""
    report = run(sizes, users=args.users, one_scope=one_scope, queries=queries,
                 batch=args.batch, seed=args.seed, out_dir=None if args.no_write else args.out,
                 stem=f"bench_store{suffix}")
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
