"""The KNN recall benchmark at a tiny size on the test PostgreSQL: it measures what it says.

Below the store's exact-search threshold the store's answer must be exactly the brute-force
top-k (recall 1.0, nothing outside the scope); the forced-HNSW searches must really have
taken the index path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.evals import bench_knn_recall


def test_recall_counts_the_exact_top_k_ties_and_hits_outside_the_scope() -> None:
    vectors = np.eye(4, dtype=np.float32)
    ids = ["a", "b", "c", "d"]
    query = np.array([0.9, 0.8, 0.1, 0.0], dtype=np.float32)
    assert bench_knn_recall.recall_at_k(["a", "b"], ids, vectors, query, 2) == (1.0, 0)
    assert bench_knn_recall.recall_at_k(["a", "c"], ids, vectors, query, 2) == (0.5, 0)
    assert bench_knn_recall.recall_at_k(["a", "x"], ids, vectors, query, 2) == (0.5, 1)
    tied = np.array([1.0, 0.5, 0.5, 0.0], dtype=np.float32)  # b and c tie for rank 2
    assert bench_knn_recall.recall_at_k(["a", "c"], ids, vectors, tied, 2) == (1.0, 0)


def test_tiny_run_on_postgres_is_exact_below_the_threshold(
    pg_url: str, embedder: SentenceTransformerEmbedder, tmp_path: Path,
) -> None:
    # scopes larger than k (150 and 75 rows), so a wrong top-k cannot pass as the whole scope
    report = bench_knn_recall.run(
        [300], users=2, agents=2, one_scope=0, queries=10, db=pg_url,
        cache_dir=tmp_path / "cache", embedder=embedder, out_dir=None)
    by_mode = {(r["scope"], r["mode"]): r for r in report["results"]}
    assert set(by_mode) == {(s, m) for s in ("user", "user+agent")
                            for m in ("default", "forced hnsw", "hnsw alone")}
    assert report["config"]["embedder_misses"] == 0  # every stored vector is a known one
    for scope in ("user", "user+agent"):
        default = by_mode[scope, "default"]
        assert default["paths"] == {"exact": 10}
        assert default["recall_mean"] == default["recall_min"] == 1.0
        assert by_mode[scope, "forced hnsw"]["paths"].keys() <= {"hnsw", "hnsw, then exact"}
        for row in by_mode.values():
            assert row["hits_outside_scope"] == 0 and 0.0 <= row["recall_min"] <= 1.0
    assert by_mode["user", "default"]["scope_rows_mean"] == 150
    assert by_mode["user+agent", "default"]["scope_rows_mean"] == 75
    # the second run reads the vectors back from the cache
    again = bench_knn_recall.run(
        [300], users=2, agents=2, one_scope=0, queries=2, db=pg_url,
        cache_dir=tmp_path / "cache", embedder=embedder, out_dir=None)
    assert again["config"]["vectors"].startswith("cache ")
