"""The temporal channel: time in the question, resolved against the question's own date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc import Memory
from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.temporal import TemporalChannel
from memsvc.storage.base import VisibilityQuery, WriteBatch
from memsvc.storage.sqlite import SQLiteStore

U1 = Scope(user_id="u1")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "t.db", embedding_dim=4)
    yield s
    s.close()


def put(store: SQLiteStore, text: str, valid_from: str, valid_to: str | None = None,
        kind: MemoryKind = MemoryKind.EVENT, **extra: Any) -> str:
    now = at("2024-01-01")
    rec = MemoryRecord(
        id=new_id(), scope=U1, kind=kind, text=text, created_at=now, updated_at=now,
        valid_from=at(valid_from), valid_to=at(valid_to) if valid_to else None,
        content_hash=content_hash(kind.value, text), **extra,
    )
    store.apply(WriteBatch(inserts=[(rec, np.ones(4, dtype=np.float32))]))
    return rec.id


def ask(store: SQLiteStore, text: str, now: str | None, k: int = 10,
        filters: dict[str, Any] | None = None) -> list[str]:
    channel = TemporalChannel(store, clock=lambda: at("2030-01-01"))
    visibility = VisibilityQuery(scope=U1, filters=parse_filters(filters))
    query = ChannelQuery(text, visibility, now=at(now) if now else None)
    return [h.memory_id for h in channel.search(query, k)]


@pytest.fixture
def diary(store: SQLiteStore) -> dict[str, str]:
    return {
        "camp": put(store, "Melanie went camping in the mountains", "2023-05-24"),
        "race": put(store, "Melanie ran a charity race", "2023-05-20"),
        "pottery": put(store, "Caroline started a pottery class", "2022-03-10"),
        "may22": put(store, "Caroline moved to a new flat", "2022-05-15"),
        "job": put(store, "Caroline worked at the bakery", "2021-01-01", "2022-06-30",
                   kind=MemoryKind.FACT),
    }


def test_yesterday_is_resolved_against_the_question_date(
    store: SQLiteStore, diary: dict[str, str]
) -> None:
    assert ask(store, "What did Melanie do yesterday?", now="2023-05-25T09:00:00") == [
        diary["camp"]
    ]
    # The same words asked on another day name another day.
    assert ask(store, "What did Melanie do yesterday?", now="2023-05-21T09:00:00") == [
        diary["race"]
    ]


def test_a_year_returns_what_overlaps_it_words_first(
    store: SQLiteStore, diary: dict[str, str]
) -> None:
    hits = ask(store, "What pottery did Caroline do in 2022?", now="2024-01-01")
    assert hits[0] == diary["pottery"]  # in 2022 and shares words
    assert set(hits) == {diary["pottery"], diary["may22"], diary["job"]}  # job spans into 2022
    assert diary["camp"] not in hits


def test_last_may_depends_on_when_it_is_asked(store: SQLiteStore, diary: dict[str, str]) -> None:
    asked_2022 = ask(store, "What happened last month?", now="2022-06-10")
    assert set(asked_2022) == {diary["may22"], diary["job"]}  # the job spans May 2022 too
    asked_2023 = ask(store, "What happened last month?", now="2023-06-10")
    assert set(asked_2023) == {diary["camp"], diary["race"]}


def test_when_questions_return_dated_memories_sharing_words(store: SQLiteStore) -> None:
    dated = put(store, "Caroline went to the support group on 7 May 2023", "2023-05-07",
                metadata={"time": [{"label": "7 May 2023"}]})
    put(store, "Caroline likes the support group", "2023-05-08", kind=MemoryKind.PREFERENCE)
    assert ask(store, "When did Caroline go to the support group?", now=None) == [dated]


def test_no_time_no_hits(store: SQLiteStore, diary: dict[str, str]) -> None:
    assert ask(store, "What does Caroline like?", now="2023-06-01") == []


def test_caller_filters_still_apply(store: SQLiteStore, diary: dict[str, str]) -> None:
    hits = ask(store, "What happened in 2022?", now="2024-01-01", filters={"kind": "fact"})
    assert hits == [diary["job"]]


def test_without_a_reference_the_clock_is_used(store: SQLiteStore, diary: dict[str, str]) -> None:
    assert ask(store, "What happened last year?", now=None) == []  # clock says 2030


def test_search_now_argument_reaches_the_channel(memory: Memory) -> None:
    memory.add(
        [{"role": "user", "name": "Melanie", "content": "I went camping yesterday."}],
        user_id="u1", timestamp="2023-05-25T10:00:00Z", infer=True,
    )
    memory.add(
        [{"role": "user", "name": "Melanie", "content": "I painted a lake today."}],
        user_id="u1", timestamp="2023-08-02T10:00:00Z", infer=True,
    )
    response = memory.search("What did Melanie do in May 2023?", user_id="u1",
                             now="2023-09-01T00:00:00Z")
    temporal = [h for h in response.results if "temporal" in h.channel_ranks]
    assert temporal
    assert all("camping" in h.memory.text for h in temporal)
    assert response.results[0].memory.text.count("camping") == 1


def test_bad_now_is_refused_before_searching(memory: Memory) -> None:
    from memsvc import InvalidTimestampError

    with pytest.raises(InvalidTimestampError):
        memory.search("anything", user_id="u1", now="not a date")
