"""The Mem0 drop-in, run on Mem0's own quickstart code with only the import line changed.

The samples are Mem0's, quoted: the README of mem0ai 2.2.1 ("Basic Usage"), the current
Python quickstart (docs.mem0.ai/open-source/python-quickstart) and the 1.x open-source
quickstart (docs.mem0.ai/v0x/open-source/python-quickstart). Each is executed with
`from mem0 import` replaced by `from memsvc.compat.mem0 import`; the README sample's OpenAI
client is replaced by an offline fake, and the 1.x page's placeholder id by a stored one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import memsvc.compat.mem0 as compat
from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.serving.server import BackgroundServer

README_2_2_1 = '''
from openai import OpenAI
from mem0 import Memory

openai_client = OpenAI()
memory = Memory()

def chat_with_memories(message: str, user_id: str = "default_user") -> str:
    # Retrieve relevant memories
    relevant_memories = memory.search(query=message, filters={"user_id": user_id}, top_k=3)
    memories_str = "\\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])

    # Generate Assistant response
    system_prompt = f"You are a helpful AI. Answer the question based on query and memories.\\nUser Memories:\\n{memories_str}"
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
    response = openai_client.chat.completions.create(model="gpt-5-mini", messages=messages)
    assistant_response = response.choices[0].message.content

    # Create new memories from the conversation
    messages.append({"role": "assistant", "content": assistant_response})
    memory.add(messages, user_id=user_id)

    return assistant_response
'''  # noqa: E501  (quoted as published)

QUICKSTART = '''
from mem0 import Memory

m = Memory()

messages = [
    {"role": "user", "content": "Hi, I'm Alex. I love basketball and gaming."},
    {"role": "assistant", "content": "Hey Alex! I'll remember your interests."}
]
m.add(messages, user_id="alex")

results = m.search("What do you know about me?", filters={"user_id": "alex"})
print(results)
'''

QUICKSTART_1X = '''
from mem0 import Memory

m = Memory()

messages = [
    {"role": "user", "content": "I'm planning to watch a movie tonight. Any recommendations?"},
    {"role": "assistant", "content": "How about a thriller movies? They can be quite engaging."},
    {"role": "user", "content": "I'm not a big fan of thriller movies but I love sci-fi movies."},
    {"role": "assistant", "content": "Got it! I'll avoid thriller recommendations and suggest sci-fi movies in the future."}
]

# Store inferred memories (default behavior)
result = m.add(messages, user_id="alice", metadata={"category": "movie_recommendations"})

# Store memories with agent and run context
result = m.add(messages, user_id="alice", agent_id="movie-assistant", run_id="session-001", metadata={"category": "movie_recommendations"})

# Get all memories
all_memories = m.get_all(user_id="alice")

# Get a single memory by ID
specific_memory = m.get("892db2ae-06d9-49e5-8b3e-585ef9b85b8e")

related_memories = m.search(query="What do you know about me?", user_id="alice")

result = m.update(memory_id=MEMORY_ID, data="I love India, it is my favorite country.")

history = m.history(memory_id=MEMORY_ID)

m.delete(memory_id=MEMORY_ID)

m.delete_all(user_id="alice")
'''  # noqa: E501


class FakeOpenAI:
    """The slice of `openai.OpenAI` the README sample uses, answering offline."""

    def __init__(self) -> None:
        self.prompts: list[list[dict[str, str]]] = []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, model: str, messages: list[dict[str, str]]) -> Any:
        self.prompts.append(messages)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(
            content="Sounds great!"))])


def run_sample(code: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = dict(names)
    code = code.replace("from mem0 import", "from memsvc.compat.mem0 import")
    exec(compile(code, "<mem0 sample>", "exec"), namespace)
    return namespace


@pytest.fixture
def default_store(monkeypatch: pytest.MonkeyPatch, raw: Memory,
                  embedder: SentenceTransformerEmbedder) -> Iterator[None]:
    """`Memory()` in a sample opens this test's store (and reuses the loaded embedder)."""
    monkeypatch.setattr(compat, "_Memory", lambda db_path=None: Memory(
        settings=Settings(db_path=raw.settings.db_path), embedder=embedder))
    yield


def test_readme_chat_sample(default_store: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeOpenAI()
    code = README_2_2_1.replace("from openai import OpenAI\n", "")
    ns = run_sample(code, OpenAI=lambda: client)
    ns["chat_with_memories"]("I love hiking in the Alps", user_id="ana")
    ns["chat_with_memories"]("What do I love doing?", user_id="ana")
    assert "hiking in the Alps" in client.prompts[1][0]["content"]


def test_python_quickstart(default_store: None, capsys: pytest.CaptureFixture[str]) -> None:
    results = run_sample(QUICKSTART)["results"]["results"]
    top = results[0]
    assert {"id", "memory", "hash", "created_at", "updated_at", "score"} <= set(top)
    assert top["user_id"] == "alex" and isinstance(top["score"], float)
    assert any("basketball" in r["memory"] for r in results)
    assert "'results'" in capsys.readouterr().out


def quickstart_1x(make: Callable[[], Any]) -> dict[str, Any]:
    """Run the 1.x sample with MEMORY_ID the id of one of the memories it stored."""
    probe = make()
    probe.add("I love Japan, it is my favourite country.", user_id="alice")
    memory_id = probe.get_all(user_id="alice")["results"][0]["id"]
    return run_sample(QUICKSTART_1X, MEMORY_ID=memory_id)


def check_1x(ns: dict[str, Any], raw: Memory) -> None:
    assert ns["result"] == {"message": "Memory updated successfully!"}  # the last `result =`
    everything = ns["all_memories"]["results"]
    assert len(everything) >= 9  # 2 × 4 turns kept verbatim, the probe's, and any facts
    assert {m["user_id"] for m in everything} == {"alice"}
    assert any(m.get("agent_id") == "movie-assistant" and m.get("run_id") == "session-001"
               for m in everything)
    assert any((m["metadata"] or {}).get("category") == "movie_recommendations"
               for m in everything)
    assert ns["specific_memory"] is None  # the page's placeholder id: unknown, as in Mem0
    assert ns["related_memories"]["results"][0]["score"] > 0
    assert [h["event"] for h in ns["history"]] == ["ADD", "UPDATE"]
    assert ns["history"][1]["new_memory"] == "I love India, it is my favorite country."
    assert ns["m"].get(ns["MEMORY_ID"]) is None
    assert ns["m"].get_all(user_id="alice")["results"] == []
    # memsvc kept the history of what was deleted
    assert [h.event.value for h in raw.history(ns["MEMORY_ID"])][-1] == "DELETE"


def test_quickstart_1x_embedded(default_store: None, raw: Memory) -> None:
    ns = quickstart_1x(compat.Memory)
    check_1x(ns, raw)
    ns["m"].reset()
    assert raw.stats().memories == 0


def test_quickstart_1x_over_http(server: BackgroundServer, raw: Memory,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def client() -> compat.MemoryClient:
        return compat.MemoryClient(host=server.url)

    monkeypatch.setattr(compat, "Memory", client)  # the sample's `Memory()` → the client
    check_1x(quickstart_1x(client), raw)


def test_config_dicts_are_ignored_with_a_warning(default_store: None) -> None:
    with pytest.warns(UserWarning, match="ignores Mem0 config"):
        m = compat.Memory.from_config({"vector_store": {"provider": "qdrant"}})
    assert m.add("I like tea", user_id="u", infer=False)["results"][0]["event"] == "ADD"


def test_add_reports_mem0_events(raw: Memory) -> None:
    m = compat.Memory(memory=raw)
    first = m.add("I live in Boston", user_id="jo")["results"]
    assert {e["event"] for e in first} == {"ADD"}
    again = m.add("I live in Boston", user_id="jo")["results"]
    assert "NONE" in {e["event"] for e in again}  # the fact is known: memsvc's NOOP
    moved = m.add("I moved to Denver", user_id="jo")["results"]
    retired = [e for e in moved if e["event"] == "DELETE"]
    assert retired and "Boston" in retired[0]["memory"]
    assert raw.get(retired[0]["id"]).status.value == "superseded"  # kept, not erased


def test_filters_translate_to_memsvc(raw: Memory) -> None:
    m = compat.Memory(memory=raw)
    m.add("I play chess", user_id="ivy", metadata={"topic": "games", "level": 3}, infer=False)
    m.add("I play violin", user_id="ivy", metadata={"topic": "music", "level": 1}, infer=False)
    found = m.search("play", filters={"user_id": "ivy", "topic": "games"})["results"]
    assert [r["memory"] for r in found] == ["user: I play chess"]
    listed = m.get_all(filters={"user_id": "ivy", "OR": [{"level": {"gte": 2}},
                                                         {"topic": "music"}]})["results"]
    assert len(listed) == 2
    assert m.get_all(filters={"user_id": "ivy", "NOT": [{"topic": "*"}]})["results"] == []


BAD: list[tuple[str, Callable[[compat.Memory, str], Any], str]] = [
    ("no user", lambda m, _: m.add("x"), "user_id"),
    ("empty", lambda m, _: m.add("   ", user_id="u"), "empty"),
    ("search scope", lambda m, _: m.search("x"), "user_id"),
    ("operator", lambda m, _: m.search("x", filters={"user_id": "u", "a": {"contains": "b"}}),
     "contains"),
    ("procedural", lambda m, _: m.add("x", agent_id="a", memory_type="procedural_memory"),
     "procedural"),
    ("update id", lambda m, _: m.update("no-such-id", "x"), "no-such-id"),
    ("delete id", lambda m, _: m.delete("no-such-id"), "no-such-id"),
    ("history id", lambda m, _: m.history("no-such-id"), "no-such-id"),
    ("update nothing", lambda m, i: m.update(i), "nothing to update"),
    ("delete_all scope", lambda m, _: m.delete_all(), "reset"),
]


@pytest.mark.parametrize(("name", "call", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_value_error_and_changes_nothing(
        raw: Memory, counts: Callable[[], tuple[int, int, int]], name: str,
        call: Callable[[compat.Memory, str], Any], message: str) -> None:
    m = compat.Memory(memory=raw)
    kept = m.add("I keep bees", user_id="u", infer=False)["results"][0]["id"]
    before = counts()
    with pytest.raises(ValueError, match=message):
        call(m, kept)
    assert counts() == before
