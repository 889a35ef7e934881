"""Recall@50 of the store's scoped KNN against exact brute force (issue 10: >= 0.98).

A store is loaded with N memories (10k, then 100k) spread evenly over 1,000 users, each
memory written by one of a few agents, with real all-MiniLM embeddings of synthetic sentences
(`bench_store`'s `TextSource`); then a single extra user receives 10k memories of its own
(the one-scope point). At each point, distinct queries (embedded with `embed_query`) are run
through the store's own `vector_search` in a random user's scope: tenant + user, default
status and trust (what `Memory.search` asks), and the same plus an `agent_id` (a filter
inside the KNN). The exact top-50 is NumPy cosine over that scope's vectors. Each scope is
searched twice: as the store is configured (on PostgreSQL: exact below `exact_search_below`
visible rows, HNSW with pgvector's iterative scan above), and with the index path forced
(`exact_search_below = 0`), so the HNSW path's recall is known even where the threshold
would never let it run. The path each search took is recorded.

Loading goes through the normal write path (`Memory.add`, raw mode, a batch of messages per
call); vectors are computed once per (seed, n) and cached as .npy (`--cache-dir`), so a
re-run embeds only its queries.

    python -m memsvc.evals.bench_knn_recall                      # 10k, 100k, one scope of 10k
    python -m memsvc.evals.bench_knn_recall --db postgresql+psycopg://...  # an existing server
    python -m memsvc.evals.bench_knn_recall --backend sqlite --sizes 10000

Writes evals/results/knn-recall.{json,md} (`--tag T`: knn-recall-T.*).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from memsvc import Memory
from memsvc.embedding.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.evals.bench_sites import stop_cleanly_on_sigterm
from memsvc.evals.bench_store import TextSource, vocabulary
from memsvc.evals.metrics import latency_summary
from memsvc.evals.report import (
    RESULTS_DIR,
    environment,
    git_state,
    markdown_table,
    write_results,
)
from memsvc.model.records import Scope
from memsvc.model.settings import Settings, default_embedder_path
from memsvc.model.trust import DEFAULT_MIN_TRUST
from memsvc.storage.base import VisibilityQuery

DEFAULT_SIZES = (10_000, 100_000)
DEFAULT_USERS = 1_000
DEFAULT_AGENTS = 4
DEFAULT_ONE_SCOPE = 10_000
K = 50
TARGET = 0.98
SOLO = "solo"
# a store hit whose exact cosine is within this of the k-th best counts as a true neighbour:
# float32 rounding differs between pgvector and NumPy, and ties at rank k are arbitrary
TIE_EPS = 1e-5
_EMBED_CHUNK = 1000
_SAVE_EVERY = 5000
# a raw `add` stores a message as the episode "<speaker>: <content>", and embeds that text
EPISODE_PREFIX = "user: "


def say(message: str) -> None:
    print(f"[knn-recall {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- vectors, computed once per (seed, n) ---------------------------------------------------


def cached_vectors(sentences: Sequence[str], seed: int, embedder: Embedder,
                   cache_dir: Path) -> tuple[np.ndarray, str]:
    """Unit document vectors of `sentences` (the first n of seed `seed`'s sequence).

    The cache is one file per seed, `knn-seed{seed}-n{m}.npy`, holding the first m vectors
    of the sequence: its first n rows serve any n <= m; otherwise the missing ones are
    embedded and the file grows (saved every `_SAVE_EVERY` rows, so an interrupted run
    resumes). A cache whose first row is not the embedder's vector of the first sentence
    (another model) is ignored. Returns (vectors, where they came from)."""
    n = len(sentences)
    probe = _unit(embedder.embed_documents([sentences[0]]))[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    have = np.zeros((0, probe.shape[0]), dtype=np.float32)
    path: Path | None = None
    for found in cache_dir.glob(f"knn-seed{seed}-n*.npy"):
        rows = np.load(found)
        if len(rows) > len(have) and np.allclose(rows[0], probe, atol=1e-3):
            have, path = rows.astype(np.float32), found
    if len(have) >= n:
        return np.ascontiguousarray(have[:n]), f"cache {path.name if path else ''}"
    source = f"embedded {n - len(have):,}" + (f" (first {len(have):,} cached)" if len(have)
                                                else "")
    parts = [have]
    for start in range(len(have), n, _EMBED_CHUNK):
        parts.append(_unit(embedder.embed_documents(sentences[start:start + _EMBED_CHUNK])))
        done = min(start + _EMBED_CHUNK, n)
        if done % _SAVE_EVERY == 0 or done == n:
            path = _save(cache_dir, seed, np.concatenate(parts), path)
            say(f"embedded {done:,}/{n:,}")
    return np.concatenate(parts).astype(np.float32), source


def _save(cache_dir: Path, seed: int, vectors: np.ndarray, old: Path | None) -> Path:
    """The seed's cache file, grown: written beside, then the shorter one removed."""
    path = cache_dir / f"knn-seed{seed}-n{len(vectors)}.npy"
    np.save(path, vectors.astype(np.float32))
    if old is not None and old != path:
        old.unlink(missing_ok=True)
    return path


def _unit(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


class CachedEmbedder:
    """The real embedder, except that documents of the corpus get their cached vectors
    (`Memory.add` embeds exactly the stored text). Misses are embedded and counted."""

    def __init__(self, inner: Embedder, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.inner = inner
        self.name = inner.name
        self._index = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        rows = [self._index.get(t) for t in texts]
        if all(r is not None for r in rows):
            return self._vectors[[r for r in rows if r is not None]]
        self.misses += sum(r is None for r in rows)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


# -- the store and what it holds -----------------------------------------------------------


@dataclass
class Corpus:
    """Which stored memory is which vector, per (user, agent)."""

    vectors: np.ndarray
    ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def scope(self, user: str, agent: str | None) -> tuple[list[str], np.ndarray]:
        keys = [k for k in self.ids if k[0] == user and (agent is None or k[1] == agent)]
        ids = [i for k in keys for i in self.ids[k]]
        rows = [r for k in keys for r in self.rows[k]]
        return ids, self.vectors[rows]


def load(memory: Memory, texts: Sequence[str], corpus: Corpus, plan: Sequence[tuple[str, int]],
         agents: Sequence[str], batch: int, cursor: int) -> tuple[int, dict[str, Any]]:
    """Add `count` new memories for each (user, count) of `plan` through `Memory.add` (raw),
    memory i of a user written by agent i mod len(agents); texts from `cursor` on."""
    started, calls = time.perf_counter(), 0
    index = {EPISODE_PREFIX + t: i for i, t in enumerate(texts)}
    for user, count in plan:
        for a, agent in enumerate(agents):
            mine = [texts[cursor + i] for i in range(a, count, len(agents))]
            for start in range(0, len(mine), batch):
                chunk = mine[start:start + batch]
                result = memory.add([{"role": "user", "content": t} for t in chunk],
                                    user_id=user, agent_id=agent)
                calls += 1
                for change in result.results:
                    if change.event == "ADD":
                        corpus.ids.setdefault((user, agent), []).append(change.id)
                        corpus.rows.setdefault((user, agent), []).append(index[change.text])
        cursor += count
    seconds = time.perf_counter() - started
    added = sum(count for _, count in plan)
    return cursor, {"memories": added, "add_calls": calls, "seconds": round(seconds, 1),
                    "memories_per_s": round(added / seconds, 1) if seconds else None}


class PathProbe:
    """Which path each PostgreSQL `vector_search` took: wraps the store's index search to see
    whether it ran and how many rows it found (fewer than asked: the store went exact)."""

    def __init__(self, store: Any) -> None:
        self.index_rows: list[int] = []
        self.last_index_ids: list[str] = []  # what the index alone found, last search
        original = getattr(store, "_index_search", None)
        self.active = original is not None
        if original is not None:
            def probe(conn: Any, stmt: Any) -> list[Any]:
                rows: list[Any] = original(conn, stmt)
                self.index_rows.append(len(rows))
                self.last_index_ids = [r.id for r in rows]
                return rows

            setattr(store, "_index_search", probe)  # noqa: B010 (a method on the instance)

    def path_of(self, search: Callable[[], Any], wanted: int) -> tuple[Any, str]:
        if not self.active:
            return search(), "exact (sqlite-vec)"
        before = len(self.index_rows)
        hits = search()
        if len(self.index_rows) == before:
            return hits, "exact"
        return hits, "hnsw" if self.index_rows[-1] >= wanted else "hnsw, then exact"


@contextmanager
def forced_index(store: Any, force: bool) -> Iterator[None]:
    """With `force`, the PostgreSQL store takes the HNSW path whatever the scope's size."""
    saved = getattr(store, "exact_search_below", None)
    if force and saved is not None:
        store.exact_search_below = 0
    try:
        yield
    finally:
        if saved is not None:
            store.exact_search_below = saved


# -- measuring -------------------------------------------------------------------------------


def recall_at_k(hit_ids: Sequence[str], scope_ids: Sequence[str], scope_vectors: np.ndarray,
                query: np.ndarray, k: int) -> tuple[float, int]:
    """(recall, hits outside the scope): the share of the exact top-k found, where a hit
    whose exact similarity ties the k-th best (within TIE_EPS) counts as found."""
    want = min(k, len(scope_ids))
    if want == 0:
        return 1.0, len(hit_ids)
    sims = scope_vectors @ query
    kth = float(np.partition(-sims, want - 1)[want - 1]) * -1
    by_id = dict(zip(scope_ids, sims.tolist(), strict=True))
    outside = sum(h not in by_id for h in hit_ids)
    found = sum(1 for h in dict.fromkeys(hit_ids) if h in by_id and by_id[h] >= kth - TIE_EPS)
    return min(found, want) / want, outside


@dataclass
class Case:
    """One kind of scope at one point, searched one way."""

    point: str
    scope: str  # "user" or "user+agent"
    mode: str  # "default" or "forced hnsw"
    recalls: list[float] = field(default_factory=list)
    outside: int = 0
    sizes: list[int] = field(default_factory=list)
    paths: dict[str, int] = field(default_factory=dict)
    ms: list[float] = field(default_factory=list)  # store call, "hnsw alone" has none

    def add(self, recall: float, outside: int, size: int, path: str) -> None:
        self.recalls.append(recall)
        self.outside += outside
        self.sizes.append(size)
        self.paths[path] = self.paths.get(path, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        r = np.asarray(self.recalls)
        return {
            "point": self.point, "scope": self.scope, "mode": self.mode,
            "queries": len(self.recalls), "recall_mean": round(float(r.mean()), 4),
            "recall_min": round(float(r.min()), 4),
            "recall_p5": round(float(np.percentile(r, 5)), 4),
            "hits_outside_scope": self.outside,
            "scope_rows_mean": round(float(np.mean(self.sizes)), 1),
            "paths": dict(sorted(self.paths.items())),
            "latency": latency_summary(self.ms) if self.ms else None,
        }


def measure(memory: Memory, probe: PathProbe, corpus: Corpus, label: str,
            users: Sequence[str], agents: Sequence[str], queries: Sequence[np.ndarray],
            rng: random.Random, k: int) -> list[Case]:
    """Each query in a random user's scope (and that user + a random agent), both modes."""
    store = memory.store
    cases: dict[tuple[str, str], Case] = {}
    for q in queries:
        user, agent = rng.choice(list(users)), rng.choice(list(agents))
        for scope_name, scope in (("user", Scope(user_id=user)),
                                  ("user+agent", Scope(user_id=user, agent_id=agent))):
            ids, vectors = corpus.scope(user, scope.agent_id)
            visible = VisibilityQuery(scope=scope, min_trust=int(DEFAULT_MIN_TRUST))
            for mode in ("default", "forced hnsw") if probe.active else ("default",):
                case = cases.setdefault((scope_name, mode), Case(label, scope_name, mode))
                with forced_index(store, mode == "forced hnsw"):
                    started = time.perf_counter()
                    hits, path = probe.path_of(partial(store.vector_search, visible, q, k),
                                               min(k, len(ids)))
                    case.ms.append((time.perf_counter() - started) * 1000)
                recall, outside = recall_at_k([h.memory_id for h in hits], ids, vectors, q, k)
                case.add(recall, outside, len(ids), path)
                if mode == "forced hnsw" and probe.active:  # the index's rows, before any
                    alone = cases.setdefault(  # fallback to the exact search
                        (scope_name, "hnsw alone"), Case(label, scope_name, "hnsw alone"))
                    recall, outside = recall_at_k(probe.last_index_ids, ids, vectors, q, k)
                    alone.add(recall, outside, len(ids), f"{len(probe.last_index_ids)} rows"
                              if len(probe.last_index_ids) < min(k, len(ids)) else "enough rows")
    return list(cases.values())


# -- the run -------------------------------------------------------------------------------


@contextmanager
def database(backend: str, db: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    """(location, description): `db` as given, a SQLite file, or a fresh embedded
    PostgreSQL in `tmp` (stopped afterwards)."""
    if db is not None:
        yield db, "given"
        return
    if backend == "sqlite":
        yield str(tmp / "knn.db"), "sqlite file"
        return
    import psycopg

    from memsvc.storage.postgres.server import EmbeddedPostgres

    server = EmbeddedPostgres(tmp / "pg", database="knn", fast_unsafe=True)
    server.start()
    try:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")  # as tests/conftest.py
        yield server.url(), "embedded PostgreSQL 18 + pgvector (fast_unsafe settings)"
    finally:
        server.stop()


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    users: int = DEFAULT_USERS,
    agents: int = DEFAULT_AGENTS,
    one_scope: int = DEFAULT_ONE_SCOPE,
    queries: int = 200,
    batch: int = 100,
    k: int = K,
    seed: int = 0,
    backend: str = "postgres",
    db: str | None = None,
    cache_dir: Path | None = None,
    embedder: Embedder | None = None,
    out_dir: Path | None = RESULTS_DIR,
    stem: str = "knn-recall",
) -> dict[str, Any]:
    """Load, measure at each size (the store grows: 10k, then 90k more), then add the
    one-scope user and measure its scope; with `out_dir`, write `<stem>.json` / `.md`."""
    sizes = sorted({int(s) for s in sizes})
    if any(s < users * agents for s in sizes):
        raise ValueError(f"every size must be at least users x agents ({users * agents})")
    if queries < 1 or k < 1 or batch < 1:
        raise ValueError("queries, k and batch must be positive")
    env_at_start = environment()
    text = TextSource(vocabulary(), seed)
    total = sizes[-1] // users * users + one_scope
    texts = [text.sentence() for _ in range(total)]
    documents = [EPISODE_PREFIX + t for t in texts]
    query_texts = [text.query() for _ in range(queries * (len(sizes) + bool(one_scope)))]
    settings = Settings.from_env()
    inner = embedder or SentenceTransformerEmbedder(
        settings.embedder_path or default_embedder_path(), threads=settings.embed_threads,
        precision=settings.embed_precision)
    cache = cache_dir or Path(tempfile.gettempdir()) / "memsvc-knn-cache"
    vectors, vector_source = cached_vectors(documents, seed, inner, cache)
    say(f"{total:,} document vectors ({vector_source}); embedding {len(query_texts)} queries")
    query_vectors = [_unit(inner.embed_query(t)[None, :])[0] for t in query_texts]
    cached = CachedEmbedder(inner, documents, vectors)
    corpus = Corpus(vectors)
    rng = random.Random(seed + 1)
    user_ids = [f"user-{i:04d}" for i in range(users)]
    agent_ids = [f"agent-{i}" for i in range(agents)]
    tenant = f"knn-recall-{uuid.uuid4().hex[:8]}"  # a run never sees an earlier run's rows
    points: list[dict[str, Any]] = []
    cases: list[Case] = []
    with (tempfile.TemporaryDirectory(prefix="memsvc-knn-", dir="/tmp") as tmp,
          database(backend, db, Path(tmp)) as (location, where)):
        # brute force runs over the embedder's vectors, so the store must hold exactly those:
        # with episode context (DEVELOPERS.md), a turn's stored vector leans towards the turn
        # before it, which would be counted as KNN misses
        memory = Memory(settings=Settings.from_env(db_path=location, tenant=tenant,
                                                   episode_context_weight=0.0),
                        embedder=cached)
        try:
            probe = PathProbe(memory.store)
            cursor, have, batches = 0, 0, iter(
                query_vectors[i:i + queries] for i in range(0, len(query_vectors), queries))
            for size in sizes:
                per_user = size // users
                say(f"loading up to {size:,} memories ({users} users)")
                cursor, ingest = load(memory, texts, corpus,
                                      [(u, per_user - have) for u in user_ids],
                                      agent_ids, batch, cursor)
                have = per_user
                label = f"{per_user * users:,} / {users:,} users"
                say(f"{ingest}; measuring")
                cases += measure(memory, probe, corpus, label, user_ids, agent_ids,
                                 next(batches), rng, k)
                points.append({"label": label, "memories": per_user * users,
                               "ingest": ingest})
            if one_scope:
                say(f"loading {one_scope:,} memories into one user's scope")
                cursor, ingest = load(memory, texts, corpus, [(SOLO, one_scope)],
                                      agent_ids, batch, cursor)
                label = f"one scope of {one_scope:,} (+{have * users:,} others)"
                cases += measure(memory, probe, corpus, label, [SOLO], agent_ids,
                                 next(batches), rng, k)
                points.append({"label": label, "memories": have * users + one_scope,
                               "ingest": ingest})
            store_cfg = {"class": type(memory.store).__name__,
                         "exact_search_below": getattr(memory.store, "exact_search_below",
                                                       None)}
        finally:
            memory.close()
    results = [c.as_dict() for c in cases]
    report = {
        "benchmark": "bench_knn_recall",
        "points": points,
        "results": results,
        # what the store returns must pass; "hnsw alone" is the index's part, for diagnosis
        "passed": all(r["recall_mean"] >= TARGET and r["hits_outside_scope"] == 0
                      for r in results if r["mode"] != "hnsw alone"),
        "config": {
            "backend": backend, "database": where, "sizes": sizes, "users": users,
            "agents": agents, "one_scope": one_scope, "queries_per_point": queries, "k": k,
            "seed": seed, "add_batch": batch, "load_path": "Memory.add (raw), one transaction "
            "per call", "vectors": vector_source, "embedder_misses": cached.misses,
            "store": store_cfg, "min_trust": int(DEFAULT_MIN_TRUST), "tie_eps": TIE_EPS,
            "target": TARGET, "git": git_state(), "environment": env_at_start,
            "load_average_at_end": environment()["load_average_1_5_15"],
        },
    }
    if out_dir is not None:
        write_results(out_dir, stem, report, render_markdown(report))
    return report


# -- output --------------------------------------------------------------------------------

HOW_IT_WORKS = """\
## How the scoped KNN works on PostgreSQL

`PostgresStore.vector_search` (storage/postgres/store.py) applies the whole visibility clause
(tenant, user, agent/session, status, kind, trust, filters) inside the KNN query. It first
counts the scope's visible rows, up to `exact_search_below` (3,000):

- **below the threshold** (the common case: one user's memories) index scans are turned off
  for the transaction, so the scope's rows come by bitmap scan of the (tenant, user, ...)
  indexes and every distance is computed: exact, whatever the filter;
- **at or above it** the HNSW index (L2 over unit vectors) is walked with pgvector 0.8's
  iterative scan (`hnsw.iterative_scan = relaxed_order`, `hnsw.ef_search`): the filter is
  checked while walking the graph, which keeps going until k rows pass (or
  `hnsw.max_scan_tuples` is reached); the candidates are re-sorted by exact distance. If the
  scan still returns fewer than k rows the store falls back to the exact search.

"forced hnsw" rows set `exact_search_below = 0` on the store instance, so even small scopes
take the index path (what the store returns, after its fallback when the scan found fewer
than k); "hnsw alone" scores the rows the index scan itself returned in those searches, before
any fallback ("path taken" there: whether it found enough rows): the index's own recall under
a selective filter (each user holds 0.1% of the rows at 1,000 users; user + agent a quarter
of that).
"""


def render_markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    rows = [[r["point"], r["scope"], r["mode"], f"{r['scope_rows_mean']:.0f}", r["queries"],
             r["recall_mean"], r["recall_p5"], r["recall_min"], r["hits_outside_scope"],
             ", ".join(f"{p}: {n}" for p, n in r["paths"].items()),
             r["latency"]["p50_ms"] if r["latency"] else None]
            for r in report["results"]]
    ingest = [[p["label"], p["ingest"]["memories"], p["ingest"]["add_calls"],
               p["ingest"]["seconds"], p["ingest"]["memories_per_s"]]
              for p in report["points"]]
    env = cfg["environment"]
    verdict = "all points pass" if report["passed"] else "NOT every point passes"
    return "\n".join([
        "# Scoped KNN recall@{k} against exact brute force (`evals/bench_knn_recall.py`)".format(
            k=cfg["k"]),
        "",
        f"Backend: {cfg['backend']} ({cfg['database']}; store {cfg['store']}). "
        f"{cfg['users']:,} users, {cfg['agents']} agents each; {cfg['queries_per_point']} "
        "distinct queries per point, each in a random user's scope, with `min_trust` = "
        f"{cfg['min_trust']} and status active (what `Memory.search` asks). Ground truth: "
        "NumPy cosine over the scope's vectors (a hit tying the k-th best within "
        f"{cfg['tie_eps']} counts). Target: mean recall >= {cfg['target']} — {verdict}.",
        "",
        markdown_table(["point", "scope", "mode", "rows in scope", "queries", "recall mean",
                        "p5", "min", "hits outside scope", "path taken", "p50 ms"], rows),
        "",
        "## Loading",
        "",
        f"Through `{cfg['load_path']}`, {cfg['add_batch']} messages per call at most (one "
        f"user and agent per call); document vectors: {cfg['vectors']} "
        f"(all-MiniLM-L6-v2; embedder misses: {cfg['embedder_misses']}).",
        "",
        markdown_table(["point", "memories added", "add calls", "seconds", "memories/s"],
                       ingest),
        "",
        HOW_IT_WORKS,
        f"Machine: {env['cpus']} CPUs, {env['platform']}, load average at start "
        f"{env['load_average_1_5_15']}, at end {cfg['load_average_at_end']}; commit "
        f"{cfg['git']['commit']} (dirty: {cfg['git']['dirty']}). Latencies are the store "
        "call alone and only indicative on a shared machine.",
        "",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memsvc.evals.bench_knn_recall",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS)
    parser.add_argument("--one-scope", type=int, default=DEFAULT_ONE_SCOPE,
                        help="memories of the single extra user (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="messages per add call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--db", default=None,
                        help="a store URL/path to use instead of a fresh embedded server")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default=None, help="write knn-recall-<tag>.* instead")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    report = run([int(s) for s in args.sizes.split(",") if s.strip()], users=args.users,
                 agents=args.agents, one_scope=args.one_scope, queries=args.queries,
                 batch=args.batch, seed=args.seed, backend=args.backend, db=args.db,
                 cache_dir=args.cache_dir, out_dir=None if args.no_write else args.out,
                 stem=f"knn-recall-{args.tag}" if args.tag else "knn-recall")
    print(render_markdown(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
