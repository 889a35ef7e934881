"""Runs a plan's channels and fuses them.

The channels that need no vector (BM25, graph, temporal) start on a pool at once and run
while the query is embedded; the vector channel runs on the calling thread as soon as the
embedding is there, all of them spending their time in SQLite, which releases the GIL. This
works because the query's forward pass uses one torch thread (`memsvc.embedding.embedder.
QUERY_THREADS`): with torch's two-thread OpenMP team on our two cores, any thread beside it
descheduled a worker that the other then waited for at every operation's barrier (an
embedding of 4 ms took 9), which is why the query used to be embedded first, alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from memsvc.retrievers.base import Channel, ChannelQuery
from memsvc.retrievers.fusion import FusedHit, weighted_rrf
from memsvc.retrievers.plan import SearchPlan
from memsvc.storage.base import Hit


@dataclass
class Retrieval:
    hits: list[FusedHit]
    timing_ms: dict[str, float]


class HybridRetriever:
    def __init__(
        self,
        channels: dict[str, Channel],
        embed_query: Callable[[str], np.ndarray],
        *,
        workers: int = 4,
    ) -> None:
        self.channels = channels
        self._embed_query = embed_query
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memsvc-chan")

    def retrieve(self, query: ChannelQuery, plan: SearchPlan) -> Retrieval:
        unknown = set(plan.channels) - set(self.channels)
        if unknown:
            raise ValueError(f"unknown channels in plan: {sorted(unknown)}")
        timing: dict[str, float] = {}

        def run(name: str, query: ChannelQuery) -> tuple[str, list[Hit]]:
            start = time.perf_counter()
            hits = self.channels[name].search(query, plan.channels[name].k)
            timing[name] = (time.perf_counter() - start) * 1000
            return name, hits

        def needs_vector(name: str) -> bool:
            return bool(getattr(self.channels[name], "needs_embedding", False))

        # vector channels first, then the plan's order: the order fusion sums scores in
        order = sorted(plan.channels, key=lambda name: not needs_vector(name))
        vectored = [name for name in order if needs_vector(name)]
        if query.embedding is not None or not vectored:
            # nothing to wait for: the first channel runs on this thread, the rest on the pool
            others = [self._pool.submit(run, name, query) for name in order[1:]]
            pairs = [run(order[0], query)]
        else:
            # The channels that need no vector run on the pool while this thread embeds the
            # query; then the first that needs it runs here, without a hop to another thread.
            others = [self._pool.submit(run, name, query)
                      for name in order if name not in vectored]
            start = time.perf_counter()
            query = replace(query, embedding=self._embed_query(query.text))
            timing["embed"] = (time.perf_counter() - start) * 1000
            others += [self._pool.submit(run, name, query) for name in vectored[1:]]
            pairs = [run(vectored[0], query)]
        found = dict(pairs + [future.result() for future in others])
        rankings = {name: found[name] for name in order}
        weights = {name: spec.weight for name, spec in plan.channels.items()}
        return Retrieval(weighted_rrf(rankings, weights, k=plan.rrf_k), timing)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
