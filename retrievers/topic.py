"""Topic channel: the vector search again, on the question without the people it names.

A question naming a frequent entity — in a conversation, one of the speakers — is embedded
with that name, and a short turn that names the same person ("Thanks, Melanie!", "Go get 'em,
Jon!") then scores close to it whatever it says, while a turn of that person's that answers
("I've been running farther to de-stress") does not name them at all. This channel asks the
vector index for the question without the hubs' names (the graph knows which entities are
hubs: `EntityGraph.without_hubs`), and fusion weighs it beside the full question, so what the
question asks about counts on its own. It stays silent (and costs no embedding) when the
question names no hub.

When it fires, the channels searching the whole question's vector keep `question_share` of
their weight: the two vectors share the say of one. On the LoCoMo dev conversations (R@10):

| question vector × share | topic weight | raw | infer |
| --- | --- | --- | --- |
| 1.0 (no topic channel) | - | 0.712 | 0.762 |
| 1.0 | 0.5 | 0.718 | 0.785 |
| 1.0 | 0.8 | 0.729 | 0.785 (a temporal question lost) |
| 0.8 | 0.7 | 0.751 | 0.789 (0.787 with the batched embedding) |
| 0.7-0.9 (always, not only when it fires) | 0.6-1.0 | 0.731-0.751 | 0.778-0.785 |

With 0.8 / 0.7 every category is at or above what it was without the channel, in both modes
(raw multi-hop 0.346 → 0.415, open-domain 0.455 → 0.545, infer open-domain 0.455 → 0.636).
The question and its topic are embedded in one batch, which costs much less than a forward
pass of its own (`evals/results/locomo-*-r3-topicbatch.md`).
"""

from __future__ import annotations

from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.graph import GraphChannel
from memsvc.storage.base import Hit, VectorSearch


class TopicChannel:
    name = "topic"
    # the retriever embeds `topic_of(query)` with the query, before the channels fan out
    needs_topic = True
    question_share = 0.8  # the whole question's vector weight, when this channel fires

    def __init__(self, store: VectorSearch, graph: GraphChannel) -> None:
        self._store = store
        self._graph = graph

    def topic_of(self, query: ChannelQuery) -> str | None:
        """The query without the names of the hubs it names; None if it names none (or
        nothing else is left)."""
        topic = self._graph.graph_for(query).without_hubs(query.text)
        return topic if topic and topic != query.text else None

    def search(self, query: ChannelQuery, k: int) -> list[Hit]:
        if query.topic_embedding is None:
            return []
        return self._store.vector_search(query.visibility, query.topic_embedding, k)
