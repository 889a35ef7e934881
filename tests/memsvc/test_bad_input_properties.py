"""Property tests of the rule issue 11 set: any input either succeeds and reads back, or is
refused with a typed `MemsvcError` and changes nothing.

Hostile strings (lone surrogates, control characters, huge), numbers (huge ints, NaN,
Infinity), deep and wide metadata and filters, timestamps at and beyond the calendar's
edges, and ids go through the real `Memory` on a temp store, on each backend (a SQLite file
and a PostgreSQL schema: `store_location`). After a success every read of
the user (get, get_all, search, messages, export) must work and serialize as JSON, as a
REST reply would; after a refusal the store must be exactly as before and the error itself
must be sendable as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from backend_examples import on_backends
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from memsvc import Memory, MemsvcError
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.filters import NUMBER_FIELDS, TEXT_FIELDS, TIME_FIELDS
from memsvc.model.records import AddResult, StoredMessage
from memsvc.model.settings import Settings

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the worktree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# SQLite / PostgreSQL: every example is a few writes and all the reads of a user
EXAMPLES = {"sqlite": 40, "postgres": 15}

# -- strategies ---------------------------------------------------------------------------

ODD_CHARACTERS = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x01", "\x1f", "\x7f",
                  "\x85", "\u2028", "\ufeff", "\ufffe", "\uffff", "\U0010ffff", "é", "🎉",
                  " ", "\t", "\n", ".", "$", "'", '"', "[", "\\"]
hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=20),  # surrogates included
    st.text(st.sampled_from(ODD_CHARACTERS), min_size=1, max_size=8),
    st.integers(0, 80_000).map(lambda n: "y" * n),
)
huge_int = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400]),
)
any_float = st.floats(allow_nan=True, allow_infinity=True)
scalar = st.one_of(st.none(), st.booleans(), huge_int, any_float, hostile_text,
                   st.binary(max_size=3), st.just(object()))
key = st.one_of(hostile_text, st.integers(-3, 3), st.just(""))


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"n": value}
    return value


def _wide(width: int) -> dict[str, Any]:
    return {f"k{i}": i for i in range(width)}


metadata = st.one_of(
    st.dictionaries(key, st.recursive(
        scalar, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(key, kids, max_size=3),
        max_leaves=8,
    ), max_size=4),
    st.integers(0, 1000).map(_nested),
    st.integers(0, 20_000).map(_wide),
    st.sampled_from([None, [], "text", 3]),
)

offsets = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                            max_value=timedelta(hours=23, minutes=59)))
moments = st.datetimes(timezones=st.none() | offsets)  # years 1..9999, naive or any offset
timestamp = st.one_of(
    moments,
    moments.map(lambda d: d.isoformat()),
    moments.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01", "0000-01-01",
                     "10000-01-01", "2024-02-30", "24:00", "", "now"]),
    huge_int, any_float, hostile_text, st.booleans(),
)

FIELDS = [*sorted(TIME_FIELDS | NUMBER_FIELDS | TEXT_FIELDS), "topic", "metadata.topic"]
OPERATORS = ["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "like"]
operand = st.one_of(scalar, timestamp, st.lists(st.one_of(scalar, timestamp), max_size=4))
condition = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), hostile_text),
    st.one_of(operand, st.dictionaries(st.sampled_from(OPERATORS), operand, max_size=2)),
    min_size=1, max_size=2,
)


def _deep_filter(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"topic": "life"}
    for _ in range(depth):
        value = {"NOT": value}
    return value


filters = st.one_of(
    st.recursive(condition, lambda kids: st.one_of(
        st.builds(lambda xs: {"AND": xs}, st.lists(kids, max_size=3)),
        st.builds(lambda xs: {"OR": xs}, st.lists(kids, max_size=3)),
        st.builds(lambda x: {"NOT": x}, kids),
    ), max_leaves=6),
    st.integers(0, 1000).map(_deep_filter),
    st.integers(1, 2000).map(lambda n: {"OR": [{"topic": i} for i in range(n)]}),
    st.integers(1, 40_000).map(lambda n: {"topic": {"in": list(range(n))}}),
)
ident = st.one_of(st.none(), hostile_text, st.just("u1"), st.integers(0, 3))

# -- the rule -----------------------------------------------------------------------------


def snapshot(memory: Memory) -> dict[str, Any]:
    stats = memory.stats().model_dump()
    stats.pop("size_bytes")
    return {
        "records": [r.model_dump() for r in memory.export()],
        "messages": [m.model_dump() for m in memory.messages(user_id="u1", limit=100_000)],
        "stats": stats,
    }


def reads_back(memory: Memory, user_id: str) -> None:
    """Every read of `user_id` works, and its reply serializes as JSON."""
    page = memory.get_all(user_id=user_id, include_inactive=True, limit=1000)
    for item in page.items:
        memory.get(item.id).model_dump_json()
        for entry in memory.history(item.id):
            entry.model_dump_json()
    page.model_dump_json()
    memory.search("Boston jazz", user_id=user_id).model_dump_json()
    for message in memory.messages(user_id=user_id):
        message.model_dump_json()
    for record in memory.export(user_id=user_id):
        record.model_dump_json()
    for record in memory.export():
        record.model_dump_json()


REFUSED = object()


def succeeds_or_changes_nothing(memory: Memory, call: Callable[[], Any]) -> Any:
    """`call()`'s result, or `REFUSED` when it raised a typed error that changed nothing."""
    before = snapshot(memory)
    try:
        result = call()
    except MemsvcError as error:
        event(f"refused: {type(error).__name__}")
        assert error.message
        json.dumps(error.to_dict()).encode("utf-8")  # an error reply can be sent
        assert snapshot(memory) == before
        return REFUSED
    event("succeeded")
    return result


def message(memory: Memory, result: AddResult, user_id: str = "u1") -> StoredMessage:
    """The message an `add` stored, read back from the store."""
    found = [m for m in memory.messages(user_id=user_id, limit=100_000)
             if m.id == result.message_ids[-1]]
    assert len(found) == 1
    return found[0]


@pytest.fixture
def memory(store_location: str, embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    """tests/conftest.py's `memory`, on each backend."""
    m = Memory(settings=Settings(db_path=store_location), embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def seeded(memory: Memory) -> Memory:
    memory.add([{"role": "user", "content": "I live in Boston"},
                {"role": "user", "content": "I like jazz"}],
               user_id="u1", metadata={"topic": "life"})
    return memory


# -- properties ---------------------------------------------------------------------------


@on_backends(PROPERTY, EXAMPLES, value=metadata)
def test_metadata_round_trips_or_is_refused(seeded: Memory, value: Any) -> None:
    expected = {} if value is None else value
    added = succeeds_or_changes_nothing(
        seeded, lambda: seeded.add("Boston has metadata", user_id="u1", metadata=value)
    )
    if added is not REFUSED:
        reads_back(seeded, "u1")
        assert message(seeded, added).metadata == expected
    first = seeded.get_all(user_id="u1").items[0].id
    if succeeds_or_changes_nothing(
        seeded, lambda: seeded.update(first, metadata=value)
    ) is not REFUSED:
        reads_back(seeded, "u1")
        stored = seeded.get(first).metadata
        assert json.dumps(stored, sort_keys=True) == json.dumps(expected, sort_keys=True)


@on_backends(PROPERTY, EXAMPLES, when=timestamp, message_time=timestamp)
def test_timestamps_round_trip_or_are_refused(seeded: Memory, when: Any,
                                              message_time: Any) -> None:
    added = succeeds_or_changes_nothing(
        seeded, lambda: seeded.add("Boston at some time", user_id="u1", timestamp=when)
    )
    if added is not REFUSED:
        reads_back(seeded, "u1")
        if isinstance(when, datetime):
            instant = when if when.utcoffset() is not None else when.replace(tzinfo=UTC)
            assert message(seeded, added).timestamp == instant
    added = succeeds_or_changes_nothing(seeded, lambda: seeded.add(
        [{"role": "user", "content": "jazz then", "timestamp": message_time}], user_id="u1",
    ))
    if added is not REFUSED:
        reads_back(seeded, "u1")
        assert message(seeded, added).content == "jazz then"
    for call in (
        lambda: seeded.search("Boston", user_id="u1", as_of=when),
        lambda: seeded.search("what did I do last year", user_id="u1", now=when),
        lambda: seeded.get_all(user_id="u1", filters={"created_at": {"lte": when}}),
        lambda: seeded.get_all(user_id="u1", filters={"valid_from": {"in": [when]}}),
    ):
        succeeds_or_changes_nothing(seeded, call)
    reads_back(seeded, "u1")


@on_backends(PROPERTY, EXAMPLES, raw=filters)
def test_filters_run_or_are_refused(seeded: Memory, raw: Any) -> None:
    succeeds_or_changes_nothing(
        seeded, lambda: seeded.search("Boston", user_id="u1", filters=raw).model_dump_json()
    )
    succeeds_or_changes_nothing(
        seeded, lambda: seeded.get_all(user_id="u1", filters=raw).model_dump_json()
    )
    reads_back(seeded, "u1")


@on_backends(PROPERTY, EXAMPLES, user=ident, agent=ident, session=ident, name=ident,
             text=hostile_text)
def test_ids_and_text_round_trip_or_are_refused(
    seeded: Memory, user: Any, agent: Any, session: Any, name: Any, text: str
) -> None:
    def add() -> None:
        seeded.add([{"role": "user", "content": text, "name": name}], user_id=user,
                   agent_id=agent, session_id=session)

    if succeeds_or_changes_nothing(seeded, add) is not REFUSED:
        if isinstance(user, str):
            reads_back(seeded, user.strip())
        stored = [m.content for m in seeded.messages(
            user_id=user, agent_id=agent, session_id=session, limit=100_000)]
        assert text.strip() in stored
    for call in (
        lambda: seeded.search(text, user_id=user, agent_id=agent, session_id=session),
        lambda: seeded.get_all(user_id=user, agent_id=agent, cursor=name),
        lambda: seeded.messages(user_id=user, session_id=session),
    ):
        succeeds_or_changes_nothing(seeded, call)
    reads_back(seeded, "u1")
