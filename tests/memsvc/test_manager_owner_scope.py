"""One owner's memories are never changed by another's (issue 11, M1).

The owner of a memory is its user (no user is an owner of its own: the agent's notes). Two
users of one agent share the agent id, so a lookup or a consolidation partition keyed only
by the agent saw both of them: Bob's preference got merged into Alice's, and a note the
agent wrote without a user retired Alice's address. Every test here runs the real `Memory`
(rule extractor, real embedder) on a temp store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.records import AddResult, HistoryEvent, MemoryRecord, MemoryStatus
from memsvc.model.settings import Settings

NOW = "2023-02-01T00:00:00Z"


@pytest.fixture
def mem(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    with Memory(settings=Settings(db_path=tmp_path / "owners.db"), embedder=embedder) as m:
        yield m


def say(mem: Memory, name: str | None, text: str, when: str, user: str | None) -> AddResult:
    turn = {"role": "user", "content": text, "timestamp": when}
    if name is not None:
        turn["name"] = name
    return mem.add([turn], user_id=user, agent_id="bot", infer=True)


def derived(result: AddResult) -> str:
    """The one non-episode memory an add created."""
    (change,) = [c for c in result.results
                 if c.kind.value != "episode" and c.event is HistoryEvent.ADD]
    return change.id


def everything(mem: Memory) -> dict[str, MemoryRecord]:
    return {r.id: r for r in mem.export()}


def assert_owners_kept_apart(mem: Memory) -> None:
    """No memory is backed by another owner's turns or superseded by another's memory."""
    owner_of_message = {m.id: m.scope.user_id for m in mem.messages(agent_id="bot")}
    records = everything(mem)
    for r in records.values():
        owners = {owner_of_message[s] for s in r.provenance.source_message_ids}
        assert owners <= {r.scope.user_id}, (r.kind, r.text, owners)
        if r.superseded_by is not None:
            assert records[r.superseded_by].scope.user_id == r.scope.user_id, r.text
        for other in [*r.metadata.get("merged_from", []), *r.metadata.get("supersedes", [])]:
            assert records[other].scope.user_id == r.scope.user_id, r.text


def two_users_who_disagree(mem: Memory) -> tuple[str, str, dict[str, Any]]:
    """Alice prefers cats, Bob dogs; their front end sends no names, so both become "User
    prefers ..." (cosine 0.99, the same words: merge candidates). The agent keeps a note of
    its own, so the agent has a user-less partition too."""
    alice = derived(say(mem, None, "I prefer cats to dogs.", "2023-01-01T10:00:00Z", "alice"))
    bob = derived(say(mem, None, "I prefer dogs to cats.", "2023-01-01T11:00:00Z", "bob"))
    say(mem, "Ops", "The weekly report is due on Friday.", "2023-01-02T10:00:00Z", None)
    before = everything(mem)
    return alice, bob, {i: (before[i].text, before[i].provenance, before[i].version)
                        for i in (alice, bob)}


@pytest.mark.parametrize("where", [{}, {"agent_id": "bot"}], ids=["tenant", "agent"])
def test_consolidating_the_agent_never_merges_one_user_into_another(
    mem: Memory, where: dict[str, str]
) -> None:
    alice, bob, before = two_users_who_disagree(mem)
    report = mem.consolidate(now=NOW, **where)
    after = everything(mem)
    for memory_id in (alice, bob):
        r = after[memory_id]
        assert r.status is MemoryStatus.ACTIVE and r.superseded_by is None
        assert "merged_from" not in r.metadata and "merged_into" not in r.metadata
        assert (r.text, r.provenance, r.version) == before[memory_id]
    assert report.merged == 0
    assert_owners_kept_apart(mem)
    # Summaries of the agent's own partition say only what was said without a user.
    userless = [r for r in after.values()
                 if r.scope.user_id is None and r.kind.value == "summary"]
    assert userless and all("prefer" not in r.text for r in userless)


def test_the_same_preference_from_two_users_stays_two_memories(mem: Memory) -> None:
    alice = derived(say(mem, "User", "I prefer window seats on long flights.",
                        "2023-01-01T10:00:00Z", "alice"))
    bob = derived(say(mem, "User", "I prefer window seats on long flights.",
                      "2023-01-01T11:00:00Z", "bob"))
    say(mem, "User", "I prefer window seats on long flights.", "2023-01-02T10:00:00Z", None)
    mem.consolidate(agent_id="bot", now=NOW)
    after = everything(mem)
    assert after[alice].status is MemoryStatus.ACTIVE
    assert after[bob].status is MemoryStatus.ACTIVE
    assert_owners_kept_apart(mem)


def test_an_agent_only_add_does_not_invalidate_a_users_fact(mem: Memory) -> None:
    boston = derived(say(mem, "Alice", "I live in Boston.", "2023-01-01T10:00:00Z", "alice"))
    result = say(mem, "Alice", "I moved to Denver.", "2023-01-03T10:00:00Z", None)
    assert boston not in {c.id for c in result.results}
    fact = mem.get(boston)
    assert fact.status is MemoryStatus.ACTIVE and fact.valid_to is None
    assert [h.event for h in mem.history(boston)] == [HistoryEvent.ADD]
    hits = mem.search("Where does Alice live?", user_id="alice", kinds=["fact", "event"])
    assert "Boston" in hits.results[0].memory.text


def test_an_agent_only_repeat_does_not_reinforce_a_users_memory(mem: Memory) -> None:
    alice = derived(say(mem, "User", "I prefer window seats on long flights.",
                        "2023-01-01T10:00:00Z", "alice"))
    before = mem.get(alice)
    result = say(mem, "User", "I prefer window seats on long flights.",
                 "2023-01-02T10:00:00Z", None)
    assert alice not in {c.id for c in result.results}
    assert mem.get(alice) == before
    assert_owners_kept_apart(mem)


def test_agent_only_memories_are_still_updated_among_themselves(mem: Memory) -> None:
    """No user is an owner too: its own facts supersede each other as a user's do; and a
    user's add does not touch them either."""
    boston = derived(say(mem, "Alice", "I live in Boston.", "2023-01-01T10:00:00Z", None))
    say(mem, "Alice", "I moved to Denver.", "2023-01-03T10:00:00Z", "alice")
    assert mem.get(boston).status is MemoryStatus.ACTIVE
    result = say(mem, "Alice", "I moved to Denver.", "2023-01-04T10:00:00Z", None)
    assert (boston, HistoryEvent.INVALIDATE) in {(c.id, c.event) for c in result.results}
    assert mem.get(boston).status is MemoryStatus.SUPERSEDED
    assert_owners_kept_apart(mem)
