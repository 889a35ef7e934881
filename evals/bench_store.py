"""Store benchmark: ingest throughput and search latency on SQLite and PostgreSQL, beside
two in-memory baselines.

At each size (memories in the whole store, spread over `--users` users, or over
size / `--per-user` users) and at one extra point with `--one-scope` memories for a single
user, on each backend (`--backend sqlite|postgres|both`), it measures:

- embedding: every distinct sentence of the corpus is embedded once with the real model and
  kept in an on-disk cache (evals/embed_cache.py); the rate (docs/s) is measured when the
  cache is built, once, and reported apart;
- store ingest: `Memory.add` in batches of messages (100 per call by default), as
  memories/s, with the document vectors **served from that cache** (so not re-embedded per
  backend), and the share of that time spent signing rows (integrity chain: sign + save);
- search latency p50/p95 over distinct queries, each in one user's scope, for
  - `memsvc`: `Memory.search(query, user_id=..., limit=10)` with the default plan: query
    embedding (the real model, uncached), every channel of the plan, fusion, record fetch
    and the access-count write, end to end;
  - `rank_bm25`: `rank_bm25.BM25Okapi` over the same scope's texts, held in memory (index
    build time reported apart, not in the latency);
  - `numpy_cosine`: exact cosine over the same scope's vectors with NumPy, **including the
    query embedding**; the product runs on one BLAS thread, its best setting here;
  - `embed_query`: the query embedding alone, to show how much of a search it is.
  The baselines are backend-independent: measured once per point (with the first backend),
  and only over the scopes that are queried, so they fit in memory at any size.

Queries are never repeated anywhere in a run, so the embedder's LRU query cache never hits.
Text is synthetic: 8-20 words drawn (Zipf-like) from the embedding model's own word list;
sentence i of a seed is always the same, which is what the vector cache is keyed by.

Ingest and measurement can be separated: `--keep DIR` keeps the stores (SQLite files, the
embedded PostgreSQL cluster, a manifest of which sentences went to which user), and a later
`--reuse DIR` measures search over them (the last size and the one-scope point) without
ingesting. Load average is recorded around every phase.

    python -m memsvc.evals.bench_store                       # 1k, 10k, 100k + 10k in one scope
    python -m memsvc.evals.bench_store --quick --backend both  # a smoke run
    python -m memsvc.evals.bench_store --backend both --sizes 10000,100000 --per-user 100
    python -m memsvc.evals.bench_store --backend both --sizes 1000000 --per-user 100 \\
        --one-scope 100000 --keep /work/bench-1m             # build (and measure) 1M
    python -m memsvc.evals.bench_store --reuse /work/bench-1m --tag 1m  # measure it again
    python -m memsvc.evals.bench_store --merge evals/results/bench_store-a.json \\
        evals/results/bench_store-b.json --tag ab   # one table and plot of two runs

Writes evals/results/bench_store.json, bench_store.md and bench_store.png (`--quick`:
bench_store-quick.*, `--tag T`: bench_store-T.*).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.evals.bench_sites import (
    BACKENDS,
    StoreSite,
    isolate_witness,
    stop_cleanly_on_sigterm,
)
from memsvc.evals.embed_cache import CachedEmbedder, VectorCache, fingerprint
from memsvc.evals.metrics import latency_summary
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    git_state,
    markdown_table,
    write_results,
)
from memsvc.model.settings import Settings, cache_root, default_embedder_path

DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_USERS = 100
DEFAULT_ONE_SCOPE = 10_000
MANIFEST = "manifest.json"

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


def default_cache_dir() -> Path:
    """Shared by every checkout of the same account: vectors are costly, texts are seeded."""
    return cache_root() / "bench_store"


def corpus(words: Sequence[str], seed: int, n: int) -> list[str]:
    """Sentences 0..n-1 of `seed` (the prefix of a longer corpus of the same seed)."""
    source = TextSource(words, seed)
    return [source.sentence() for _ in range(n)]


def memory_text(sentence: str) -> str:
    """The text memsvc stores (and embeds) for a user message: the episode extractor writes
    the speaker first (memsvc.extractors.episode). The cache holds vectors of these."""
    return f"user: {sentence}"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the layout of the stores -------------------------------------------------------------

Ranges = dict[str, list[list[int]]]  # user -> [start, end) ranges of corpus indices


def size_plans(sizes: Sequence[int], users: int, per_user: int | None
               ) -> list[tuple[int, dict[str, int]]]:
    """For each size: (total, {user: memories it holds at that size}).

    Without `per_user`, `users` users share every size; with it, size / per_user users hold
    per_user each (the store grows by new users)."""
    plans = []
    for size in sizes:
        n_users = size // per_user if per_user else users
        each = per_user if per_user else size // users
        plans.append((n_users * each, {f"user-{i:05d}": each for i in range(n_users)}))
    return plans


def indices(ranges: list[list[int]]) -> list[int]:
    return [i for start, end in ranges for i in range(start, end)]


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Point:
    label: str
    backend: str
    total: int
    users: int
    per_scope: int
    ingest: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    memsvc_inside: dict[str, dict[str, Any]] = field(default_factory=dict)
    bm25_build_ms: dict[str, Any] = field(default_factory=dict)
    load_average: dict[str, list[float]] = field(default_factory=dict)
    store_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "backend": self.backend, "total_memories": self.total,
            "users": self.users, "memories_per_scope": self.per_scope, "ingest": self.ingest,
            "search": self.search, "memsvc_inside_search": self.memsvc_inside,
            "rank_bm25_build_ms": self.bm25_build_ms, "load_average": self.load_average,
            "store_bytes": self.store_bytes,
        }


@contextmanager
def timed_signing(memory: Memory) -> Iterator[list[float]]:
    """Seconds spent in the store's integrity signing (`sign`: scope lock, head read, MAC;
    `save`: chain rows and head upsert), accumulated in the yielded one-item list."""
    guard = getattr(memory.store, "integrity", None)
    spent = [0.0]
    if guard is None:
        yield spent
        return

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return timed

    guard.sign, guard.save = wrap(guard.sign), wrap(guard.save)
    try:
        yield spent
    finally:
        del guard.sign, guard.save  # the class's methods again


PROGRESS_EVERY = 20_000


def _ingest(memory: Memory, embedder: CachedEmbedder, texts: Sequence[str], cursor: int,
            plan: dict[str, int], batch: int, ranges: Ranges,
            say: Callable[[str], None] | None = None,
            writers: int = 1) -> tuple[dict[str, Any], int]:
    """Add `plan[user]` new memories for every user, `batch` messages per `add` call, taking
    sentences from `texts[cursor:]`; return the figures and the new cursor. `say` hears the
    running rate every `PROGRESS_EVERY` memories: a million-memory build runs for an hour and
    its rate drifts as the store grows.

    With `writers` > 1 the calls run on that many threads at once (several replicas or
    workers writing to one database): which sentences go to which user is fixed before, in
    the same order, so the stores and their manifest are the same as with one writer.
    """
    calls_todo: list[tuple[str, int, int]] = []  # (user, first sentence, count)
    for user, count in plan.items():
        for start in range(0, count, batch):
            n = min(batch, count - start)
            calls_todo.append((user, cursor, n))
            user_ranges = ranges.setdefault(user, [])
            if user_ranges and user_ranges[-1][1] == cursor:
                user_ranges[-1][1] = cursor + n
            else:
                user_ranges.append([cursor, cursor + n])
            cursor += n
    embedder.pending = {memory_text(texts[i]): i
                        for _, first, n in calls_todo for i in range(first, first + n)}
    misses0 = embedder.misses
    added, calls = 0, 0
    lock = threading.Lock()
    load_before = loadavg()
    started = time.perf_counter()

    def add(call: tuple[str, int, int]) -> None:
        nonlocal added, calls
        user, first, n = call
        memory.add([{"role": "user", "content": t} for t in texts[first:first + n]],
                   user_id=user)
        with lock:
            added += n
            calls += 1
            if say is not None and added % PROGRESS_EVERY < n:
                elapsed = time.perf_counter() - started
                say(f"  {added:,} added, {added / elapsed:.0f} memories/s, "
                    f"load {loadavg()[0]}")

    with timed_signing(memory) as signing:
        if writers <= 1:
            for call in calls_todo:
                add(call)
        else:
            with ThreadPoolExecutor(max_workers=writers) as pool:
                for _ in pool.map(add, calls_todo):
                    pass
    seconds = time.perf_counter() - started
    embedder.pending = {}
    return {"memories": added, "add_calls": calls, "writers": writers,
            "seconds": round(seconds, 2),
            "memories_per_s": round(added / seconds, 1) if seconds else None,
            "integrity_signing_s": round(signing[0], 2),
            "integrity_share": round(signing[0] / seconds / writers, 3) if seconds else None,
            "embedded_at_ingest": embedder.misses - misses0,
            "load_average": {"before": load_before, "after": loadavg()}}, cursor


def _measure(memory: Memory, embedder: CachedEmbedder, texts: Sequence[str],
             queries: TextSource, ranges: Ranges, targets: Sequence[str], k: int,
             point: Point, baselines: bool) -> None:
    """Latency of memsvc (and, with `baselines`, of the in-memory baselines) over distinct
    queries in the scopes `targets` (one per query)."""
    from rank_bm25 import BM25Okapi

    inner = embedder.inner
    systems: dict[str, Callable[[str, str], Any]] = {
        "memsvc": lambda user, q: memory.search(q, user_id=user, limit=k)}
    if baselines:
        # Baseline indexes for the scopes that will be queried: built once, outside the timing.
        bm25: dict[str, Any] = {}
        matrices: dict[str, np.ndarray] = {}
        build_ms: list[float] = []
        for user in sorted(set(targets)):
            rows = indices(ranges[user])
            corpus_tokens = [tokenize(memory_text(texts[i])) for i in rows]
            start = time.perf_counter()
            bm25[user] = BM25Okapi(corpus_tokens)
            build_ms.append((time.perf_counter() - start) * 1000)
            matrices[user] = embedder.cache.rows(rows)
        point.bm25_build_ms = latency_summary(build_ms)

        def bm25_search(user: str, q: str) -> Any:
            return top_k(np.asarray(bm25[user].get_scores(tokenize(q))), k)

        def numpy_search(user: str, q: str) -> Any:
            vector = inner.embed_query(q)
            with threadpool_limits(limits=1, user_api="blas"):
                return top_k(matrices[user] @ vector, k)

        systems.update({"rank_bm25": bm25_search, "numpy_cosine": numpy_search,
                        "embed_query": lambda user, q: inner.embed_query(q)})
    inside: dict[str, list[float]] = {}
    point.load_average["search_before"] = loadavg()
    for name, fn in systems.items():
        for user in targets[:5]:  # warm-up, not timed
            fn(user, queries.query())
        samples = []
        for user in targets:
            q = queries.query()
            start = time.perf_counter()
            response = fn(user, q)
            samples.append((time.perf_counter() - start) * 1000)
            if name == "memsvc":
                for part, ms in response.timing_ms.items():
                    inside.setdefault(part, []).append(ms)
        point.search[name] = latency_summary(samples)
    point.load_average["search_after"] = loadavg()
    point.memsvc_inside = {part: latency_summary(ms) for part, ms in sorted(inside.items())}


def _open(location: str, embedder: CachedEmbedder) -> Memory:
    return Memory(settings=Settings.from_env(db_path=location), embedder=embedder)


def _say(progress: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if progress:
            print(f"[bench_store {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
                  flush=True)
    return say


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    users: int = DEFAULT_USERS,
    per_user: int | None = None,
    one_scope: int = DEFAULT_ONE_SCOPE,
    backends: Sequence[str] = ("sqlite",),
    queries: int = 200,
    batch: int = 100,
    k: int = 10,
    seed: int = 0,
    pg_url: str | None = None,
    pg_settings: dict[str, str] | None = None,
    writers: int = 1,
    cache_dir: Path | None = None,
    keep: Path | None = None,
    reuse: Path | None = None,
    embed_only: bool = False,
    out_dir: Path | None = RESULTS_DIR,
    stem: str = "bench_store",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; with `out_dir`, write `<stem>.json` / `.md` / `.png` there.

    Sizes are reached by adding to one store per backend (1k, then 9k more, ...), measuring
    at each; the one-scope point is a separate store with `one_scope` memories for one user.
    With `reuse`, the stores kept by an earlier `keep` run are measured (no ingest): the
    manifest there fixes sizes, users, seed and backends.
    """
    say = _say(progress)
    manifest: dict[str, Any] | None = None
    if reuse is not None:
        manifest = json.loads((Path(reuse) / MANIFEST).read_text(encoding="utf-8"))
        sizes, per_user, users = manifest["sizes"], manifest["per_user"], manifest["users"]
        one_scope, seed, batch = manifest["one_scope"], manifest["seed"], manifest["batch"]
        backends, pg_url = manifest["backends"], manifest.get("pg_url")
        pg_settings = manifest.get("pg_settings") or pg_settings
    sizes = sorted({int(s) for s in sizes})
    backends = list(dict.fromkeys(backends))
    if any(b not in BACKENDS for b in backends) or not backends:
        raise ValueError(f"backends must be among {', '.join(BACKENDS)}")
    if per_user is not None and per_user < 1:
        raise ValueError("per_user must be positive")
    if any(s < (per_user or users) for s in sizes):
        raise ValueError(f"every size must be at least the number of "
                         f"{'memories per user' if per_user else 'users'} ({per_user or users})")
    if batch < 1 or queries < 1 or k < 1 or writers < 1:
        raise ValueError("batch, queries, k and writers must be positive")
    if keep is not None and reuse is not None:
        raise ValueError("--keep builds stores, --reuse measures kept ones: not both")
    if keep is not None and Path(keep).exists() and any(Path(keep).iterdir()):
        raise FileExistsError(f"{keep} is not empty: --keep needs a new directory")

    env_at_start = environment()
    words = vocabulary()
    plans = size_plans(sizes, users, per_user)
    total = plans[-1][0] if plans else 0
    texts = corpus(words, seed, max(total, one_scope))
    settings = Settings.from_env()
    inner = SentenceTransformerEmbedder(
        settings.embedder_path or default_embedder_path(), threads=settings.embed_threads,
        cache_size=settings.query_cache_size, precision=settings.embed_precision,
    )
    inner.embed_documents(["warm-up"])
    inner.embed_query("warm-up query")
    key = f"{inner.name}-{settings.embed_precision}-seed{seed}"
    cache = VectorCache(cache_dir or default_cache_dir(), key, inner.dim,
                        fingerprint([memory_text(t) for t in texts[:100]], key))
    say(f"vector cache {cache.dir}: {len(texts):,} sentences")
    build = cache.ensure([memory_text(t) for t in texts], inner.embed_documents, say)
    embedding = {"this_run": build, "cache_builds": cache.build_history(), "cache": str(cache.dir)}
    if embed_only:
        return {"benchmark": "bench_store", "embedding": embedding}
    embedder = CachedEmbedder(inner, cache)
    queries_src = TextSource(words, seed + 1_000_003)
    rng = random.Random(seed + 1)

    workdir = Path(reuse or keep or tempfile.mkdtemp(prefix="memsvc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    isolate_witness(workdir)
    layout: dict[str, Ranges] = manifest["ranges"] if manifest else {}
    ingests: dict[str, Any] = manifest["ingest"] if manifest else {}
    points: list[Point] = []
    sites: dict[str, Any] = {}
    settings_used: dict[str, Any] = {}
    plan_used: dict[str, Any] = {}
    try:
        for b_index, backend in enumerate(backends):
            site = StoreSite(backend, workdir, pg_url, pg_settings)
            try:
                sites[backend] = site.describe()
                stores = [("multi", plans if reuse is None else plans[-1:])]
                if one_scope:
                    stores.append(("one", [(one_scope, {"solo": one_scope})]))
                for name, store_plans in stores:
                    location = site.location(name) if reuse else site.create(name)
                    memory = _open(location, embedder)
                    ranges: Ranges = {} if reuse is None else layout[name]
                    cursor = 0
                    have: dict[str, int] = {}
                    try:
                        for size_total, plan in store_plans:
                            n_users = len(plan)
                            each = next(iter(plan.values()))
                            label = (f"{size_total:,} in one scope" if name == "one" else
                                     f"{size_total:,} total / {n_users:,} users")
                            point = Point(label, backend, size_total, n_users, each)
                            if reuse is None:
                                todo = {u: c - have.get(u, 0) for u, c in plan.items()}
                                todo = {u: c for u, c in todo.items() if c > 0}
                                say(f"{backend}: ingesting up to {label}")
                                point.ingest, cursor = _ingest(memory, embedder, texts, cursor,
                                                               todo, batch, ranges, say,
                                                               writers)
                                have = dict(plan)
                                ingests[f"{backend}/{label}"] = point.ingest
                                say(f"{backend}: ingest {point.ingest}")
                            else:
                                point.ingest = {**ingests.get(f"{backend}/{label}", {}),
                                                "reused": True}
                            targets = [rng.choice(list(plan)) for _ in range(queries)]
                            say(f"{backend}: measuring search at {label}")
                            _measure(memory, embedder, texts, queries_src, ranges, targets, k,
                                     point, baselines=b_index == 0)
                            point.store_bytes = site.size_bytes(name)
                            say(f"{backend}: search p50 "
                                f"{ {n: s['p50_ms'] for n, s in point.search.items()} }")
                            points.append(point)
                        settings_used = memory.settings.describe()
                        plan_used = memory.default_plan.with_limit(k).describe()
                    finally:
                        memory.close()
                    layout[name] = ranges
            finally:
                site.close()
        if keep is not None:
            (workdir / MANIFEST).write_text(json.dumps({
                "sizes": sizes, "per_user": per_user, "users": users, "one_scope": one_scope,
                "seed": seed, "batch": batch, "backends": backends, "pg_url": pg_url,
                "pg_settings": pg_settings, "writers": writers,
                "ranges": layout, "ingest": ingests,
            }) + "\n", encoding="utf-8")
    finally:
        if keep is None and reuse is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "benchmark": "bench_store",
        "points": [p.as_dict() for p in points],
        "embedding": embedding,
        "config": {
            "sizes": sizes, "users": users, "per_user": per_user, "one_scope": one_scope,
            "backends": backends, "queries_per_point": queries, "add_batch": batch, "k": k,
            "writers": writers, "pg_settings": pg_settings or {},
            "seed": seed, "vocabulary_words": len(words), "reused_stores": str(reuse or ""),
            "kept_stores": str(keep or ""), "stores": sites,
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


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report of several runs over the same corpus, one backend each (e.g. the kept
    stores of a SQLite build and of a PostgreSQL build, each measured with `--reuse`), so
    that both backends share one table and one plot.

    The runs must agree on the corpus and sizes. The in-memory baselines are kept from the
    first run only (they do not depend on the backend); each run's git state, environment
    and load are listed under `config.merged_runs`.
    """
    if len(reports) < 2:
        raise ValueError("merge needs at least two reports")
    same = ("sizes", "users", "per_user", "one_scope", "seed", "add_batch", "k")
    first = reports[0]["config"]
    for other in reports[1:]:
        differ = [key for key in same if other["config"].get(key) != first.get(key)]
        if differ:
            raise ValueError(f"reports differ in {', '.join(differ)}: not the same benchmark")
    backends = [b for r in reports for b in r["config"]["backends"]]
    if len(set(backends)) != len(backends):
        raise ValueError(f"a backend is in more than one report: {backends}")
    points = list(reports[0]["points"])
    for later in reports[1:]:
        points += [{**p, "search": {n: s for n, s in p["search"].items() if n == "memsvc"}}
                   for p in later["points"]]
    stores: dict[str, Any] = {}
    for r in reports:
        stores.update(r["config"].get("stores", {}))
    config = {**first, "backends": backends, "stores": stores,
              "load_average_at_end": reports[-1]["config"].get("load_average_at_end"),
              "reused_stores": ", ".join(str(r["config"].get("reused_stores") or "")
                                         for r in reports),
              "merged_runs": [{"backends": r["config"]["backends"],
                               "git": r["config"]["git"],
                               "environment": r["config"]["environment"],
                               "load_average_at_end": r["config"].get("load_average_at_end"),
                               "reused_stores": r["config"].get("reused_stores")}
                              for r in reports]}
    return {"benchmark": "bench_store", "points": points,
            "embedding": reports[0].get("embedding", {}), "config": config}


# -- output -------------------------------------------------------------------------------

SYSTEMS = ("memsvc", "rank_bm25", "numpy_cosine", "embed_query")


def _gb(n: int | None) -> str | None:
    return None if n is None else f"{n / 1e9:.2f} GB"


def render_markdown(report: dict[str, Any]) -> str:
    points = report["points"]
    ingest_rows = [
        [p["label"], p["backend"], p["ingest"].get("memories"), p["ingest"].get("add_calls"),
         p["ingest"].get("writers", 1), p["ingest"].get("seconds"),
         p["ingest"].get("memories_per_s"),
         p["ingest"].get("integrity_share"),
         p["ingest"].get("load_average", {}).get("before"),
         p["ingest"].get("load_average", {}).get("after"), _gb(p.get("store_bytes"))]
        for p in points
    ]
    search_rows = [
        [p["label"], p["memories_per_scope"],
         f"memsvc ({p['backend']})" if name == "memsvc" else name,
         p["search"][name]["p50_ms"], p["search"][name]["p95_ms"],
         p["load_average"].get("search_before"), p["load_average"].get("search_after")]
        for p in points for name in SYSTEMS if name in p["search"]
    ]
    inside_rows = [
        [p["label"], p["backend"], part, s["p50_ms"], s["p95_ms"]]
        for p in points for part, s in p["memsvc_inside_search"].items()
    ]
    config = report["config"]
    env = config["environment"]
    embedding = report.get("embedding", {})
    build_rows = [[b.get("docs"), b.get("seconds"), b.get("docs_per_s"), b.get("load_average")]
                  for b in embedding.get("cache_builds", [])]
    this_run = embedding.get("this_run", {})
    reused = config.get("reused_stores")
    stores = config.get("stores", {})
    pg = stores.get("postgres")
    users_line = (f"{config['per_user']} memories per user (users = size / {config['per_user']})"
                  if config.get("per_user") else f"{config['users']} users at every size")
    return "\n".join([
        "# Store benchmark: ingest and search latency, "
        + " and ".join(config.get("backends", ["sqlite"])),
        "",
        f"{env.get('cpus')} CPUs ({env.get('platform')}), torch {env.get('torch')}, "
        f"load average {env.get('load_average_1_5_15')} at start, "
        f"{config.get('load_average_at_end')} at end, "
        f"git `{config['git'].get('commit')}` (dirty: {config['git'].get('dirty')}); "
        f"{users_line}; {config['queries_per_point']} distinct queries per point, "
        f"top {config['k']}.",
        "",
        *([f"PostgreSQL: {pg}.", ""] if pg else []),
        *([f"**Merged from {len(config['merged_runs'])} runs** (one per backend: "
           + "; ".join(f"{', '.join(m['backends'])} at load "
                       f"{m['environment'].get('load_average_1_5_15')} → "
                       f"{m['load_average_at_end']}" for m in config["merged_runs"])
           + "); the in-memory baselines are the first run's.", ""]
          if config.get("merged_runs") else []),
        *([f"**Search measured over kept stores** (`--reuse {reused}`): the ingest figures "
           "below are those of the run that built them.", ""] if reused else []),
        "## Embedding (the real model, each distinct sentence once, cached on disk)",
        "",
        f"This run embedded {this_run.get('docs', 0):,} sentences"
        + (f" at {this_run.get('docs_per_s')} docs/s" if this_run.get("docs") else
           " (all were cached)")
        + f"; the cache's builds (`{embedding.get('cache')}`):",
        "",
        markdown_table(["docs", "seconds", "docs/s", "load average"], build_rows),
        "",
        "## Store ingest (`Memory.add`, "
        f"{config['add_batch']} messages per call, vectors served from the cache)",
        "",
        "Not embedding: the store's own write path (rows, vector index, lexical index, "
        "history, graph, integrity signing). `signing share`: the part of the ingest time "
        "spent in the integrity chain (sign: scope lock, head read, MAC; save: chain rows, "
        "head upsert), once per `add` call and scope.",
        "",
        markdown_table(["point", "backend", "memories added", "add calls", "writers", "seconds",
                        "memories/s", "signing share", "load before", "load after",
                        "store size"], ingest_rows),
        "",
        "## Search latency (ms, wall clock, one user's scope)",
        "",
        markdown_table(["point", "memories in scope", "system", "p50", "p95", "load before",
                        "load after"], search_rows),
        "",
        f"- `memsvc`: `Memory.search(q, user_id=..., limit={config['k']})`, default plan "
        f"`{config['memsvc_plan']}`, end to end (query embedding, every channel of the plan, "
        "fusion, record fetch, access-count write).",
        f"- `numpy_cosine`: {config['numpy_baseline']}.",
        f"- `rank_bm25`: {config['rank_bm25_baseline']}.",
        "- `embed_query`: the query embedding alone (uncached).",
        "- The baselines do not depend on the backend: measured once per point.",
        "",
        "## Inside memsvc's search (ms, from `SearchResponse.timing_ms`)",
        "",
        markdown_table(["point", "backend", "part", "p50", "p95"], inside_rows),
        "",
    ])


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    labels = list(dict.fromkeys(p["label"] for p in points))
    backends = list(dict.fromkeys(p["backend"] for p in points))
    by = {(p["label"], p["backend"]): p for p in points}
    def memsvc_on(b: str) -> Callable[[str], dict[str, Any] | None]:
        return lambda lab: (by.get((lab, b)) or {}).get("search", {}).get("memsvc")

    def baseline(name: str) -> Callable[[str], dict[str, Any] | None]:
        return lambda lab: next((p["search"][name] for p in points
                                 if p["label"] == lab and name in p["search"]), None)

    series = [(f"memsvc {b}", memsvc_on(b)) for b in backends]
    series += [(name, baseline(name)) for name in SYSTEMS[1:]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    for i, (name, get) in enumerate(series):
        stats = [get(lab) for lab in labels]
        p50 = [s["p50_ms"] if s else 0 for s in stats]
        p95 = [s["p95_ms"] if s else np.nan for s in stats]
        offset = (i - (len(series) - 1) / 2) * width
        left.bar(x + offset, p50, width, label=f"{name} p50")
        left.scatter(x + offset, p95, marker="_", s=120, color="black",
                     label="p95" if i == 0 else None, zorder=3)
    left.axhline(15, color="red", linestyle="--", linewidth=1, label="15 ms target")
    left.set_yscale("log")
    left.set_xticks(x, labels, rotation=15, fontsize=8)
    left.set_ylabel("search latency (ms, log scale)")
    left.set_title("Search latency per point (bars p50, ticks p95)")
    left.legend(fontsize=7)
    width = 0.8 / len(backends)
    for i, b in enumerate(backends):
        rates = [(by.get((lab, b)) or {}).get("ingest", {}).get("memories_per_s") or 0
                 for lab in labels]
        offset = (i - (len(backends) - 1) / 2) * width
        right.bar(x + offset, rates, width, label=b)
    right.set_xticks(x, labels, rotation=15, fontsize=8)
    right.set_ylabel("memories added per second")
    right.set_title("Store ingest (Memory.add, vectors from the cache)")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pg_setting(raw: str) -> tuple[str, str]:
    """`--pg-setting NAME=VALUE` as (name, value); a malformed one is refused as a usage error
    by argparse, before any store is built."""
    name, equals, value = raw.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {raw!r}")
    return name.strip(), value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsvc.evals.bench_store",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                        help="total memories per point, comma separated")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS,
                        help="users sharing every size (without --per-user)")
    parser.add_argument("--per-user", type=int, default=None,
                        help="memories per user: size / N users at each size")
    parser.add_argument("--one-scope", type=int, default=DEFAULT_ONE_SCOPE,
                        help="memories in the single-scope point (0: skip it)")
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="sqlite")
    parser.add_argument("--pg-url", default=None,
                        help="a PostgreSQL server (SQLAlchemy URL) instead of the embedded one")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        type=pg_setting,
                        help="a setting of the embedded PostgreSQL (repeatable), e.g. "
                        "shared_buffers=2GB; kept for --reuse")
    parser.add_argument("--writers", type=int, default=1,
                        help="threads calling Memory.add at once during ingest")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="messages per add call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"vector cache (default {default_cache_dir()})")
    parser.add_argument("--embed-only", action="store_true",
                        help="only fill the vector cache for this corpus, then stop")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the stores in this new directory and keep them")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="measure search over the stores a --keep run left here")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sizes 1000,2000, one scope of 1000, 50 queries; "
                        "writes bench_store-quick.*")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default=None, help="write bench_store-<tag>.* instead")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="write one report of earlier runs' JSON results (one backend "
                        "each) instead of running")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    suffix = f"-{args.tag}" if args.tag else "-quick" if args.quick else ""
    if args.merge:
        merged = merge_reports([json.loads(Path(f).read_text(encoding="utf-8"))
                                for f in args.merge])
        if not args.no_write:
            write_results(args.out, f"bench_store{suffix}", merged, render_markdown(merged))
            plot(merged, args.out / f"bench_store{suffix}.png")
        print(render_markdown(merged))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    one_scope, queries = args.one_scope, args.queries
    if args.quick:
        sizes, one_scope, queries = [1000, 2000], 1000, 50
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    report = run(sizes, users=args.users, per_user=args.per_user, one_scope=one_scope,
                 backends=backends, queries=queries, batch=args.batch, seed=args.seed,
                 pg_url=args.pg_url, cache_dir=args.cache_dir, keep=args.keep,
                 pg_settings=dict(args.pg_setting) or None,
                 writers=args.writers,
                 reuse=args.reuse, embed_only=args.embed_only,
                 out_dir=None if args.no_write or args.embed_only else args.out,
                 stem=f"bench_store{suffix}")
    if args.embed_only:
        print(json.dumps(report["embedding"], indent=2))
    else:
        print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
