"""The graph channel: entities named in the query → neighbourhood → attached memories."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc import Memory
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, Scope
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.graph import EntityGraph, GraphChannel
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.sqlite import SQLiteStore

NOW = datetime(2024, 3, 1, tzinfo=UTC)
U1 = Scope(user_id="u1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.db", embedding_dim=4)
    yield s
    s.close()


def put(store: SQLiteStore, text: str, entities: list[str], scope: Scope = U1,
        **extra: Any) -> MemoryRecord:
    rec = MemoryRecord(
        id=new_id(), scope=scope, kind=MemoryKind.FACT, text=text, entities=entities,
        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text), **extra,
    )
    store.apply(WriteBatch(inserts=[(rec, np.ones(4, dtype=np.float32))]))
    return rec


def ask(channel: GraphChannel, text: str, scope: Scope = U1, k: int = 10,
        **visibility: Any) -> list[str]:
    query = ChannelQuery(text, VisibilityQuery(scope=scope, **visibility))
    return [h.memory_id for h in channel.search(query, k)]


@pytest.fixture
def family(store: SQLiteStore) -> dict[str, MemoryRecord]:
    return {
        "adopt": put(store, "Caroline adopted a guinea pig", ["Caroline", "Oscar"],
                     metadata={"aliases": {"Caroline's guinea pig": "Oscar"}}),
        "hay": put(store, "Oscar eats hay every morning", ["Oscar"]),
        "vet": put(store, "Dr Lee is the vet who treats Oscar", ["Dr Lee", "Oscar"]),
        "paint": put(store, "Melanie paints sunsets", ["Melanie"]),
        "ana": put(store, "Melanie's sister Ana lives in Paris", ["Melanie", "Ana", "Paris"]),
    }


def test_exact_name_returns_attached_memories_and_nothing_unrelated(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    hits = ask(GraphChannel(store), "What does Oscar like?")
    assert set(hits[:3]) == {family["adopt"].id, family["hay"].id, family["vet"].id}
    assert family["paint"].id not in hits


def test_memory_naming_several_query_entities_ranks_first(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    hits = ask(GraphChannel(store), "Did Caroline get Oscar from a shelter?")
    assert hits[0] == family["adopt"].id


def test_alias_and_possessive_and_typo_find_the_entity(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    channel = GraphChannel(store)
    assert family["hay"].id in ask(channel, "what does caroline's guinea pig eat")
    assert ask(channel, "Where does Melanie's sister live?")[0] == family["ana"].id
    assert family["hay"].id in ask(channel, "Is Oskar healthy?")  # fuzzy: Oskar → Oscar


def test_ordinary_words_are_not_fuzzily_read_as_names(store: SQLiteStore) -> None:
    put(store, "Anna bakes bread", ["Anna"])
    channel = GraphChannel(store)
    assert ask(channel, "what about the banana split?") == []
    assert ask(channel, "how are you today") == []


def test_neighbourhood_reaches_memories_that_do_not_name_the_query_entity(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    # "Caroline" is never in the vet memory, but Caroline—Oscar—Dr Lee connects them.
    hits = ask(GraphChannel(store), "Who looks after Caroline's pets?", k=10)
    assert family["vet"].id in hits
    assert family["paint"].id not in hits  # Melanie is not connected to Caroline
    assert hits.index(family["adopt"].id) < hits.index(family["vet"].id)


def test_relations_join_entities(store: SQLiteStore) -> None:
    put(store, "Jon works at Acme", ["Jon", "Acme"], subject="Jon", predicate="works_at",
        object="Acme")
    data = store.graph_data(U1)
    graph = EntityGraph.build(data)
    assert graph.graph["jon"]["acme"]["weight"] == pytest.approx(3.0)  # co-occurrence + relation


def test_the_walks_edge_arrays_are_the_built_graphs_edges(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    put(store, "Jon works at Acme with Caroline", ["Jon", "Acme", "Caroline"], subject="Jon",
        predicate="works_at", object="Acme")
    graph = EntityGraph.build(store.graph_data(U1))
    assert graph._edges is not None
    dst, weight = graph._edges
    src = np.repeat(np.arange(len(graph._names)), np.diff(graph._starts))  # the rows' sources
    name = graph._names
    arrays = {(name[a], name[b]): w for a, b, w in zip(src.tolist(), dst.tolist(),
                                                        weight.tolist(), strict=True)}
    expected = {(a, b): w for a, b, w in graph.graph.edges(data="weight")}
    expected |= {(b, a): w for (a, b), w in expected.items()}
    for node in graph.graph:  # the walk's adjacency and degrees are networkx's
        assert sorted(graph.neighbours(node)) == sorted(graph.graph.neighbors(node))
        assert graph.degree(node) == pytest.approx(graph.graph.degree(node, weight="weight"))
    assert arrays == expected and len(arrays) == len(src)


def test_only_visible_memories_of_the_scope_are_returned(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    other = put(store, "Oscar is a cat", ["Oscar"], scope=Scope(user_id="u2"))
    store.apply(WriteBatch(updates=[(family["hay"].model_copy(
        update={"status": MemoryStatus.ARCHIVED}), None)]))
    channel = GraphChannel(store)
    hits = ask(channel, "Tell me about Oscar")
    assert family["hay"].id not in hits and other.id not in hits
    assert ask(channel, "Tell me about Oscar", scope=Scope(user_id="u2")) == [other.id]
    archived = ask(channel, "Tell me about Oscar", statuses=("active", "archived"))
    assert family["hay"].id in archived


def test_a_visible_memory_ranked_behind_hidden_ones_is_still_found(
    store: SQLiteStore,
) -> None:
    notes = [put(store, f"Oscar note {i}", ["Oscar"]) for i in range(6)]
    last = max(notes, key=lambda r: r.id)  # equal scores: ranked by id, so this one last
    store.apply(WriteBatch(updates=[(r.model_copy(update={"status": MemoryStatus.ARCHIVED}),
                                     None) for r in notes if r is not last]))
    assert ask(GraphChannel(store), "Oscar", k=1) == [last.id]
    assert ask(GraphChannel(store), "Oscar", k=2) == [last.id]


def test_cache_is_reused_until_a_write_changes_the_links(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    channel = GraphChannel(store)
    query = ChannelQuery("Oscar", VisibilityQuery(scope=U1))
    first = channel.graph_for(query)
    assert channel.graph_for(query) is first
    store.apply(WriteBatch(updates=[(family["paint"].model_copy(
        update={"status": MemoryStatus.ARCHIVED}), None)]))
    assert channel.graph_for(query) is first  # status only: links unchanged
    new = put(store, "Oscar met Bella", ["Oscar", "Bella"])
    rebuilt = channel.graph_for(query)
    assert rebuilt is not first and "bella" in rebuilt.graph
    assert new.id in ask(channel, "Who is Bella?")


def test_concurrent_searches_after_a_write_build_the_graph_once(
    store: SQLiteStore, family: dict[str, MemoryRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = GraphChannel(store)
    query = ChannelQuery("Oscar", VisibilityQuery(scope=U1))
    channel.graph_for(query)
    put(store, "Oscar met Bella", ["Oscar", "Bella"])
    builds: list[int] = []
    real_build = EntityGraph.build.__func__

    def slow_build(cls: type[EntityGraph], data: Any) -> EntityGraph:
        builds.append(1)
        time.sleep(0.2)  # the other thread arrives while this one builds
        graph: EntityGraph = real_build(cls, data)
        return graph

    monkeypatch.setattr(EntityGraph, "build", classmethod(slow_build))
    with ThreadPoolExecutor(max_workers=4) as pool:
        graphs = list(pool.map(lambda _: channel.graph_for(query), range(4)))
    assert len(builds) == 1
    assert all(g is graphs[0] for g in graphs) and "bella" in graphs[0].graph


def test_another_process_write_is_seen(tmp_path: Path, family: object) -> None:
    # Two store objects on one file behave like two processes: the counter is in the file.
    path = tmp_path / "shared.db"
    a, b = SQLiteStore(path, embedding_dim=4), SQLiteStore(path, embedding_dim=4)
    try:
        channel = GraphChannel(a)
        assert ask(channel, "Who is Zora?") == []
        rec = put(b, "Zora plays chess", ["Zora"])
        assert ask(channel, "Who is Zora?") == [rec.id]
    finally:
        a.close()
        b.close()


def test_graph_channel_is_fused_in_memory_search(memory: Memory) -> None:
    memory.add(
        [{"role": "user", "name": "Caroline", "content": "I adopted a guinea pig named Oscar."},
         {"role": "user", "name": "Melanie", "content": "Oscar is such a cute name!"}],
        user_id="u1", timestamp="2023-05-08T10:00:00Z", infer=True,
    )
    response = memory.search("What is the name of Caroline's pet?", user_id="u1")
    assert response.plan["channels"]["graph"]["weight"] > 0
    assert any("graph" in hit.channel_ranks for hit in response.results)
    top = response.results[0]
    assert "Oscar" in top.memory.text


def test_a_hub_alone_is_silent_and_with_a_specific_entity_breaks_ties(
    store: SQLiteStore,
) -> None:
    for i in range(30):  # the speaker of every turn
        put(store, f"Caroline said thing number {i}", ["Caroline"])
    with_both = put(store, "Caroline walked Rex in the park", ["Caroline", "Rex"])
    rex_only = put(store, "Rex chased a ball", ["Rex"])
    channel = GraphChannel(store)
    assert "caroline" in channel.graph_for(
        ChannelQuery("x", VisibilityQuery(scope=U1))).hubs
    assert ask(channel, "What did Caroline say?") == []
    hits = ask(channel, "Where did Caroline walk Rex?")
    assert hits[:2] == [with_both.id, rex_only.id]
    assert len(hits) == 2  # a walk never passes through the hub to everything else


def test_a_huge_query_is_matched_on_its_start_only(
    store: SQLiteStore, family: dict[str, MemoryRecord]
) -> None:
    filler = " ".join(["Lorem Ipsum Dolor"] * 3000)
    assert ask(GraphChannel(store), f"{filler} Oscar") == []  # Oscar is past the cap
    assert family["hay"].id in ask(GraphChannel(store), f"Oscar {filler}")


def test_searches_during_writes_see_a_consistent_graph(store: SQLiteStore) -> None:
    import threading

    channel = GraphChannel(store)
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                hits = ask(channel, "What does Pixel do?")
                assert len(hits) == len(set(hits))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    written = [put(store, f"Pixel learned trick {i}", ["Pixel", f"Trick{i}"]) for i in range(15)]
    done.set()
    for t in threads:
        t.join()
    assert errors == []
    assert set(ask(channel, "What does Pixel do?", k=50)) == {r.id for r in written}


def test_memories_naming_no_entity_are_found_by_the_concepts_they_share(
    store: SQLiteStore,
) -> None:
    # No names at all: only the concepts (here "camp", whatever its inflection) link them.
    mountains = put(store, "We went camping in the mountains", [])
    beach = put(store, "The camping trip at the beach was lovely", [])
    put(store, "I baked cookies for the bake sale", [])
    assert set(ask(GraphChannel(store), "Where have they camped?")) == {mountains.id, beach.id}


def test_a_frequent_concept_stays_in_the_topic_while_a_frequent_name_leaves_it(
    store: SQLiteStore,
) -> None:
    for i in range(25):  # both become hubs: on every memory
        put(store, f"Melanie: the kids loved outing number {i}", ["Melanie"])
    graph = GraphChannel(store).graph_for(ChannelQuery("x", VisibilityQuery(scope=U1)))
    assert {"melanie", "~kid"} <= graph.hubs
    assert graph.without_hubs("What do Melanie's kids like?") == "What do kids like?"


@pytest.mark.parametrize("dense", [True, False])
def test_pagerank_on_edge_arrays_matches_networkx(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import networkx as nx

    import memsvc.retrievers.graph as graph_module

    if not dense:  # the step over edge arrays, as for a large subgraph
        monkeypatch.setattr(graph_module, "_DENSE_WALK", 0)

    g = EntityGraph(nodes={"lone": "lone"})
    g.connect({("a", "b"): 1.0, ("b", "c"): 2.0, ("a", "c"): 1.0, ("c", "d"): 3.0,
               ("d", "e"): 1.0, ("x", "y"): 1.0})
    nodes, seeds = ["a", "b", "c", "d", "lone"], {"a": 1.0, "lone": 0.5}
    ours = g._pagerank(nodes, seeds)
    reference = nx.pagerank(g.graph.subgraph(nodes), alpha=0.75, personalization=seeds,
                            weight="weight")
    assert ours.keys() == reference.keys()
    assert all(abs(ours[n] - reference[n]) < 1e-6 for n in nodes)
