"""Runs a plan's channels and fuses them.

The query is embedded first (with its topic, in one batch, when the plan has the topic
channel and the query names a hub: `retrievers.topic`), and only then do the channels fan
out: the vector channel on the calling thread (it is the slowest), the others on a pool, all
of them spending their time in SQLite, which releases the GIL. Embedding inside the vector
channel, beside the SQLite channels, looked like overlap but was not: torch's two OpenMP
threads then share two cores with the SQLite threads and every parallel region waits for a
descheduled worker (an embedding of 4 ms took 9). Embedding with one thread while the other
channels run fared no better (8 ms): between its ~60 tensor calls the encoder needs the GIL
the channels hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
        embed_queries: Callable[[Sequence[str]], list[np.ndarray]] | None = None,
    ) -> None:
        self.channels = channels
        self._embed_query = embed_query
        # several texts in one forward pass (memsvc.embedding.queries_embedding), if given
        self._embed_queries = embed_queries or (lambda texts: [embed_query(t) for t in texts])
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="memsvc-chan")

    def retrieve(self, query: ChannelQuery, plan: SearchPlan) -> Retrieval:
        unknown = set(plan.channels) - set(self.channels)
        if unknown:
            raise ValueError(f"unknown channels in plan: {sorted(unknown)}")
        timing: dict[str, float] = {}
        start = time.perf_counter()
        embedded, question_share = self._embedded(query, plan)
        if embedded is not query:
            timing["embed"] = (time.perf_counter() - start) * 1000
            query = embedded

        def run(name: str) -> tuple[str, list[Hit]]:
            start = time.perf_counter()
            hits = self.channels[name].search(query, plan.channels[name].k)
            timing[name] = (time.perf_counter() - start) * 1000
            return name, hits

        # The slowest channel (the vector KNN, when the plan has it) runs on the calling
        # thread and the others on the pool: waking a pool thread for the critical path would
        # only add to it.
        names = sorted(
            plan.channels, key=lambda n: not getattr(self.channels[n], "needs_embedding", False)
        )
        others = [self._pool.submit(run, name) for name in names[1:]]
        pairs = [run(names[0])] + [future.result() for future in others]
        rankings = dict(pairs)
        weights = {
            name: spec.weight * (question_share if getattr(self.channels[name],
                                                           "needs_embedding", False) else 1.0)
            for name, spec in plan.channels.items()
        }
        return Retrieval(weighted_rrf(rankings, weights, k=plan.rrf_k), timing)

    def _embedded(self, query: ChannelQuery, plan: SearchPlan) -> tuple[ChannelQuery, float]:
        """`query` with the vectors the plan's channels read: the question's, and its
        topic's when a channel wants one and the question has one (`retrievers.topic`),
        embedded together in one batch; and the share of their weight the channels
        searching the question's vector keep then (the topic channel's `question_share`;
        1 without a topic)."""
        texts: list[str] = []
        if query.embedding is None and any(
            getattr(self.channels[name], "needs_embedding", False) for name in plan.channels
        ):
            texts.append(query.text)
        share, topic = 1.0, None
        for name in sorted(plan.channels):
            channel = self.channels[name]
            if getattr(channel, "needs_topic", False) and plan.channels[name].weight > 0:
                if query.topic_embedding is None:
                    topic = channel.topic_of(query)
                if query.topic_embedding is not None or topic is not None:
                    share = float(getattr(channel, "question_share", 1.0))
                break
        if topic is not None:
            texts.append(topic)
        if not texts:
            return query, share
        vectors = dict(zip(texts, self._embed_queries(texts), strict=True))
        return replace(
            query,
            embedding=vectors.get(query.text, query.embedding),
            topic_embedding=query.topic_embedding if topic is None else vectors[topic],
        ), share

    def close(self) -> None:
        self._pool.shutdown(wait=False)
