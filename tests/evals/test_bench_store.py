"""The benchmark's building blocks (nothing here asserts a timing); a tiny run on both
backends is in test_bench_store_run.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.evals import bench_store, embed_cache


def test_queries_never_repeat_so_the_query_cache_cannot_hit() -> None:
    source = bench_store.TextSource(["alpha", "beta", "gamma"], seed=3)
    queries = [source.query() for _ in range(300)]
    assert len(set(queries)) == len(queries)


def test_text_is_seeded_and_drawn_from_the_vocabulary() -> None:
    words = bench_store.vocabulary()
    assert len(words) > 1000 and all(w.isalpha() and w.islower() for w in words)
    a, b = bench_store.TextSource(words, seed=7), bench_store.TextSource(words, seed=7)
    first = [a.sentence() for _ in range(5)]
    assert first == [b.sentence() for _ in range(5)]
    assert all(8 <= len(s.split()) <= 20 for s in first)
    assert first != [bench_store.TextSource(words, seed=8).sentence() for _ in range(5)]


def test_top_k_is_the_k_best_in_order() -> None:
    scores = np.array([0.1, 0.9, 0.3, 0.7, 0.5])
    assert bench_store.top_k(scores, 3).tolist() == [1, 3, 4]
    assert bench_store.top_k(scores, 10).tolist() == [1, 3, 4, 2, 0]


def test_vector_cache_embeds_each_sentence_once_and_serves_it_back(
    embedder: SentenceTransformerEmbedder, tmp_path: Path,
) -> None:
    texts = [f"user: sentence number {i}" for i in range(25)]
    calls: list[int] = []

    def embed(batch: Sequence[str]) -> np.ndarray:
        calls.append(len(batch))
        return embedder.embed_documents(batch)

    key_print = embed_cache.fingerprint(texts, "m")
    cache = embed_cache.VectorCache(tmp_path, "m-seed0", embedder.dim, key_print)
    first = cache.ensure(texts, embed)
    assert first["docs"] == 25 and calls == [25]
    again = embed_cache.VectorCache(tmp_path, "m-seed0", embedder.dim, key_print)
    assert again.ensure(texts[:10], embed)["docs"] == 0 and calls == [25]  # a prefix: cached
    assert np.allclose(again.rows([3, 0]), embedder.embed_documents([texts[3], texts[0]]),
                       atol=1e-5)
    with pytest.raises(ValueError, match="another corpus"):
        embed_cache.VectorCache(tmp_path, "m-seed0", embedder.dim, "not-the-same")

    served = embed_cache.CachedEmbedder(embedder, again)
    served.pending = {texts[5]: 5}
    assert np.array_equal(served.embed_documents([texts[5]]), again.rows([5]))
    assert served.misses == 0
    served.embed_documents([texts[5], "something else"])  # not announced: embedded
    assert served.misses == 1


def test_users_grow_with_the_size_when_memories_per_user_are_fixed() -> None:
    plans = bench_store.size_plans([1000, 3000], users=100, per_user=100)
    assert [(total, len(plan), set(plan.values())) for total, plan in plans] == [
        (1000, 10, {100}), (3000, 30, {100})]
    fixed = bench_store.size_plans([1000, 3000], users=100, per_user=None)
    assert [(total, len(plan), set(plan.values())) for total, plan in fixed] == [
        (1000, 100, {10}), (3000, 100, {30})]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="number of users"):
        bench_store.run([50], users=100, out_dir=None, progress=False)
    with pytest.raises(ValueError, match="positive"):
        bench_store.run([1000], queries=0, out_dir=None, progress=False)


def test_vector_cache_takes_over_a_chunk_whose_builder_died(
    embedder: SentenceTransformerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embed_cache, "CHUNK", 4)
    texts = [f"user: line {i}" for i in range(10)]  # chunks of 4, 4 and a partial 2
    cache = embed_cache.VectorCache(tmp_path, "k", embedder.dim, "f")
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (cache.dir / "chunk-00000.lock").write_text(str(dead))
    built = cache.ensure(texts, embedder.embed_documents)
    assert built["docs"] == 10
    assert sorted(p.name for p in cache.dir.iterdir()) == [
        "chunk-00000.npy", "chunk-00001.npy", "chunk-00002-2.npy", "meta.json"]
    assert np.allclose(cache.rows([9, 4]), embedder.embed_documents([texts[9], texts[4]]),
                       atol=1e-5)


def test_a_pg_setting_without_a_value_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_store.pg_setting(" shared_buffers=2GB") == ("shared_buffers", "2GB")
    assert bench_store.pg_setting("search_path=") == ("search_path", "")
    with pytest.raises(SystemExit) as stopped:
        bench_store.main(["--pg-setting", "shared_buffers"])
    assert stopped.value.code == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
