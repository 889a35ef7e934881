"""Graph channel: entities named in the query → their neighbourhood → the memories attached.

Questions often name who or what they are about ("What did Caroline's guinea pig eat?")
while the memory that answers them shares few words with the question. The graph finds the
entities the query names — by exact name, by alias, or fuzzily for misspellings — spreads
from them with a personalized PageRank over the entity graph (edges: two entities named by
the same memory, or a subject–predicate–object relation), and returns the memories linked to
the best-scored entities. A memory that names several of the query's entities ranks first.

Besides names, every memory is linked to its concepts (`memsvc.text.concepts`: content words,
stored as "~stem"; an episode also to those of the turn it answers), so "Where has Melanie
camped?" reaches the camping turns of every session, and through the concepts they share,
their neighbours. A concept is found by its stem and never fuzzily, and seeds a 1-hop walk.

The graph of a scope is built lazily from the store's link tables and cached; it is rebuilt
when the store's graph version for the scope changes (every link write bumps it), so a cache
is never stale, even when another process wrote.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations

import networkx as nx
import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.once import OnceCache
from memsvc.storage.base import GraphReader, Hit
from memsvc.storage.graph_model import GraphData, concept_name, normalize_entity
from memsvc.text.concepts import concept_of
from memsvc.text.stopwords import STOPWORDS

_TOKEN = re.compile(r"[^\W_][\w'’\-]*", re.UNICODE)
_MAX_NGRAM = 4
_MAX_QUERY_TOKENS = 256  # a pasted document as a query must not cost a fuzzy scan per word
_MAX_PAIR_ENTITIES = 12  # a memory naming more adds no co-occurrence edges (a list, not a link)
_MAX_SUBGRAPH = 2000  # PageRank runs on the seeds' 2-hop neighbourhood, at most this many nodes
_DENSE_WALK = 256  # up to this many nodes, its steps are products with a dense matrix
_HUB_SHARE = 0.1  # an entity on more than this share of the linked memories is a hub...
_HUB_MIN = 20  # ...once it is on more than this many
# The questions whose matches a graph keeps, and the searches whose graph the channel keeps:
# enough for the searches in flight (the topic and graph channels of one search share them),
# not a cache of everything ever asked.
_IN_FLIGHT = 16

Match = tuple[str, float, tuple[int, int]]  # node, strength, character span in the text


@dataclass
class EntityGraph:
    """One scope's entities and their weighted links, with name and alias indexes.

    A scope's graph is rebuilt at the first search after every write to its links, so a
    search walks plain structures made in one pass from the summed edge weights: adjacency
    in compressed rows and edge arrays for the PageRank (`connect`). `graph` is the same
    graph as networkx, made on first use, for inspecting and analysing it: built edge by
    edge through networkx, a rebuild cost several times more.
    """

    nodes: dict[str, str] = field(default_factory=dict)  # node -> its display name
    weights: dict[tuple[str, str], float] = field(default_factory=dict)  # (a, b), a < b
    index: dict[str, str] = field(default_factory=dict)  # name or alias norm -> node
    memories: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    hubs: frozenset[str] = frozenset()  # entities attached to a large share of the memories
    linked_memories: int = 0
    concepts: set[str] = field(default_factory=set)  # the concept nodes (`text.concepts`)
    names: frozenset[str] = frozenset()  # index keys of names and aliases (fuzzy targets)
    # made by `connect`: node positions, the edges (both directions) grouped by source node
    # as their ends and weights, where each node's edges start in them (compressed rows:
    # node i's are [_starts[i], _starts[i + 1])), and each node's weighted degree
    _position: dict[str, int] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)  # by position
    _edges: tuple[np.ndarray, np.ndarray] | None = None
    _starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _degree: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _by_length: dict[int, list[str]] | None = None  # `names` by length, sorted, for `_fuzzy`
    _seen: OnceCache[str, tuple[Match, ...]] = field(
        default_factory=lambda: OnceCache(_IN_FLIGHT), repr=False, compare=False)

    @cached_property
    def graph(self) -> nx.Graph:
        """The graph as networkx (node attribute `name`, edge attribute `weight`)."""
        graph = nx.Graph()
        graph.add_nodes_from((node, {"name": name}) for node, name in self.nodes.items())
        graph.add_weighted_edges_from((a, b, w) for (a, b), w in self.weights.items())
        return graph

    @classmethod
    def build(cls, data: GraphData) -> EntityGraph:
        g = cls()
        node_of: dict[int, str] = {}
        # Nodes are normalised canonical names, so the same person seen under two agents of
        # one user is one node. Canonical names win over aliases in the index.
        for pk, (name, _aliases) in sorted(data.entities.items()):
            node = normalize_entity(name)
            if not node:
                continue
            node_of[pk] = node
            g.nodes[node] = name
            g.index[node] = node
        for pk, (_name, aliases) in sorted(data.entities.items()):
            for alias in aliases:
                key = normalize_entity(alias)
                if key and pk in node_of:
                    g.index.setdefault(key, node_of[pk])
        # A concept ("~paint") is found by its stem; a name or alias spelled alike wins.
        g.names = frozenset(g.index)
        for node in node_of.values():
            concept = concept_name(node)
            if concept is not None:
                g.concepts.add(node)
                g.index.setdefault(concept, node)
        by_memory: dict[str, set[str]] = defaultdict(set)
        for memory_id, pk in data.links:
            node = node_of.get(pk)
            if node is not None:
                by_memory[memory_id].add(node)
                g.memories[node].add(memory_id)
        g.linked_memories = len(by_memory)
        limit = max(_HUB_MIN, _HUB_SHARE * len(by_memory))
        g.hubs = frozenset(n for n, attached in g.memories.items() if len(attached) > limit)
        pairs: Counter[tuple[str, str]] = Counter()
        for nodes in by_memory.values():
            if 1 < len(nodes) <= _MAX_PAIR_ENTITIES:
                pairs.update(combinations(sorted(nodes), 2))  # counted in C
        weights: dict[tuple[str, str], float] = defaultdict(float, pairs)
        for src, dst, _predicate in data.relations:
            s, o = node_of.get(src), node_of.get(dst)
            if s and o and s != o:
                # a stated relation says more than co-occurrence
                weights[(s, o) if s < o else (o, s)] += 2.0
        g.connect(weights)
        return g

    def connect(self, weights: Mapping[tuple[str, str], float]) -> None:
        """Take `weights` (each pair once, summed) as the edges, and make what a search
        walks from them: adjacency by node position and the PageRank's edge arrays."""
        self.weights = dict(weights)
        for pair in self.weights:
            for node in pair:
                self.nodes.setdefault(node, node)
        self._position = {node: i for i, node in enumerate(self.nodes)}
        self._names = list(self._position)
        count = len(self.weights)
        first = np.fromiter((self._position[a] for a, _ in self.weights), dtype=np.int64,
                            count=count)
        second = np.fromiter((self._position[b] for _, b in self.weights), dtype=np.int64,
                             count=count)
        weight = np.fromiter(self.weights.values(), dtype=np.float64, count=count)
        src, dst = np.concatenate([first, second]), np.concatenate([second, first])
        both = np.concatenate([weight, weight])
        order = np.argsort(src, kind="stable")
        self._edges = (dst[order], both[order])
        n = len(self._position)
        self._starts = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
        self._degree = np.bincount(src, weights=both, minlength=n)
        self.__dict__.pop("graph", None)  # a networkx copy made before is stale

    def neighbours(self, node: str) -> list[str]:
        """The nodes `node` shares an edge with."""
        at = self._position.get(node)
        if at is None or self._edges is None:
            return []
        ends = self._edges[0][self._starts[at]:self._starts[at + 1]].tolist()
        return [self._names[j] for j in ends]

    def degree(self, node: str) -> float:
        """The summed weight of `node`'s edges."""
        at = self._position.get(node)
        return 0.0 if at is None else float(self._degree[at])

    # -- query side -----------------------------------------------------------------------

    def match(self, text: str) -> dict[str, float]:
        """The entities `text` names: node -> match strength (1 exact/alias, less if fuzzy).

        Longest n-grams are tried first, and words already used by a match are not reused,
        so "Oscar the guinea pig" is one alias hit, not also "Oscar" and "pig".
        """
        seeds: dict[str, float] = {}
        for node, strength, _span in self._matches(text):
            seeds[node] = max(seeds.get(node, 0.0), strength)
        return seeds

    def without_hubs(self, text: str) -> str:
        """`text` with the words that name a hub (and a possessive 's after them) removed:
        what a question asks about, apart from whom (see `retrievers.topic`)."""
        spans = sorted(span for node, _s, span in self._matches(text)
                       if node in self.hubs and node not in self.concepts)
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts.append(text[last:start])
            last = end + (2 if text[end:end + 2] in ("'s", "’s") else 0)
        parts.append(text[last:])
        return " ".join("".join(parts).split())

    def _matches(self, text: str) -> tuple[Match, ...]:
        """(node, strength, character span) of each entity `text` names (see `match`);
        worked out once per text, though the topic and graph channels both ask."""
        return self._seen.get(text, lambda: self._find_matches(text))

    def _find_matches(self, text: str) -> tuple[Match, ...]:
        tokens = [(m.group(0), m.start()) for m in _TOKEN.finditer(text)][:_MAX_QUERY_TOKENS]
        used = [False] * len(tokens)
        found: list[Match] = []
        for n in range(min(_MAX_NGRAM, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(used[i : i + n]):
                    continue
                words = [t for t, _ in tokens[i : i + n]]
                key = normalize_entity(" ".join(words))
                if not _worth_matching(key):
                    continue
                node = self.index.get(key)
                if node is None and n == 1:
                    concept = concept_of(words[0])
                    node = self.index.get(concept) if concept else None
                strength = 1.0
                if node is None and _looks_like_name(words, first=(i == 0)):
                    node, strength = self._fuzzy(key)
                if node is not None:
                    last_word, last_start = tokens[i + n - 1]
                    found.append((node, strength, (tokens[i][1], last_start + len(last_word))))
                    used[i : i + n] = [True] * n
        return tuple(found)

    def _fuzzy(self, key: str) -> tuple[str | None, float]:
        """The closest known name within a small edit distance: one edit from 5 characters
        on, two from 8 (so "Oskar" finds Oscar, "Carolin" Caroline, but "Mark" not Mary)."""
        allowed = 2 if len(key) >= 8 else 1 if len(key) >= 5 else 0
        if not allowed or not self.names:
            return None, 0.0
        if self._by_length is None:
            by_length: dict[int, list[str]] = defaultdict(list)
            for name in sorted(self.names):
                by_length[len(name)].append(name)
            self._by_length = dict(by_length)
        # k edits change the length by at most k: only names that long can be close enough
        candidates = [name for size in range(len(key) - allowed, len(key) + allowed + 1)
                      for name in self._by_length.get(size, ())]
        found = process.extractOne(
            key, candidates, scorer=Levenshtein.distance, score_cutoff=allowed
        )
        if found is None:
            return None, 0.0
        alias, distance, _ = found
        return self.index[alias], 0.8 - 0.1 * float(distance)

    def spread(self, seeds: dict[str, float]) -> dict[str, float]:
        """Personalized PageRank from the seeds over their 2-hop neighbourhood, 1-hop when a
        seed is a concept: a concept co-occurs with so many words that two hops reach most
        of the graph, which costs a PageRank over all of it and says nothing specific."""
        nodes = set(seeds)
        frontier = set(seeds)
        for _ in range(1 if self.concepts & seeds.keys() else 2):
            nxt: set[str] = set()
            for node in frontier:
                nxt.update(self.neighbours(node))
            nxt -= nodes | self.hubs  # a walk through a hub would reach everything
            if len(nodes) + len(nxt) > _MAX_SUBGRAPH:
                nxt = set(sorted(nxt, key=lambda n: -self.degree(n))[
                    : max(0, _MAX_SUBGRAPH - len(nodes))
                ])
            nodes |= nxt
            frontier = nxt
        return self._pagerank(sorted(nodes), seeds)

    def _pagerank(self, nodes: list[str], seeds: dict[str, float]) -> dict[str, float]:
        """networkx's personalized PageRank (alpha 0.75, dangling nodes jump back to the
        seeds), on the subgraph of `nodes`, over the edge arrays `connect` keeps: a
        networkx subgraph view converted per query costs more than the walk itself."""
        if self._edges is None:
            self.connect({})
        assert self._edges is not None
        position, starts, (dst, weight) = self._position, self._starts, self._edges
        n = len(nodes)
        rows = np.fromiter((position[node] for node in nodes), dtype=np.int64, count=n)
        local = np.full(len(position), -1, dtype=np.int64)
        local[rows] = np.arange(n)
        # the edges leaving the subgraph's nodes (their rows of the CSR arrays), then those
        # that stay inside it: the work grows with the subgraph, not with the whole graph
        first, count = starts[rows], starts[rows + 1] - starts[rows]
        edges = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
        d_all = local[dst[edges]]
        keep = d_all >= 0
        if not keep.any():
            total = sum(seeds.values())
            return {node: strength / total for node, strength in seeds.items()}
        s = np.repeat(np.arange(n), count)[keep]
        d, w = d_all[keep], weight[edges[keep]]
        out = np.bincount(s, weights=w, minlength=n)
        dangling = out == 0
        p = np.array([seeds.get(node, 0.0) for node in nodes])
        p /= p.sum()
        x = np.full(n, 1.0 / n)
        if n <= _DENSE_WALK:
            # The same step as one matrix-vector product: x' = A x, A = 0.75 (M + p dᵀ) +
            # 0.25 p 1ᵀ (M: the walk's transitions, d: the dangling nodes; x sums to 1).
            # A small subgraph's step is a dozen numpy calls of overhead otherwise.
            moves = np.bincount(d * n + s, weights=w / out[s], minlength=n * n).reshape(n, n)
            step = 0.75 * (moves + np.outer(p, dangling)) + 0.25 * p[:, None]
            for _ in range(100):
                last, x = x, step @ x
                if np.abs(x - last).sum() < n * 1e-6:
                    break
            return dict(zip(nodes, x.tolist(), strict=True))
        for _ in range(100):
            last = x
            share = np.divide(x, out, out=np.zeros(n), where=~dangling)
            x = 0.75 * (np.bincount(d, weights=share[s] * w, minlength=n)
                        + x[dangling].sum() * p) + 0.25 * p
            if np.abs(x - last).sum() < n * 1e-6:
                break
        return dict(zip(nodes, x.tolist(), strict=True))


def _worth_matching(key: str) -> bool:
    return len(key) >= 2 and key not in STOPWORDS and not key.isdigit()


def _looks_like_name(words: list[str], *, first: bool) -> bool:
    """Fuzzy matching only for capitalised words (not just the sentence's first word),
    so ordinary words never fuzzily turn into someone's name."""
    if not words[0][:1].isupper():
        return False
    return not (first and len(words) == 1)


class GraphChannel:
    """The `graph` channel. Thread-safe; one cached graph per (user, agent, session) scope."""

    name = "graph"

    def __init__(self, store: GraphReader, *, cache_size: int = 64) -> None:
        self._store = store
        self._cache: OrderedDict[tuple[str | None, ...], tuple[int, EntityGraph]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        # One rebuild at a time: after a write, searches of the scope that arrive together
        # (replies to several users of one agent, or a search without a number) all found
        # the cache stale and built the same graph side by side, each slowing the others
        # (building is Python, one thread at a time).
        self._build_lock = threading.Lock()
        # the graph each recent search got: the topic and graph channels of one search ask
        # the store for the version once, and see the same graph
        self._of_search: OnceCache[tuple[int, tuple[str | None, ...]], EntityGraph] = (
            OnceCache(_IN_FLIGHT))

    def graph_for(self, query: ChannelQuery) -> EntityGraph:
        """The scope's graph, rebuilt only when the store says its links changed; checked
        once per search (`ChannelQuery.search`)."""
        if query.search is None:
            return self._current(query)
        scope = query.visibility.scope
        key = (query.search, (scope.user_id, scope.agent_id, scope.session_id))
        return self._of_search.get(key, lambda: self._current(query))

    def _current(self, query: ChannelQuery) -> EntityGraph:
        scope = query.visibility.scope
        key = (scope.user_id, scope.agent_id, scope.session_id)
        version = self._store.graph_version(scope)
        cached = self._cached(key, version)
        if cached is not None:
            return cached
        with self._build_lock:
            cached = self._cached(key, version)  # built while this thread waited
            if cached is not None:
                return cached
            graph = EntityGraph.build(self._store.graph_data(scope))
            with self._lock:
                self._cache[key] = (version, graph)
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return graph

    def _cached(self, key: tuple[str | None, ...], version: int) -> EntityGraph | None:
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or cached[0] != version:
                return None
            self._cache.move_to_end(key)
            return cached[1]

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        graph = self.graph_for(query)
        seeds = graph.match(query.text)
        # A hub (the speaker of half the turns) names no particular memory: it only breaks
        # ties between memories a specific entity found. Hubs alone leave the channel silent.
        specific = {n: s for n, s in seeds.items() if n not in graph.hubs}
        if not specific:
            return []
        ranks = graph.spread(specific)
        total_memories = max(1, graph.linked_memories)
        scores: dict[str, float] = defaultdict(float)
        named: dict[str, float] = defaultdict(float)
        # Only the best-ranked entities contribute, each weighted by how specific it is.
        for node, rank in sorted(ranks.items(), key=lambda kv: (-kv[1], kv[0]))[:50]:
            attached = graph.memories.get(node, set())
            if not attached:
                continue
            idf = math.log(1.0 + total_memories / len(attached))
            for memory_id in attached:
                scores[memory_id] += rank * idf
                if node in specific:
                    named[memory_id] += 1.0
        for hub in seeds.keys() - specific.keys():
            for memory_id in graph.memories.get(hub, set()) & scores.keys():
                named[memory_id] += 0.5
        ordered = sorted(scores, key=lambda m: (-named[m], -scores[m], m))
        top = self._first_visible(query, ordered[: max(k * 4, 200)], k)
        return [Hit(m, named[m] + scores[m]) for m in top]

    def _first_visible(self, query: ChannelQuery, ordered: list[str], k: int) -> list[str]:
        """The first `k` of `ordered` the query may see. Most linked memories are visible,
        so the best 2k are asked about first, and the rest only if that is not enough."""
        top: list[str] = []
        start, size = 0, 2 * k
        while start < len(ordered) and len(top) < k:
            batch = ordered[start : start + size]
            visible = self._store.visible_ids(query.visibility, batch)
            top += [m for m in batch if m in visible]
            start, size = start + len(batch), len(ordered)
        return top[:k]
