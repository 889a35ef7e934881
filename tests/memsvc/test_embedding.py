"""The embedder: offline, normalized, cached queries, the lean query path, query precisions."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.embedding.query_encoder import LeanBertQueryEncoder, lean_query_encoder
from memsvc.model.errors import InvalidInputError
from memsvc.model.settings import default_embedder_path


def test_queries_and_documents_share_one_space(embedder: SentenceTransformerEmbedder) -> None:
    docs = embedder.embed_documents(["Caroline adopted a guinea pig", "The stock market fell"])
    query = embedder.embed_query("Which pet did Caroline get?")
    assert docs.shape == (2, 384) and query.shape == (384,)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    assert float(docs[0] @ query) > float(docs[1] @ query)
    same = embedder.embed_documents(["Which pet did Caroline get?"])[0]
    # the one-pass query path matches the batch path (to bf16 rounding, where that is used)
    assert float(same @ query) > 0.995


def test_repeated_queries_come_from_the_cache(embedder: SentenceTransformerEmbedder) -> None:
    first = embedder.embed_query("a question asked twice")
    assert embedder.embed_query("a question asked twice") is first


def test_queries_embedded_together_match_one_at_a_time_and_fill_the_cache(
    embedder: SentenceTransformerEmbedder,
) -> None:
    texts = ["What does Melanie do to destress, asked in a batch?",
             "What does do to destress, asked in a batch?"]
    together = embedder.embed_queries(texts, namespace="batch")
    assert len(together) == 2
    for text, vector in zip(texts, together, strict=True):
        assert np.isclose(float(np.linalg.norm(vector)), 1.0, atol=1e-4)
        alone = embedder.embed_query(text, namespace="other")  # another tenant: not cached
        assert float(vector @ alone) > 0.995
        assert embedder.embed_query(text, namespace="batch") is vector  # cached by the batch
    again = embedder.embed_queries([texts[1], "a new one, asked in a batch"], namespace="batch")
    assert again[0] is together[1]
    assert embedder.embed_queries([], namespace="batch") == []


def test_fp32_queries_run_on_an_fp32_onnx_graph_giving_the_models_vectors(
    tmp_path: Path,
) -> None:
    embedder = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32",
                                           cache_dir=tmp_path)
    embedder.embed_documents(["a writer that never searches"])
    assert not (tmp_path / "onnx").exists()  # the graph waits for the first query
    queries = embedder.embed_queries(QUERIES_OF_EVERY_SHAPE)
    assert embedder._onnx_encoder is not None
    assert [p.name.endswith("-fp32.onnx") for p in (tmp_path / "onnx").iterdir()] == [True]
    model = embedder._load()
    expected = model.encode(QUERIES_OF_EVERY_SHAPE, normalize_embeddings=True, batch_size=1)
    # batched with padding, each query still gets the model's own vector, truncation included
    assert np.min(np.sum(np.stack(queries) * expected, axis=1)) > 0.9999
    documents = embedder.embed_documents(QUERIES_OF_EVERY_SHAPE)
    assert np.min(np.sum(np.stack(queries) * documents, axis=1)) > 0.9999


def test_default_queries_run_on_an_int8_graph_built_once_into_the_cache_dir(
    tmp_path: Path,
) -> None:
    quantized = SentenceTransformerEmbedder(default_embedder_path(), cache_dir=tmp_path)
    full = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    text = "Where did Melanie go camping last summer?"
    q8, q32 = quantized.embed_query(text), full.embed_query(text)
    assert quantized._onnx_encoder is not None
    (graph,) = (tmp_path / "onnx").glob("*-int8.onnx")
    assert not np.array_equal(q8, q32)  # really a different model
    assert float(q8 @ q32) > 0.998  # block-wise weights stay close to fp32
    docs = full.embed_documents(["Melanie went camping at the beach", "Caroline paints"])
    assert float(docs[0] @ q8) > float(docs[1] @ q8)
    # a padded batch gives each text the vector it gets alone: no scale spans the batch
    texts = ["hi", "What did Caroline paint after the support group meeting last week?"]
    together = quantized.embed_queries(texts, namespace="batch")
    for vector, alone in zip(together, texts, strict=True):
        assert float(vector @ quantized.embed_query(alone, namespace="alone")) > 0.9999
    # a second embedder reuses the graph instead of building another
    built = graph.stat().st_mtime_ns
    again = SentenceTransformerEmbedder(default_embedder_path(), precision="int8",
                                        cache_dir=tmp_path)
    assert np.allclose(again.embed_query(text), q8, atol=1e-6)
    assert graph.stat().st_mtime_ns == built
    assert list((tmp_path / "onnx").iterdir()) == [graph]  # no build leftovers


def test_a_broken_int8_graph_falls_back_to_torch(tmp_path: Path) -> None:
    SentenceTransformerEmbedder(default_embedder_path(), precision="int8",
                                cache_dir=tmp_path).embed_query("build it")
    (graph,) = (tmp_path / "onnx").glob("*-int8.onnx")
    graph.write_bytes(b"not an onnx graph")
    embedder = SentenceTransformerEmbedder(default_embedder_path(), precision="int8",
                                           cache_dir=tmp_path)
    vector = embedder.embed_query("Where did Melanie go camping last summer?")
    assert embedder._onnx_encoder is None
    full = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    assert float(vector @ full.embed_query("Where did Melanie go camping last summer?")) > 0.99


QUERIES_OF_EVERY_SHAPE = [
    "hi",
    "When did Caroline go to the LGBTQ support group?",
    "Café — naïve façade, 東京; emoji 🙂 and numbers 3.14!",
    " ".join(f"word{i}" for i in range(600)),  # past max_seq_length: truncated like documents
]


def test_the_lean_query_path_is_the_models_own_embedding() -> None:
    embedder = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    embedder.embed_query("load the model")
    assert embedder._query_encoder is not None  # BERT + mean pooling: the fast path is taken
    queries = np.stack([embedder.embed_query(text) for text in QUERIES_OF_EVERY_SHAPE])
    documents = embedder.embed_documents(QUERIES_OF_EVERY_SHAPE)
    assert np.min(np.sum(queries * documents, axis=1)) > 0.9999


def test_a_layout_the_lean_path_does_not_reimplement_is_refused(
    embedder: SentenceTransformerEmbedder,
) -> None:
    embedder.embed_query("load the model")
    model = copy.deepcopy(embedder._model)
    assert LeanBertQueryEncoder.supports(model)
    model[1].pooling_mode_mean_tokens = False  # CLS pooling is another function of the tokens
    model[1].pooling_mode_cls_token = True
    assert not LeanBertQueryEncoder.supports(model)
    assert lean_query_encoder(model) is None


def test_a_lean_path_that_disagrees_with_the_model_is_not_used(
    embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder.embed_query("load the model")
    real_forward = LeanBertQueryEncoder._forward

    def forgets_the_last_layer(self: LeanBertQueryEncoder, ids: torch.Tensor) -> torch.Tensor:
        layers = self._bert.encoder.layer
        self._bert.encoder.layer = layers[:-1]
        try:
            return real_forward(self, ids)
        finally:
            self._bert.encoder.layer = layers

    monkeypatch.setattr(LeanBertQueryEncoder, "_forward", forgets_the_last_layer)
    assert lean_query_encoder(embedder._model) is None

    # bf16: queries on torch (by default they take the ONNX graph, never the lean path)
    fallback = SentenceTransformerEmbedder(default_embedder_path(), precision="bf16")
    vector = fallback.embed_query("Which pet did Caroline adopt?")
    assert fallback._query_encoder is None
    reference = fallback.embed_documents(["Which pet did Caroline adopt?"])[0]
    assert float(vector @ reference) > 0.9999  # the slow path still answers correctly


def test_bf16_vectors_land_where_fp32_vectors_do() -> None:
    fp32 = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    bf16 = SentenceTransformerEmbedder(default_embedder_path(), precision="bf16")
    for text in QUERIES_OF_EVERY_SHAPE:
        low, full = bf16.embed_query(text), fp32.embed_query(text)
        assert not np.array_equal(low, full)  # really other weights
        assert float(low @ full) > 0.999
    assert bf16._query_encoder is not None  # the layout proof on fp32 carries over
    low_docs = bf16.embed_documents(QUERIES_OF_EVERY_SHAPE)
    full_docs = fp32.embed_documents(QUERIES_OF_EVERY_SHAPE)
    assert np.allclose(np.linalg.norm(low_docs, axis=1), 1.0, atol=1e-5)  # unit, like fp32's
    assert np.min(np.sum(low_docs * full_docs, axis=1)) > 0.99
    assert not np.array_equal(low_docs, full_docs)


def test_auto_precision_resolves_to_a_real_one_and_bad_names_are_refused() -> None:
    auto = SentenceTransformerEmbedder(default_embedder_path())
    auto.embed_query("load")
    assert auto.precision in ("fp32", "bf16")
    with pytest.raises(InvalidInputError, match="embedding precision"):
        SentenceTransformerEmbedder(default_embedder_path(), precision="fp8")


DOCUMENTS_OF_EVERY_LENGTH = [
    "ok",
    "Caroline went to the LGBTQ support group yesterday and found it very moving.",
    *QUERIES_OF_EVERY_SHAPE,
    "Melanie: we camped at the beach, roasted marshmallows and told stories all night.",
]


def test_a_packed_batch_gives_each_text_the_vector_it_gets_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = SentenceTransformerEmbedder(default_embedder_path(), precision="fp32")
    embedder.embed_query("load the model")
    encoder = embedder._document_encoder
    assert encoder is not None  # documents take the unpadded path
    alone = np.stack([encoder.encode(text) for text in DOCUMENTS_OF_EVERY_LENGTH])
    monkeypatch.setattr("memsvc.embedding.query_encoder._PACK_SIZE", 3)  # several slices
    packed = encoder.encode_batch(DOCUMENTS_OF_EVERY_LENGTH)
    cosines = np.sum(alone * packed, axis=1) / (
        np.linalg.norm(alone, axis=1) * np.linalg.norm(packed, axis=1))
    assert np.min(cosines) > 0.9999  # padding reached no real token, rows kept their order
    padded = embedder._model.encode(DOCUMENTS_OF_EVERY_LENGTH, normalize_embeddings=True,
                                    show_progress_bar=False)
    assert np.min(np.sum(embedder.embed_documents(DOCUMENTS_OF_EVERY_LENGTH) * padded,
                         axis=1)) > 0.9999  # the model's own padded batch agrees


def test_a_packed_path_that_disagrees_with_the_model_is_not_used(
    embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder.embed_query("load the model")
    real_attention = torch.nn.functional.scaled_dot_product_attention

    def sees_the_padding(*args: torch.Tensor, attn_mask: torch.Tensor | None = None,
                         **kwargs: object) -> torch.Tensor:
        return real_attention(*args)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", sees_the_padding)
    assert lean_query_encoder(embedder._model) is None


def test_loading_the_model_freezes_the_garbage_collector_only_when_asked() -> None:
    # a fresh process: the test process's collector has been frozen by earlier loads
    script = (
        "import gc\n"
        "from memsvc.embedding.embedder import SentenceTransformerEmbedder\n"
        "from memsvc.model.settings import default_embedder_path\n"
        "path = default_embedder_path()\n"
        "SentenceTransformerEmbedder(path).embed_documents(['no freeze'])\n"
        "print(gc.get_freeze_count())\n"
        "SentenceTransformerEmbedder(path, freeze_gc=True).embed_documents(['freeze'])\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=300)
    before, after = (int(line) for line in done.stdout.split())
    assert before == 0 and after > 100_000  # the model's objects, and the imports'
