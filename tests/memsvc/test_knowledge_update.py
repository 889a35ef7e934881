"""Knowledge that changes: current answers by default, the old ones with `as_of`.

Each story is told through `Memory.add(..., infer=True)` with the default rule-based
extractor, on a real SQLite store, one turn at a time with the turn's own timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memsvc import Memory
from memsvc.model.records import HistoryEvent, MemoryStatus
from memsvc.model.settings import Settings

FACT_KINDS = ["fact", "preference", "event"]


@pytest.fixture
def mem(tmp_path: Path, embedder) -> Iterator[Memory]:
    with Memory(settings=Settings(db_path=tmp_path / "ku.db"), embedder=embedder) as m:
        yield m


def say(mem: Memory, text: str, when: str, user: str = "alice", name: str = "Alice"):
    return mem.add([{"role": "user", "name": name, "content": text, "timestamp": when}],
                   user_id=user, infer=True)


def top(mem: Memory, query: str, user: str = "alice", as_of: str | None = None) -> list[str]:
    hits = mem.search(query, user_id=user, kinds=FACT_KINDS, limit=3, as_of=as_of).results
    return [h.memory.text for h in hits]


def test_a_move_supersedes_the_old_city(mem: Memory):
    say(mem, "I live in Boston with my two cats.", "2022-03-01T09:00:00Z")
    result = say(mem, "Big news: I moved to Denver last week!", "2023-06-10T09:00:00Z")
    assert [c.event for c in result.results if c.kind.value != "episode"] == [
        HistoryEvent.INVALIDATE, HistoryEvent.ADD
    ]
    now = top(mem, "Where does Alice live?")
    assert "Denver" in now[0]
    assert not any("Boston" in t for t in now)
    before = top(mem, "Where does Alice live?", as_of="2022-12-01T00:00:00Z")
    assert "Boston" in before[0]
    assert not any("Denver" in t for t in before)


def test_invalidated_memory_links_both_ways_and_keeps_history(mem: Memory):
    first = say(mem, "I live in Boston.", "2022-03-01T09:00:00Z")
    old_id = next(c.id for c in first.results if c.kind.value == "fact")
    second = say(mem, "I moved to Denver.", "2023-06-10T09:00:00Z")
    new_id = next(c.id for c in second.results
                  if c.event is HistoryEvent.ADD and c.kind.value != "episode")
    old, new = mem.get(old_id), mem.get(new_id)
    assert old.status is MemoryStatus.SUPERSEDED
    assert old.superseded_by == new_id
    assert old.valid_to == new.valid_from
    assert new.metadata["supersedes"] == [old_id]
    events = [(h.event, h.reason) for h in mem.history(old_id)]
    assert events[0][0] is HistoryEvent.ADD
    assert events[-1][0] is HistoryEvent.INVALIDATE
    assert "lives_in changed from 'Boston' to 'Denver'" in (events[-1][1] or "")


def test_a_job_change(mem: Memory):
    say(mem, "I work at Initech as an accountant.", "2021-01-05T09:00:00Z")
    say(mem, "I started a new job at Globex last month!", "2023-02-20T09:00:00Z")
    assert "Globex" in top(mem, "Where does Alice work?")[0]
    assert "Initech" in top(mem, "Where does Alice work?", as_of="2022-06-01T00:00:00Z")[0]


def test_a_changed_preference(mem: Memory):
    say(mem, "I really love sushi, I eat it every week.", "2022-01-10T12:00:00Z")
    say(mem, "Honestly I'm not into sushi anymore.", "2023-04-02T12:00:00Z")
    now = top(mem, "Does Alice like sushi?")
    assert "not into sushi" in now[0]
    assert not any("loves sushi" in t for t in now)
    then = top(mem, "Does Alice like sushi?", as_of="2022-06-01T00:00:00Z")
    assert "loves sushi" in then[0]


def test_a_changed_favourite(mem: Memory):
    say(mem, "My favorite color is green.", "2022-01-10T12:00:00Z")
    say(mem, "My favorite color is orange these days.", "2023-01-10T12:00:00Z")
    assert "orange" in top(mem, "What is Alice's favorite color?")[0]
    assert "green" in top(mem, "What is Alice's favorite color?", as_of="2022-05-01")[0]


def test_a_cancelled_plan(mem: Memory):
    say(mem, "I'm planning a trip to Paris in June.", "2023-03-01T12:00:00Z")
    say(mem, "We had to cancel our trip to Paris, work is too busy.", "2023-04-15T12:00:00Z")
    now = top(mem, "Is Alice going to Paris?")
    assert "cancel" in now[0]
    assert not any("planning a trip" in t for t in now)
    then = top(mem, "Is Alice going to Paris?", as_of="2023-04-01T00:00:00Z")
    assert "planning a trip to Paris" in then[0]


def test_unrelated_people_do_not_supersede_each_other(mem: Memory):
    say(mem, "I live in Boston.", "2022-03-01T09:00:00Z")
    say(mem, "I live in Denver.", "2023-03-01T09:00:00Z", user="bob", name="Bob")
    assert "Boston" in top(mem, "Where does Alice live?")[0]
    assert "Denver" in top(mem, "Where does Bob live?", user="bob")[0]


def test_facts_update_across_sessions_of_the_same_user(mem: Memory):
    mem.add([{"role": "user", "name": "Alice", "content": "I live in Boston.",
              "timestamp": "2022-03-01T09:00:00Z"}], user_id="alice", session_id="s1", infer=True)
    mem.add([{"role": "user", "name": "Alice", "content": "I moved to Denver.",
              "timestamp": "2023-03-01T09:00:00Z"}], user_id="alice", session_id="s2", infer=True)
    assert "Denver" in top(mem, "Where does Alice live?")[0]
    assert not any("Boston" in t for t in top(mem, "Where does Alice live?"))


def test_learning_late_about_an_older_value_does_not_retire_the_current_one(mem: Memory):
    say(mem, "I live in Denver now.", "2023-06-01T09:00:00Z")
    say(mem, "I live in Boston.", "2021-06-01T09:00:00Z")  # an old message imported late
    assert "Denver" in top(mem, "Where does Alice live?")[0]
    assert "Boston" in top(mem, "Where does Alice live?", as_of="2022-01-01")[0]


def test_moving_back_restores_the_old_city_as_a_new_fact(mem: Memory):
    say(mem, "I live in Boston.", "2020-01-01T09:00:00Z")
    say(mem, "I moved to Denver.", "2021-01-01T09:00:00Z")
    say(mem, "I moved back to Boston.", "2022-01-01T09:00:00Z")
    assert "Boston" in top(mem, "Where does Alice live?")[0]
    assert "Denver" in top(mem, "Where does Alice live?", as_of="2021-06-01")[0]
    assert "Boston" in top(mem, "Where does Alice live?", as_of="2020-06-01")[0]
    lives = mem.get_all(user_id="alice", include_inactive=True,
                        filters={"predicate": "lives_in"}).items
    assert sorted(r.status.value for r in lives) == ["active", "superseded", "superseded"]
