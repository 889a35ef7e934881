"""Queries through ONNX Runtime, in int8 (the default) or fp32, from a graph built once locally.

A query embedding is the largest single stage of a search, and a query is a few dozen
tokens, so the forward pass is small matrix products where the framework's own overhead
counts. Torch ran them on an OpenMP team whose workers wait at every one of a forward
pass's ~60 barriers: on a busy machine (another process on one of two cores) a query took
several times longer than on an idle one. ONNX Runtime runs the same fp32 arithmetic on its
own pool, told not to spin (`allow_spinning` 0), with less CPU per query, and it releases
the GIL while it runs. Its vectors are the model's (cosine > 0.9999 on the probes, LoCoMo
recall identical: `evals/results/locomo-*-r4-*.md`).

A short query's forward pass is bound by reading the weights, not by arithmetic: `int8`, the
default, keeps every matrix product's weights in int8 with a scale per block of 32 inputs and
quantizes activations per token (`_quantize_weights`). Its vectors sit within cosine ~0.9995
of fp32's and LoCoMo recall is unchanged, in less time than fp32 (`query-graphs-*.md` and
`locomo-*-r5-*.md` in evals/results, DEVELOPERS.md "Embedder"); `MEMSVC_EMBED_PRECISION=fp32`
keeps the fp32 graph. (A per-channel dynamically quantized graph, one activation scale per
layer input, was tried before: cosine ~0.99, and it cost recall.)

The graph is made from the sentence-transformer already on disk (its BERT exported with
`torch.onnx.export`, mean pooling inside the graph), never downloaded, and cached under the
cache dir by a key of the model folder's files and the exporting versions: built once per
machine and model, in a scratch folder and then renamed, so two processes building at once
both end with a whole file. The graph is checked against the model on probe texts at every
load; anything unexpected leaves queries on the torch path. Documents are not encoded here:
a session's turns are encoded as one packed batch, which the torch path does without padding
(`query_encoder.py`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.embedding.query_encoder import PROBES, LeanBertQueryEncoder

log = logging.getLogger(__name__)

# The lowest cosine to the model's own vectors on the probe texts a graph may show: fp32 is
# the same arithmetic in another order; int8 keeps the probes above ~0.999, well below means
# the export or the quantizer went wrong. Either way the torch path is used instead.
MIN_PROBE_COSINE = {"fp32": 0.9999, "int8": 0.998}
# bump when the exported graph changes, so caches built by an older memsvc are not reused
_GRAPH_VERSION = "3"
# inputs per int8 weight scale (`_quantize_weights`)
_INT8_BLOCK = 32


class OnnxQueryEncoder:
    """Encodes queries as mean-pooled BERT vectors through an ONNX Runtime session."""

    def __init__(self, session: Any, tokenizer: Any, max_length: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._max_length = max_length

    def encode(self, text: str) -> np.ndarray:
        return self._run([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Rows in the order of `texts`, from one padded run: padding is masked out of
        attention and pooling, and the int8 graph scales each token's activations on their
        own, so each text gets the vector it gets alone."""
        return self._run(texts)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self._tokenizer(
            list(texts), truncation=True, max_length=self._max_length, padding=True,
            return_tensors="np",
        )
        (pooled,) = self._session.run(None, {
            "input_ids": tokens["input_ids"].astype(np.int64),
            "attention_mask": tokens["attention_mask"].astype(np.int64),
        })
        return np.asarray(pooled, dtype=np.float32)


def onnx_query_encoder(model: Any, model_path: str, cache_dir: Path, *, weights: str,
                       threads: int = 0) -> OnnxQueryEncoder | None:
    """The encoder of `model` (a sentence-transformer loaded from `model_path`) with `weights`
    "fp32" or "int8", its graph built into `cache_dir` if it is not there yet; None, with a
    warning, when the model is not the BERT + mean pooling layout, ONNX Runtime is missing,
    or the result strays from the model on the probes (the caller keeps its torch path)."""
    if not LeanBertQueryEncoder.supports(model):
        return None
    try:
        import onnxruntime

        graph = cache_dir / f"{_cache_key(model_path)}-{weights}.onnx"
        if not graph.exists():
            _build(model, graph, quantize=weights == "int8")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice, the cores
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle pool threads sleep instead of spinning: right after the query, the search's
        # SQLite channels need those cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )
        encoder = OnnxQueryEncoder(session, model.tokenizer, int(model.max_seq_length or 512))
        cosine = _probe_cosine(model, encoder)
    except Exception as error:  # never worse than the torch path
        log.warning("%s ONNX query encoder unavailable (%s): queries use torch", weights, error)
        return None
    if cosine < MIN_PROBE_COSINE[weights]:
        log.warning("%s ONNX query encoder strays from the model (cos %.5f on the probes): "
                    "queries use torch", weights, cosine)
        return None
    return encoder


def _cache_key(model_path: str) -> str:
    """A name for the graph of the model in `model_path`: its files (names, sizes, times)
    and the versions that export and quantize it."""
    import onnxruntime
    import torch

    digest = hashlib.sha256(
        f"{_GRAPH_VERSION}|{torch.__version__}|{onnxruntime.__version__}".encode())
    root = Path(model_path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"|{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _build(model: Any, graph: Path, *, quantize: bool) -> None:
    """Export `model`'s BERT with mean pooling to ONNX as `graph`, quantized if asked."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    graph.parent.mkdir(parents=True, exist_ok=True)
    sample = model.tokenizer(["a query to trace"], return_tensors="pt")
    dynamic = {"input_ids": {0: "batch", 1: "tokens"},
               "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}}
    with tempfile.TemporaryDirectory(dir=graph.parent, prefix=".build-") as scratch:
        exported, quantized = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on BERT's shape arithmetic
            torch.onnx.export(
                MeanPooled(model[0].auto_model).eval(),
                (sample["input_ids"], sample["attention_mask"]), str(exported),
                input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                dynamic_axes=dynamic, opset_version=17, dynamo=False,
            )
        if quantize:
            _quantize_weights(exported, quantized)
            exported = quantized
        os.replace(exported, graph)


def _quantize_weights(source: Path, target: Path) -> None:
    """`source` with every matrix product's weights in int8, one scale per block of
    `_INT8_BLOCK` inputs (ONNX Runtime's MatMulNBits), and its activations quantized per
    token and block as the product runs (`accuracy_level` 4: int8 arithmetic). A short
    query's forward pass mostly reads weights, so a quarter of the bytes is most of the
    gain; blocks this small keep its vectors at cosine ~0.9995 of fp32's, where one int8
    scale per layer input (dynamic quantization) gave ~0.99 and cost recall; and no row's
    scale depends on another text of the batch."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8, block_size=_INT8_BLOCK,
                                     is_symmetric=True, accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


def _probe_cosine(model: Any, encoder: OnnxQueryEncoder) -> float:
    """The lowest cosine between the model's own vectors of the probes and the encoder's."""
    expected = model.encode(list(PROBES), convert_to_numpy=True, show_progress_bar=False,
                            batch_size=1, normalize_embeddings=True)
    got = encoder.encode_batch(PROBES)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float(np.min(np.sum(got * expected, axis=1)))
