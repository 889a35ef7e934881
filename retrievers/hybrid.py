"""Runs a plan's channels and fuses them.

The channels that need no vector (BM25, graph, temporal) start first, on a pool, and the
query is embedded meanwhile (with its topic, in one batch, when the plan has the topic
channel and the query names a hub: `retrievers.topic`); then the channels that search by
vector run on the calling thread. The overlap is real because both sides leave the GIL for
most of their time: SQLite while it steps, ONNX Runtime for a query's whole forward pass
(`memsvc.embedding.onnx_encoder`). It was not with torch as the query encoder: its OpenMP
team shared the two cores with the SQLite threads and each of a forward pass's ~60 parallel
regions waited for a descheduled worker, and between those tensor calls the encoder needed
the GIL the channels held. On the LoCoMo application mode, overlapping cut the search's
median by about a quarter (`evals/results/locomo-app-*-r4*.md`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from memsvc.retrievers.base import Channel, ChannelQuery
from memsvc.retrievers.fusion import FusedHit, weighted_rrf
from memsvc.retrievers.plan import SearchPlan
from memsvc.storage.base import Hit

# numbers the retrievals of the process (`ChannelQuery.search`): unique across retrievers,
# since channels (and what they share per search) may be shared by several
_SEARCHES = itertools.count(1)


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
        query = replace(query, search=next(_SEARCHES))

        def run(name: str, query: ChannelQuery) -> tuple[str, list[Hit]]:
            start = time.perf_counter()
            hits = self.channels[name].search(query, plan.channels[name].k)
            timing[name] = (time.perf_counter() - start) * 1000
            return name, hits

        # The channels that read no vector search while the query is embedded, on the pool;
        # the vector channels then run on the calling thread, which holds the vectors.
        early = [self._pool.submit(run, name, query)
                 for name in plan.channels if not self._reads_vectors(name)]
        start = time.perf_counter()
        embedded, question_share = self._embedded(query, plan)
        if embedded is not query:
            timing["embed"] = (time.perf_counter() - start) * 1000
        pairs = [run(name, embedded) for name in plan.channels if self._reads_vectors(name)]
        pairs += [future.result() for future in early]
        rankings = dict(pairs)
        weights = {
            name: spec.weight * (question_share if getattr(self.channels[name],
                                                           "needs_embedding", False) else 1.0)
            for name, spec in plan.channels.items()
        }
        return Retrieval(weighted_rrf(rankings, weights, k=plan.rrf_k), timing)

    def _reads_vectors(self, name: str) -> bool:
        channel = self.channels[name]
        return bool(getattr(channel, "needs_embedding", False)
                    or getattr(channel, "needs_topic", False))

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
