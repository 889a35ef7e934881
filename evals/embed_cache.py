"""An on-disk cache of document vectors for the store benchmark, keyed by corpus index.

At a million memories the real model's embedding is most of the ingest time, and a run over
two backends (or a re-run) would embed the same sentences again. The benchmark's corpus is a
seeded sequence of sentences, so sentence *i* is always the same text: its vector is computed
once, with the real model, and kept in ``<dir>/<key>/chunk-NNNNN.npy`` (`CHUNK` rows each).

- A chunk is written to a temp file and renamed, so a reader never sees half of one; an
  interrupted build resumes at the first missing chunk.
- Two processes may build the same cache (a 100k run while a 1M build is going, or two
  builders to share the work): a chunk is claimed with an exclusive lock file holding the
  builder's pid; the others build the next free chunks, then wait for the claimed ones, and
  take over a lock whose process is gone.
- ``meta.json`` holds the model, the seed, a digest of the first texts (a cache built from
  another corpus is refused) and the embedding rate measured when the chunks were built.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.embedding.embedder import Embedder
from memsvc.serving.vllm.process import pid_alive

CHUNK = 10_000


class VectorCache:
    """Vectors of corpus sentences 0..n-1 for one (model, corpus) `key` under `root`."""

    def __init__(self, root: Path, key: str, dim: int, fingerprint: str) -> None:
        self.dir = Path(root) / key
        self.dim = dim
        self.dir.mkdir(parents=True, exist_ok=True)
        self._meta_path = self.dir / "meta.json"
        meta = self._meta()
        if meta.get("fingerprint", fingerprint) != fingerprint or meta.get("dim", dim) != dim:
            raise ValueError(f"{self.dir} holds vectors of another corpus or model")
        if not meta:
            self._write_meta({"key": key, "dim": dim, "fingerprint": fingerprint,
                              "chunk": CHUNK, "builds": []})
        self._chunks: dict[int, np.ndarray] = {}

    def _meta(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._meta_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _write_meta(self, meta: dict[str, Any]) -> None:
        tmp = self._meta_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self._meta_path)

    def _chunk_path(self, i: int) -> Path:
        return self.dir / f"chunk-{i:05d}.npy"

    def _claim(self, i: int) -> bool:
        """True if this process now owns the building of chunk `i` (lock file created)."""
        lock = self._chunk_path(i).with_suffix(".lock")
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = int(lock.read_text() or "0")
                except (OSError, ValueError):
                    owner = 0
                if owner and pid_alive(owner):
                    return False
                lock.unlink(missing_ok=True)  # its builder is gone: take over
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return True

    def _have(self, i: int, rows: int) -> bool:
        """Chunk `i` is cached with at least `rows` rows (full, or a long enough partial)."""
        if self._chunk_path(i).exists():
            return True
        return any(int(p.stem.rsplit("-", 1)[1]) >= rows
                   for p in self.dir.glob(f"chunk-{i:05d}-*.npy"))

    def _save(self, path: Path, vectors: np.ndarray) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)

    def ensure(self, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray],
               say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        """Make sure the vectors of `texts` (the corpus from index 0) are cached; return
        how many were embedded here, in how many seconds (docs/s measured on those).

        A last, partial chunk is saved as ``chunk-NNNNN-ROWS.npy`` without a lock (a
        concurrent builder at worst computes the same rows, and the rename is atomic)."""
        n_chunks = -(-len(texts) // CHUNK)
        embedded, seconds, waited = 0, 0.0, 0.0
        todo = list(range(n_chunks))
        while todo:
            progressed = False
            for i in list(todo):
                rows = texts[i * CHUNK:(i + 1) * CHUNK]
                full = len(rows) == CHUNK
                if self._have(i, len(rows)):
                    todo.remove(i)
                    progressed = True
                    continue
                if full and not self._claim(i):
                    continue  # another builder has it: do the next one, come back later
                try:
                    if not self._have(i, len(rows)):
                        start = time.perf_counter()
                        vectors = np.asarray(embed(rows), dtype=np.float32)
                        seconds += time.perf_counter() - start
                        embedded += len(rows)
                        self._save(self._chunk_path(i) if full
                                   else self.dir / f"chunk-{i:05d}-{len(rows)}.npy", vectors)
                        say(f"embedded chunk {i + 1}/{n_chunks} ({embedded:,} docs here, "
                            f"{embedded / max(seconds, 1e-9):.0f} docs/s)")
                finally:
                    if full:
                        self._chunk_path(i).with_suffix(".lock").unlink(missing_ok=True)
                todo.remove(i)
                progressed = True
            if todo and not progressed:
                start = time.perf_counter()
                time.sleep(2)
                waited += time.perf_counter() - start
        build = {"docs": embedded, "seconds": round(seconds, 1),
                 "docs_per_s": round(embedded / seconds, 1) if seconds else None,
                 "waited_for_other_builder_s": round(waited, 1),
                 "load_average": [round(x, 2) for x in os.getloadavg()]}
        if embedded:
            meta = self._meta()
            meta.setdefault("builds", []).append(build)
            self._write_meta(meta)
        return build

    def build_history(self) -> list[dict[str, Any]]:
        """Every build that embedded something (docs, seconds, docs/s, load average)."""
        return list(self._meta().get("builds", []))

    def _chunk(self, i: int) -> np.ndarray:
        if i not in self._chunks:
            path = self._chunk_path(i)
            if not path.exists():
                partial = sorted(self.dir.glob(f"chunk-{i:05d}-*.npy"),
                                 key=lambda p: int(p.stem.rsplit("-", 1)[1]))
                if not partial:
                    raise KeyError(f"corpus chunk {i} is not cached in {self.dir}")
                path = partial[-1]  # the longest partial chunk: every shorter one is its prefix
            self._chunks[i] = np.load(path, mmap_mode="r")
        return self._chunks[i]

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """The cached vectors of corpus sentences `indices`, in that order."""
        out = np.empty((len(indices), self.dim), dtype=np.float32)
        for j, index in enumerate(indices):
            out[j] = self._chunk(index // CHUNK)[index % CHUNK]
        return out


def fingerprint(texts: Sequence[str], model: str) -> str:
    """A digest of the model and the corpus's first sentences (they fix the rest: seeded)."""
    digest = hashlib.sha256(model.encode())
    for t in texts[:100]:
        digest.update(t.encode() + b"\0")
    return digest.hexdigest()[:16]


class CachedEmbedder:
    """The real embedder, except that documents announced in `pending` (text → corpus
    index) are served from the cache. Anything else is embedded and counted in `misses`."""

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache = cache
        self.pending: dict[str, int] = {}
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        known = [self.pending.get(t) for t in texts]
        if all(i is not None for i in known):
            return self.cache.rows([i for i in known if i is not None])
        self.misses += sum(i is None for i in known)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)
