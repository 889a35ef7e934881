"""The entity graph around one memory, for the explorer (`GET /v1/memories/{id}/graph`).

Reads the store's entity graph (entities, memory→entity links, entity→entity relations) of
the memory's own scope, so it can only show what the caller's tenant and scope may see. One
hop: the memory's entities, the relations touching them, and up to `max_memories` other
live memories naming them. Concept entities (`memsvc.text.concepts`: the content words every
memory is linked to, for the search's graph channel) are left out: they are an index, not
things the memory names, and every memory would show ten of them.
"""

from __future__ import annotations

from memsvc.model.records import MemoryStatus, Scope
from memsvc.sdk.memory import Memory
from memsvc.serving.schemas import GraphEdge, GraphNode, MemoryGraph
from memsvc.storage.graph_model import concept_name


def memory_graph(memory: Memory, memory_id: str, *, max_memories: int = 25) -> MemoryGraph:
    record = memory.get(memory_id)  # NotFoundError for unknown / other tenant's ids
    center = f"m:{record.id}"
    nodes = {center: GraphNode(id=center, type="memory", label=record.text,
                               kind=record.kind.value, status=record.status.value)}
    edges: list[GraphEdge] = []
    store = memory.store
    data = store.graph_data(Scope(user_id=record.scope.user_id, agent_id=record.scope.agent_id))
    mine = {pk for mid, pk in data.links if mid == record.id
            and pk in data.entities and concept_name(data.entities[pk][0]) is None}

    def entity(pk: int) -> str:
        key = f"e:{pk}"
        if key not in nodes and pk in data.entities:
            nodes[key] = GraphNode(id=key, type="entity", label=data.entities[pk][0])
        return key

    for pk in sorted(mine):
        edges.append(GraphEdge(source=center, target=entity(pk), label="mentions"))
    for src, dst, predicate in data.relations:
        if (src in mine or dst in mine) and src in data.entities and dst in data.entities:
            edges.append(GraphEdge(source=entity(src), target=entity(dst), label=predicate))
    others: dict[str, list[int]] = {}
    for mid, pk in data.links:
        if pk in mine and mid != record.id:
            others.setdefault(mid, []).append(pk)
    records = store.get_many(list(others))
    live = [r for r in records.values() if r.status is MemoryStatus.ACTIVE]
    live.sort(key=lambda r: (-len(others[r.id]), r.id))
    for other in live[:max_memories]:
        key = f"m:{other.id}"
        nodes[key] = GraphNode(id=key, type="memory", label=other.text, kind=other.kind.value,
                               status=other.status.value)
        for pk in others[other.id]:
            edges.append(GraphEdge(source=key, target=entity(pk), label="mentions"))
    return MemoryGraph(center=center, nodes=list(nodes.values()), edges=edges)
