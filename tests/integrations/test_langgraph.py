"""`MemsvcStore` as LangGraph's store, and the LangChain tools and retriever, in real graphs.

The model is langchain-core's `GenericFakeChatModel` scripted with tool calls, so the graph,
the tool node, the store and memsvc all run for real, offline.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.config import get_config, get_store
from langgraph.prebuilt import create_react_agent
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp
from pydantic import Field

from memsvc import Memory
from memsvc.integrations.langchain import MemsvcRetriever, memory_tools
from memsvc.integrations.langgraph import MemsvcStore

ALICE = ("memories", "alice")
# create_react_agent moved to langchain.agents (not a dependency); it is what users run today
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


class ScriptedChat(GenericFakeChatModel):
    """A fake chat model that accepts tools and records what it was shown."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChat:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def calls(*tool_calls: tuple[str, dict[str, Any]]) -> AIMessage:
    return AIMessage(content="", tool_calls=[
        {"name": name, "args": args, "id": f"call-{uuid.uuid4().hex[:8]}"}
        for name, args in tool_calls])


# LangMem-style code, unchanged in spirit: a tool and a prompt that use the graph's store.
@tool
def manage_memory(content: str, *, config: RunnableConfig) -> str:
    """Create a memory."""
    store = get_store()
    key = str(uuid.uuid4())
    store.put(("memories", config["configurable"]["langgraph_user_id"]), key,
              {"content": content})
    return f"created memory {key}"


def prompt_with_memories(state: dict[str, Any]) -> list[BaseMessage]:
    user = get_config()["configurable"]["langgraph_user_id"]
    items = get_store().search(("memories", user), query=str(state["messages"][-1].content))
    memories = "\n".join(f"- {item.value['content']}" for item in items)
    return [SystemMessage(f"Known about the user:\n{memories}"), *state["messages"]]


def test_store_round_trips_items_exactly(sdk: Any, raw: Memory) -> None:
    store = MemsvcStore(sdk)
    value = {"content": "Alice likes green tea", "n": 3, "ratio": 0.1, "ok": True,
             "tags": ["a", "b"], "nested": {"x": None, "y": [1, {"z": "é"}]}}
    store.put(ALICE, "pref-1", value)
    store.put(("notes", "alice"), "pref-1", {"content": "a different item, same user and key"})
    item = store.get(ALICE, "pref-1")
    assert item is not None and item.value == value and item.key == "pref-1"
    assert item.namespace == ALICE
    assert store.get(("notes", "alice"), "pref-1").value["content"].startswith("a different")
    assert store.get(ALICE, "pref-2") is None
    # one memsvc user: the last namespace label
    assert {r.scope.user_id for r in raw.get_all(user_id="alice").items} == {"alice"}

    store.put(ALICE, "pref-1", {"content": "Alice now prefers coffee"})
    updated = store.get(ALICE, "pref-1")
    assert updated.value == {"content": "Alice now prefers coffee"}
    assert updated.created_at == item.created_at and updated.updated_at > item.updated_at
    [record] = [r for r in raw.get_all(user_id="alice").items
                if r.metadata["lg_namespace"] == "memories.alice"]
    assert [h.event.value for h in raw.history(record.id)] == ["ADD", "UPDATE"]

    store.delete(ALICE, "pref-1")
    assert store.get(ALICE, "pref-1") is None
    assert store.list_namespaces() == [("notes", "alice")]


def test_search_is_memsvcs_ranking_with_its_scores(sdk: Any, raw: Memory) -> None:
    store = MemsvcStore(sdk)
    facts = ["Alice adopted a guinea pig named Oscar", "Alice works as a nurse in Denver",
             "Alice plays the cello on weekends", "Alice is allergic to peanuts"]
    for i, fact in enumerate(facts):
        store.put(ALICE, f"k{i}", {"content": fact, "i": i})
    store.put(("memories", "bob"), "k0", {"content": "Bob has a pet guinea pig too", "i": 9})

    hits = store.search(ALICE, query="what pet does she have?", limit=3)
    # the store searches its agent's scope, the namespace as a filter (the graph of that
    # scope links "pet" in Bob's memory to Alice's guinea pig: the same call ranks alike)
    direct = raw.search("what pet does she have?", agent_id=store.agent_id, limit=3,
                        filters={"metadata.lg_namespace": "memories.alice"})
    assert [h.value["content"] for h in hits] == [r.memory.metadata["lg_value"]["content"]
                                                  for r in direct.results]
    assert [h.score for h in hits] == pytest.approx([r.score for r in direct.results])
    assert hits[0].value["content"] == facts[0]

    across = store.search(("memories",), query="guinea pig", limit=10)
    assert {h.namespace for h in across} == {ALICE, ("memories", "bob")}
    assert [h.score for h in across] == sorted((h.score for h in across), reverse=True)

    assert [h.key for h in store.search(ALICE, filter={"i": {"$gte": 2}})] == ["k2", "k3"]
    assert [h.key for h in store.search(ALICE, filter={"content": facts[1]})] == ["k1"]
    assert store.search(ALICE, filter={"i": 1}, query="nurse")[0].key == "k1"
    assert [h.key for h in store.search(ALICE, limit=2, offset=1)] == ["k1", "k2"]
    assert store.list_namespaces(prefix=("memories",), max_depth=1) == [("memories",)]
    assert store.list_namespaces(suffix=("bob",)) == [("memories", "bob")]


def test_user_index_maps_the_other_namespace_shape(raw: Memory) -> None:
    store = MemsvcStore(raw, user_index=0, agent_id="planner")
    store.put(("carol", "memories"), "k", {"content": "Carol runs marathons"})
    [record] = raw.get_all(user_id="carol").items
    assert (record.scope.user_id, record.scope.agent_id) == ("carol", "planner")
    assert store.search(("carol",), query="running")[0].key == "k"  # the prefix names carol
    assert store.search((), query="running")[0].key == "k"  # it does not: via the registry
    assert store.list_namespaces() == [("carol", "memories")]


def test_without_an_agent_id_a_cross_user_search_asks_the_registry(raw: Memory) -> None:
    store = MemsvcStore(raw, agent_id=None)
    store.put(ALICE, "k", {"content": "Alice grows tomatoes"})
    store.put(("memories", "bob"), "k", {"content": "Bob grows chillies"})
    assert {r.scope.agent_id for r in raw.get_all(user_id="bob").items} == {None}
    hits = store.search(("memories",), query="vegetable garden")
    assert {h.namespace for h in hits} == {ALICE, ("memories", "bob")}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_async_store(async_sdk: Any) -> None:
    store = MemsvcStore(async_sdk)
    await store.aput(ALICE, "k", {"content": "Alice sails on Sundays"})
    await store.aput(ALICE, "k2", {"content": "Alice reads sci-fi"})
    item = await store.aget(ALICE, "k")
    assert item is not None and item.value == {"content": "Alice sails on Sundays"}
    hits = await store.asearch(ALICE, query="boat hobby")
    assert hits[0].key == "k" and hits[0].score is not None
    assert await store.alist_namespaces() == [ALICE]
    await store.adelete(ALICE, "k")
    assert await store.aget(ALICE, "k") is None


def run_agent(graph: Any, text: str, user: str) -> list[BaseMessage]:
    config = {"configurable": {"langgraph_user_id": user}}
    return graph.invoke({"messages": [("user", text)]}, config)["messages"]  # type: ignore[no-any-return]


def two_agent_runs(sdk: Any) -> str:
    """Run 1 stores (a LangMem-style store tool and `remember`); run 2, a fresh invocation,
    finds both: the prompt reads the store, the `recall` tool searches memsvc."""
    model = ScriptedChat(messages=iter([
        calls(("manage_memory", {"content": "favourite colour is teal"}),
              ("remember", {"text": "Alice's favourite colour is teal"})),
        AIMessage(content="Noted."),
        calls(("recall", {"query": "favourite colour"})),
        AIMessage(content="Teal."),
    ]))
    graph = create_react_agent(model, [manage_memory, *memory_tools(sdk)],
                               prompt=prompt_with_memories, store=MemsvcStore(sdk))
    first = run_agent(graph, "Remember: my favourite colour is teal", "alice")
    assert [m.content.split()[0] for m in first if isinstance(m, ToolMessage)] == [
        "created", "Remembered"]
    second = run_agent(graph, "what is my favourite colour?", "alice")
    assert "favourite colour is teal" in model.seen[2][0].content
    [recalled] = [m for m in second if isinstance(m, ToolMessage)]
    assert "Alice's favourite colour is teal" in recalled.content
    assert recalled.artifact[0]["score"] > 0 and second[-1].content == "Teal."
    return str(first[2].content).split()[-1]  # the key manage_memory created


def test_react_agent_tools_and_store_persist_across_runs(sdk: Any) -> None:
    two_agent_runs(sdk)


def test_react_agent_memories_survive_in_another_process(raw: Memory, db_path: Path) -> None:
    key = two_agent_runs(raw)
    # reads by key and lists need no embedding, so the probe skips loading the model
    probe = f"""
import json
from memsvc import Memory
from memsvc.integrations.langgraph import MemsvcStore
class NoEmbedder:
    dim = {raw.embedder.dim}
    def embed_documents(self, texts): raise AssertionError("not needed")
    embed_query = embed_documents
m = Memory({str(db_path)!r}, embedder=NoEmbedder())
store = MemsvcStore(m)
item = store.get(("memories", "alice"), {key!r})
listed = [i.value for i in store.search(("memories", "alice"))]
texts = [r.text for r in m.get_all(user_id="alice").items]
print(json.dumps({{"item": item.value, "listed": listed, "texts": texts}}))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["item"] == {"content": "favourite colour is teal"}
    assert seen["listed"] == [{"content": "favourite colour is teal"}]
    assert any("Alice's favourite colour is teal" in t for t in seen["texts"])


async def test_react_agent_async_run(async_sdk: Any) -> None:
    model = ScriptedChat(messages=iter([
        calls(("remember", {"text": "Bob is vegetarian"})), AIMessage(content="ok"),
        calls(("recall", {"query": "diet"})), AIMessage(content="vegetarian"),
    ]))
    graph = create_react_agent(model, memory_tools(async_sdk), store=MemsvcStore(async_sdk))
    config: Any = {"configurable": {"user_id": "bob"}}
    await graph.ainvoke({"messages": [("user", "I am vegetarian")]}, config)
    out = await graph.ainvoke({"messages": [("user", "what do I eat?")]}, config)
    [recalled] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert "Bob is vegetarian" in recalled.content


def test_forget_tool_only_deletes_in_its_own_scope(raw: Memory) -> None:
    remember, recall, forget = memory_tools(raw, user_id="alice")
    remember.invoke({"text": "Alice keeps bees"})
    other = raw.add("Bob keeps bees", user_id="bob").results[0].id
    hits = recall.invoke({"query": "bees"})
    mine = hits.split("]")[0].lstrip("[")
    assert "Alice keeps bees" in hits
    refused = forget.invoke({"memory_id": other})
    assert "not_found" in refused and raw.get(other).status.value == "active"
    assert forget.invoke({"memory_id": mine}) == f"Forgot memory {mine}."
    assert recall.invoke({"query": "bees"}) == "No memories found."


def test_retriever_documents_carry_scores_and_provenance(sdk: Any, raw: Memory) -> None:
    raw.add([{"role": "user", "name": "Alice", "content": "I moved to Lisbon in May"}],
            user_id="alice", session_id="s1")
    docs = MemsvcRetriever(memory=sdk, user_id="alice", k=2).invoke("where does Alice live?")
    direct = raw.search("where does Alice live?", user_id="alice", limit=2).results
    assert [d.id for d in docs] == [h.memory.id for h in direct]
    top = docs[0]
    assert top.page_content == "Alice: I moved to Lisbon in May"
    assert top.metadata["score"] == pytest.approx(direct[0].score)
    assert top.metadata["channel_ranks"] == direct[0].channel_ranks
    assert top.metadata["session_id"] == "s1" and top.metadata["source_message_ids"]


# -- bad input: LangGraph's and LangChain's error types, memsvc's message, nothing stored --

BAD_PUTS: list[tuple[tuple[Any, ...], Any, type[Exception], str]] = [
    ((), {"a": 1}, InvalidNamespaceError, "cannot be empty"),
    (("a.b", "u"), {"a": 1}, InvalidNamespaceError, "periods"),
    (("memories", ""), {"a": 1}, InvalidNamespaceError, "empty"),
    (("memories", 7), {"a": 1}, InvalidNamespaceError, "must be strings"),
    (("langgraph", "u"), {"a": 1}, InvalidNamespaceError, "Root label"),
    (ALICE, {"a": {1, 2}}, ValueError, "not JSON"),
    (ALICE, {"a": math.nan}, ValueError, "not JSON"),
    (ALICE, {"a": (1, 2)}, ValueError, "round trip"),
    (ALICE, {1: "x"}, ValueError, "round trip"),
    (ALICE, ["not", "a", "dict"], ValueError, "must be a dict"),
    (ALICE, {"content": "x" * 2_000_000}, ValueError, "the limit is"),
]


@pytest.mark.parametrize(("namespace", "value", "error", "message"), BAD_PUTS)
def test_bad_puts_are_refused_and_change_nothing(
        raw: Memory, counts: Callable[[], tuple[int, int, int]], namespace: tuple[Any, ...],
        value: Any, error: type[Exception], message: str) -> None:
    # checked before any SDK call, so the embedded store stands for every backend
    store = MemsvcStore(raw)
    store.put(ALICE, "good", {"content": "kept"})
    before = counts()
    with pytest.raises(error, match=message):
        # a good op first: the whole batch is checked before anything runs
        store.batch([PutOp(ALICE, "also-good", {"content": "x"}), PutOp(namespace, "k", value)])
    assert counts() == before
    assert store.get(ALICE, "also-good") is None


def test_bad_reads_and_ttl_are_refused(sdk: Any,
                                       counts: Callable[[], tuple[int, int, int]]) -> None:
    store = MemsvcStore(sdk, user_index=2)
    before = counts()
    with pytest.raises(InvalidNamespaceError, match="no label at index 2"):
        store.batch([GetOp(ALICE, "k")])
    with pytest.raises(InvalidNamespaceError, match="no label at index 2"):
        store.put(ALICE, "k", {"a": 1})
    with pytest.raises(NotImplementedError, match="TTL"):
        MemsvcStore(sdk).put(ALICE, "k", {"a": 1}, ttl=5)
    with pytest.raises(ValueError, match="unsupported operator '\\$in'"):
        MemsvcStore(sdk).search(ALICE, filter={"a": {"$in": [1]}})
    assert counts() == before


def test_tools_without_a_user_report_memsvcs_error(
        sdk: Any, counts: Callable[[], tuple[int, int, int]]) -> None:
    remember, _, _ = memory_tools(sdk)
    before = counts()
    out = remember.invoke({"name": "remember", "args": {"text": "x"}, "id": "c1",
                           "type": "tool_call"})
    assert out.status == "error" and "scope_required" in out.content
    empty = remember.invoke({"name": "remember", "args": {"text": "  "}, "id": "c2",
                             "type": "tool_call"}, {"configurable": {"user_id": "alice"}})
    assert empty.status == "error" and "empty" in empty.content
    assert counts() == before


async def test_async_bad_input_is_refused_and_changes_nothing(
        async_sdk: Any, counts: Callable[[], tuple[int, int, int]]) -> None:
    store = MemsvcStore(async_sdk)
    before = counts()
    with pytest.raises(InvalidNamespaceError):
        await store.aput(("memories", "a.b"), "k", {"a": 1})
    with pytest.raises(ValueError, match="not JSON"):
        await store.abatch([PutOp(ALICE, "ok", {"a": 1}), PutOp(ALICE, "k", {"a": {1}})])
    remember, _, _ = memory_tools(async_sdk)
    out = await remember.ainvoke({"name": "remember", "args": {"text": "x"}, "id": "c1",
                                  "type": "tool_call"})
    assert out.status == "error" and "scope_required" in out.content
    assert counts() == before


def test_retriever_without_a_user_raises_memsvcs_error(sdk: Any) -> None:
    with pytest.raises(ValueError, match="user_id"):
        MemsvcRetriever(memory=sdk).invoke("anything")
