"""Runs a plan's channels and fuses them.

Channels run concurrently: the vector channel spends its time in the embedding model (torch
releases the GIL) while BM25 runs in SQLite (which releases it too), so the two overlap.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from memsvc.retrievers.base import Channel, ChannelQuery
from memsvc.retrievers.fusion import FusedHit, weighted_rrf
from memsvc.retrievers.plan import SearchPlan
from memsvc.storage.base import Hit


@dataclass
class Retrieval:
    hits: list[FusedHit]
    timing_ms: dict[str, float]


class HybridRetriever:
    def __init__(self, channels: dict[str, Channel], *, workers: int = 4) -> None:
        self.channels = channels
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memsvc-chan")

    def retrieve(self, query: ChannelQuery, plan: SearchPlan) -> Retrieval:
        unknown = set(plan.channels) - set(self.channels)
        if unknown:
            raise ValueError(f"unknown channels in plan: {sorted(unknown)}")
        timing: dict[str, float] = {}

        def run(name: str) -> tuple[str, list[Hit]]:
            start = time.perf_counter()
            hits = self.channels[name].search(query, plan.channels[name].k)
            timing[name] = (time.perf_counter() - start) * 1000
            return name, hits

        names = list(plan.channels)
        # one channel runs inline: a thread hop would only add latency
        pairs = [run(names[0])] if len(names) == 1 else self._pool.map(run, names)
        rankings = dict(pairs)
        weights = {name: spec.weight for name, spec in plan.channels.items()}
        return Retrieval(weighted_rrf(rankings, weights, k=plan.rrf_k), timing)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
