"""The embedder: offline, normalized, cached queries, and the opt-in int8 query encoder."""

from __future__ import annotations

import numpy as np

from memsvc.config import default_embedder_path
from memsvc.embedding import SentenceTransformerEmbedder


def test_queries_and_documents_share_one_space(embedder: SentenceTransformerEmbedder) -> None:
    docs = embedder.embed_documents(["Caroline adopted a guinea pig", "The stock market fell"])
    query = embedder.embed_query("Which pet did Caroline get?")
    assert docs.shape == (2, 384) and query.shape == (384,)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    assert float(docs[0] @ query) > float(docs[1] @ query)
    same = embedder.embed_documents(["Which pet did Caroline get?"])[0]
    assert float(same @ query) > 0.999  # the one-pass query path matches the batch path


def test_repeated_queries_come_from_the_cache(embedder: SentenceTransformerEmbedder) -> None:
    first = embedder.embed_query("a question asked twice")
    assert embedder.embed_query("a question asked twice") is first


def test_int8_query_encoder_stays_close_to_full_precision() -> None:
    quantized = SentenceTransformerEmbedder(default_embedder_path(), quantize_queries=True)
    full = SentenceTransformerEmbedder(default_embedder_path())
    text = "Where did Melanie go camping last summer?"
    q8, q32 = quantized.embed_query(text), full.embed_query(text)
    assert not np.array_equal(q8, q32)  # really a different model
    assert float(q8 @ q32) > 0.85
    docs = full.embed_documents(["Melanie went camping at the beach", "Caroline paints"])
    assert float(docs[0] @ q8) > float(docs[1] @ q8)
