"""The benchmark's building blocks (not the benchmark: nothing here is timed)."""

from __future__ import annotations

import numpy as np
import pytest

from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.evals import bench_store


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


def test_recording_embedder_keeps_what_was_stored_per_scope(
    embedder: SentenceTransformerEmbedder,
) -> None:
    recorder = bench_store.RecordingEmbedder(embedder)
    recorder.scope = "u1"
    first = recorder.embed_documents(["the red kayak", "a frozen lake"])
    recorder.scope = "u2"
    recorder.embed_documents(["an old motorbike"])
    recorder.scope = "u1"
    recorder.embed_documents(["sourdough starter"])
    assert recorder.texts == {
        "u1": ["the red kayak", "a frozen lake", "sourdough starter"],
        "u2": ["an old motorbike"],
    }
    matrix = recorder.matrix("u1")
    assert matrix.shape == (3, embedder.dim)
    assert np.allclose(matrix[:2], first)
    assert np.allclose(recorder.embed_query("red kayak"), embedder.embed_query("red kayak"))


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="number of users"):
        bench_store.run([50], users=100, out_dir=None, progress=False)
    with pytest.raises(ValueError, match="positive"):
        bench_store.run([1000], queries=0, out_dir=None, progress=False)
