"""The write manager's decisions, through `Memory.add`, on a real store.

Covers exact duplicates (NOOP + reinforcement), same meaning, near-identical sentences that
are *not* the same memory (other date, negation), every decision in history with a reason,
the delegated decider (it only ever sees small integers), and extractors that fail or return
garbage (the message is kept, the failure recorded, nothing malformed stored).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.extractors.base import Candidate
from memsvc.model.records import HistoryEvent, MemoryKind, MemoryStatus, StoredMessage
from memsvc.model.settings import Settings
from memsvc.write.manager import Decision


@pytest.fixture
def mem(tmp_path: Path, embedder) -> Iterator[Memory]:
    with Memory(settings=Settings(db_path=tmp_path / "mgr.db"), embedder=embedder) as m:
        yield m


def with_decider(tmp_path: Path, embedder, decider) -> Memory:
    """A store whose manager consults `decider` on close calls (public constructor argument;
    the threshold is lowered through the settings so these paraphrases count as close)."""
    return Memory(settings=Settings(db_path=tmp_path / "dec.db", decider_consult_above=0.3),
                  embedder=embedder, decider=decider)


def say(mem: Memory, text: str, when: str = "2023-05-08T10:00:00Z", name: str = "Alice"):
    return mem.add([{"role": "user", "name": name, "content": text, "timestamp": when}],
                   user_id="alice", infer=True)


def extracted(result):
    return [c for c in result.results if c.kind is not MemoryKind.EPISODE]


def test_exact_duplicate_is_a_noop_that_reinforces(mem: Memory):
    [first] = extracted(say(mem, "I adopted a guinea pig named Oscar."))
    [again] = extracted(say(mem, "I adopted a guinea pig named Oscar.",
                            when="2023-05-09T10:00:00Z"))
    assert again.event is HistoryEvent.NOOP and again.id == first.id
    assert "exact duplicate" in (again.reason or "")
    known = mem.get(first.id)
    assert known.metadata["reinforced"] == 1
    assert known.importance > 0.5
    assert len(known.provenance.source_message_ids) == 2  # both turns back it now
    facts = mem.get_all(user_id="alice", kinds=["event", "fact"]).items
    assert len(facts) == 1


def test_duplicate_within_one_call(mem: Memory):
    result = mem.add([
        {"role": "user", "name": "Alice", "content": "I adopted a guinea pig named Oscar."},
        {"role": "user", "name": "Alice", "content": "I adopted a guinea pig named Oscar."},
    ], user_id="alice", infer=True)
    events = [c.event for c in extracted(result)]
    assert events == [HistoryEvent.ADD, HistoryEvent.NOOP]
    [record] = mem.get_all(user_id="alice", kinds=["event"]).items
    assert record.metadata["reinforced"] == 1


def test_same_meaning_is_a_noop(mem: Memory):
    say(mem, "I adopted a guinea pig named Oscar.")
    [c] = extracted(say(mem, "I adopted a guinea pig called Oscar."))
    assert c.event is HistoryEvent.NOOP
    assert "same meaning" in (c.reason or "")


def test_same_words_on_another_day_are_another_event(mem: Memory):
    say(mem, "I went to the support group yesterday.", when="2023-05-08T10:00:00Z")
    [c] = extracted(say(mem, "I went to the support group yesterday.",
                        when="2023-06-20T10:00:00Z"))
    assert c.event is HistoryEvent.ADD


def test_negation_is_not_the_same_meaning(mem: Memory):
    say(mem, "I hope the concert with Bob is fun.")
    [c] = extracted(say(mem, "I hope the concert with Bob is not fun."))
    assert c.event is HistoryEvent.ADD


def test_not_going_retires_the_plan(mem: Memory):
    [plan] = extracted(say(mem, "I am going to the concert with Bob."))
    changes = extracted(say(mem, "I am not going to the concert with Bob anymore."))
    assert [c.event for c in changes] == [HistoryEvent.INVALIDATE, HistoryEvent.ADD]
    assert changes[0].id == plan.id


def test_unrelated_statement_is_added_with_reason(mem: Memory):
    say(mem, "I live in Boston.")
    [c] = extracted(say(mem, "My sister Ana plays the violin in an orchestra."))
    assert c.event is HistoryEvent.ADD
    [entry] = mem.history(c.id)
    assert entry.event is HistoryEvent.ADD and entry.reason == "new fact from rules"


def test_every_decision_is_in_history(mem: Memory):
    [a] = extracted(say(mem, "I live in Boston."))
    say(mem, "I live in Boston.")
    say(mem, "I moved to Denver.")
    events = [h.event for h in mem.history(a.id)]
    assert events == [HistoryEvent.ADD, HistoryEvent.NOOP, HistoryEvent.INVALIDATE]
    assert all(h.reason for h in mem.history(a.id))


# -- the delegated decider ---------------------------------------------------------------


class ScriptedDecider:
    """Stands in for an LLM decider; records what it was shown."""

    name = "scripted"

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.shown: list[Sequence[tuple[int, str]]] = []

    def decide(self, candidate: str, neighbours: Sequence[tuple[int, str]]) -> Decision:
        self.shown.append(neighbours)
        return self.decision


def test_decider_sees_small_integers_and_its_choice_maps_back(tmp_path: Path, embedder):
    decider = ScriptedDecider(Decision(HistoryEvent.INVALIDATE, 1, "meeting moved"))
    with with_decider(tmp_path, embedder, decider) as mem:
        [old] = extracted(say(mem, "Alice's team meets every Monday at 9 for planning."))
        result = say(mem, "Alice's team now meets every Tuesday at 10 for planning.")
        assert decider.shown and decider.shown[0][0][0] == 1
        assert all(isinstance(i, int) and i <= 8 for i, _ in decider.shown[0])
        assert mem.get(old.id).status is MemoryStatus.SUPERSEDED
        assert any(c.event is HistoryEvent.INVALIDATE
                   and "scripted: meeting moved" in (c.reason or "") for c in result.results)


def test_decider_naming_an_unshown_id_is_ignored(tmp_path: Path, embedder):
    decider = ScriptedDecider(Decision(HistoryEvent.INVALIDATE, 99, "made up"))
    with with_decider(tmp_path, embedder, decider) as mem:
        [old] = extracted(say(mem, "Alice's team meets every Monday at 9 for planning."))
        [c] = extracted(say(mem, "Alice's team now meets every Tuesday at 10 for planning."))
        assert c.event is HistoryEvent.ADD
        assert mem.get(old.id).status is MemoryStatus.ACTIVE
        assert mem.get(c.id).metadata["decider_ignored"] == "INVALIDATE 99"


def test_failing_decider_leaves_the_rules_decision(tmp_path: Path, embedder):
    class Broken:
        name = "broken"

        def decide(self, candidate: str, neighbours: Sequence[tuple[int, str]]) -> Decision:
            raise TimeoutError("llm down")

    with with_decider(tmp_path, embedder, Broken()) as mem:
        say(mem, "Alice's team meets every Monday at 9 for planning.")
        [c] = extracted(say(mem, "Alice's team now meets every Tuesday at 10 for planning."))
        assert c.event is HistoryEvent.ADD
        assert "llm down" in mem.get(c.id).metadata["decider_error"]


# -- extractors that fail or return garbage ------------------------------------------------


class ExplodesOn:
    """Raises on any batch that contains a message with `bad` in it; fine otherwise."""

    name = "flaky"
    version = "0"

    def __init__(self, bad: str) -> None:
        self.bad = bad

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        if any(self.bad in m.content for m in messages):
            raise RuntimeError("extractor crashed")
        return [Candidate(kind=MemoryKind.FACT, text=f"noted: {m.content}",
                          source_message_ids=[m.id]) for m in messages]


def test_failing_extractor_keeps_every_message(tmp_path: Path, embedder):
    with Memory(settings=Settings(db_path=tmp_path / "f.db"), embedder=embedder,
                extractor=ExplodesOn("BOOM")) as m:
        result = m.add(["a fine first message", "BOOM goes this one", "a fine last one"],
                       user_id="u", infer=True)
        assert len(result.message_ids) == 3
        messages = m.messages(user_id="u")
        assert [x.content for x in messages] == [
            "a fine first message", "BOOM goes this one", "a fine last one"]
        failed = [x for x in messages if "extraction" in x.metadata]
        assert [x.content for x in failed] == ["BOOM goes this one"]
        assert failed[0].metadata["extraction"]["retry"] is True
        episodes = m.get_all(user_id="u", kinds=["episode"]).items
        assert len(episodes) == 3
        marked = [e for e in episodes if "extraction" in e.metadata]
        assert len(marked) == 1
        assert "extractor crashed" in (m.history(marked[0].id)[-1].reason or "")
        facts = sorted(r.text for r in m.get_all(user_id="u", kinds=["fact"]).items)
        assert facts == ["noted: a fine first message", "noted: a fine last one"]
        retry = m.get_all(user_id="u", filters={"extraction.retry": True}).items
        assert [e.id for e in retry] == [marked[0].id]


class Garbage:
    name = "garbage"
    version = "0"

    def extract(self, messages: Sequence[StoredMessage]) -> list[object]:
        m = messages[0]
        return [
            Candidate(kind=MemoryKind.FACT, text="   ", source_message_ids=[m.id]),
            Candidate(kind=MemoryKind.FACT, text="points at nothing",
                      source_message_ids=["not-a-message"]),
            Candidate(kind=MemoryKind.EPISODE, text="fake episode", source_message_ids=[m.id]),
            Candidate(kind=MemoryKind.FACT, text="x" * 5000, source_message_ids=[m.id]),
            "not even a candidate",
            Candidate(kind=MemoryKind.FACT, text="the one good fact", source_message_ids=[m.id]),
        ]


def test_garbage_candidates_are_dropped_and_recorded(tmp_path: Path, embedder):
    with Memory(settings=Settings(db_path=tmp_path / "g.db"), embedder=embedder,
                extractor=Garbage()) as m:
        m.add("the message itself", user_id="u", infer=True)
        kept = m.get_all(user_id="u").items
        assert sorted(r.text for r in kept) == ["the one good fact", "user: the message itself"]
        [message] = m.messages(user_id="u")
        assert "invalid candidate dropped" in message.metadata["extraction"]["error"]


def test_change_within_one_call_supersedes_the_pending_fact(mem: Memory):
    result = mem.add([
        {"role": "user", "name": "Alice", "content": "I live in Boston.",
         "timestamp": "2022-01-01T00:00:00Z"},
        {"role": "user", "name": "Alice", "content": "I moved to Denver.",
         "timestamp": "2023-01-01T00:00:00Z"},
        {"role": "user", "name": "Alice", "content": "I live in Boston.",
         "timestamp": "2023-01-02T00:00:00Z"},
    ], user_id="alice", infer=True)
    events = [c.event for c in extracted(result)]
    assert events == [HistoryEvent.ADD, HistoryEvent.INVALIDATE, HistoryEvent.ADD,
                      HistoryEvent.INVALIDATE, HistoryEvent.ADD]
    active = mem.get_all(user_id="alice", filters={"predicate": "lives_in"}).items
    assert [r.object for r in active] == ["Boston"]


def test_change_and_change_back_in_one_call_against_a_stored_fact(mem: Memory):
    say(mem, "I live in Boston.", when="2022-01-01T00:00:00Z")
    result = mem.add([
        {"role": "user", "name": "Alice", "content": "I moved to Denver.",
         "timestamp": "2023-01-01T00:00:00Z"},
        {"role": "user", "name": "Alice", "content": "I live in Boston.",
         "timestamp": "2023-01-02T00:00:00Z"},
    ], user_id="alice", infer=True)
    assert HistoryEvent.NOOP not in [c.event for c in extracted(result)]
    active = mem.get_all(user_id="alice", filters={"predicate": "lives_in"}).items
    assert [r.object for r in active] == ["Boston"]
    assert active[0].valid_from is not None and active[0].valid_from.year == 2023
