"""Issue 11: inputs an adversarial probe got stored unreadable, or turned into 500s.

The rule each test checks: nothing is stored that cannot be read back, and a refused call
is refused with a typed error and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from memsvc import InvalidFilterError, InvalidInputError, InvalidTimestampError, Memory
from memsvc.model.errors import MemsvcError
from memsvc.model.filters import MAX_CONDITIONS, MAX_DEPTH, MAX_IN_VALUES
from memsvc.model.ids import content_hash


def _observable(memory: Memory) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in memory.export()]


def _reads_back(memory: Memory, user_id: str = "u1") -> None:
    """Every read of the user works, and what it returns serializes as JSON (a REST reply)."""
    page = memory.get_all(user_id=user_id, include_inactive=True)
    for item in page.items:
        memory.get(item.id).model_dump_json()
    memory.search("Boston", user_id=user_id).model_dump_json()
    for message in memory.messages(user_id=user_id):
        message.model_dump_json()
    for record in memory.export(user_id=user_id):
        record.model_dump_json()


@pytest.fixture
def seeded(memory: Memory) -> Memory:
    memory.add("I live in Boston", user_id="u1", metadata={"topic": "life"})
    return memory


# -- H1: years below 1000 and times that leave the calendar once converted to UTC ---------


@pytest.mark.parametrize(
    "timestamp",
    ["0005-06-01T00:00:00Z", "0001-01-01T00:00:00Z", "0999-12-31T23:59:59.999999+00:00",
     "9999-12-31T23:59:59.999999Z", -62135596800],
)
def test_early_and_late_years_are_stored_readable(seeded: Memory, timestamp: Any) -> None:
    seeded.add("Boston again, long ago", user_id="u1", timestamp=timestamp)
    _reads_back(seeded)
    times = {m.timestamp for m in seeded.messages(user_id="u1")}
    from memsvc.model.validation import parse_timestamp

    assert parse_timestamp(timestamp) in times


def test_an_old_episode_keeps_its_year_through_export(seeded: Memory) -> None:
    seeded.add("Founding of the village", user_id="u1", timestamp="0005-06-01T00:00:00Z")
    starts = {r.valid_from for r in seeded.export(user_id="u1")}
    assert datetime(5, 6, 1, tzinfo=UTC) in starts


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.add("x", user_id="u1", timestamp="0001-01-01T00:00:00+01:00"),
        lambda m: m.add("x", user_id="u1", timestamp="9999-12-31T23:00:00-02:00"),
        lambda m: m.add([{"content": "x", "timestamp": "0001-01-01T00:30:00+01:00"}],
                        user_id="u1"),
        lambda m: m.search("x", user_id="u1", as_of="0001-01-01T00:00:00+01:00"),
        lambda m: m.search("x", user_id="u1", now="9999-12-31T23:00:00-02:00"),
        lambda m: m.get_all(user_id="u1", filters={"created_at": {"lt": 1e20}}),
    ],
)
def test_times_outside_the_utc_calendar_are_typed_errors(
    seeded: Memory, call: Callable[[Memory], object]
) -> None:
    before = _observable(seeded)
    with pytest.raises(InvalidInputError) as info:
        call(seeded)
    assert isinstance(info.value, InvalidTimestampError | InvalidFilterError)
    assert _observable(seeded) == before


def test_a_far_offset_filter_is_a_filter_error_naming_the_field(seeded: Memory) -> None:
    with pytest.raises(InvalidFilterError) as info:
        seeded.search("x", user_id="u1",
                      filters={"valid_from": {"gte": "0001-01-01T00:00:00+01:00"}})
    assert info.value.field == "filters.valid_from"


# -- M3: metadata that JSON cannot carry, or that SQLite/pydantic cannot read back ----------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"k": "\ud800"}, "metadata.k"),
        ({"\udcff": 1}, "metadata"),
        ({"k": ["ok", {"deep": "bad \udfff"}]}, "metadata.k[1].deep"),
        ({"k": float("nan")}, "metadata.k"),
        ({"k": float("inf")}, "metadata.k"),
        ({"k": [1, -float("inf")]}, "metadata.k[1]"),
        ({"k": 2**63}, "metadata.k"),
        ({"k": -(2**63) - 1}, "metadata.k"),
        ({"k": {1, 2}}, "metadata.k"),
        ({"k": b"bytes"}, "metadata.k"),
        ({"k": datetime(2020, 1, 1)}, "metadata.k"),
        ({"k": object()}, "metadata.k"),
        ({"k": {3: "int key"}}, "metadata.k"),
        ({"k": {"": "empty key"}}, "metadata.k"),
        ({"k": "x" * 70_000}, "metadata"),
        (_nested(33), None),
        (_nested(900), None),
    ],
)
def test_metadata_that_cannot_round_trip_is_refused(
    seeded: Memory, metadata: dict[str, Any], field: str | None
) -> None:
    before = _observable(seeded)
    for call in (
        lambda: seeded.add("hello", user_id="u1", metadata=metadata),
        lambda: seeded.update(seeded.get_all(user_id="u1").items[0].id, metadata=metadata),
    ):
        with pytest.raises(InvalidInputError) as info:
            call()
        if field is not None:
            assert info.value.field == field
        assert info.value.field is None or info.value.field.startswith("metadata")
        # the error itself must be sendable as JSON
        info.value.message.encode("utf-8")
        (info.value.field or "").encode("utf-8")
    assert _observable(seeded) == before
    _reads_back(seeded)


def test_metadata_at_the_limits_is_stored_and_reads_back(seeded: Memory) -> None:
    metadata = {
        "deep": _nested(31),
        "ints": [2**63 - 1, -(2**63)],
        "floats": [0.0, -0.0, 1e308, -5e-324],
        "text": "tab\t, newline\n, NUL \x00, emoji 🎉, U+2028 \u2028, private \ue000",
        "none": None,
        "flag": True,
    }
    seeded.add("hello with metadata", user_id="u1", metadata=metadata)
    _reads_back(seeded)
    stored = [r.metadata for r in seeded.export(user_id="u1") if "with metadata" in r.text]
    assert [{key: found[key] for key in metadata} for found in stored] == [metadata]


# -- M4: filters and ids that reached SQLite unchecked ------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"k": 2**63},
        {"k": {"in": [1, -(2**63) - 1]}},
        {"access_count": {"gt": 2**64}},
        {"k": "\ud800"},
        {"kind": "\udcff"},
        {"k": {"in": ["a", "\ud800"]}},
        {"confidence": {"gt": float("nan")}},
        {"k": float("inf")},
        {"OR": [{"k": i} for i in range(1500)]},
        {"AND": [{"OR": [{"k": i}, {"j": i}]} for i in range(300)]},
        {"k": {"in": list(range(5000))}},
    ],
)
def test_hostile_filters_are_typed_errors(seeded: Memory, filters: dict[str, Any]) -> None:
    for call in (
        lambda: seeded.search("Boston", user_id="u1", filters=filters),
        lambda: seeded.get_all(user_id="u1", filters=filters),
    ):
        with pytest.raises(InvalidFilterError) as info:
            call()
        info.value.message.encode("utf-8")
        (info.value.field or "").encode("utf-8")


def _deep_filter(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"k": 1}
    for _ in range(depth):
        value = {"NOT": value}
    return value


@pytest.mark.parametrize("depth", [9, 1000, 100_000])
def test_deep_filters_fail_at_the_depth_check(seeded: Memory, depth: int) -> None:
    with pytest.raises(InvalidFilterError, match="deeper"):
        seeded.search("Boston", user_id="u1", filters=_deep_filter(depth))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.add("hi", user_id="u\ud800"),
        lambda m: m.add("hi", user_id="u1", agent_id="\udcff"),
        lambda m: m.add("hi", user_id="u1", session_id="s\udfff"),
        lambda m: m.add([{"content": "hi", "name": "\udcff"}], user_id="u1"),
        lambda m: m.search("Boston", user_id="\ud800"),
        lambda m: m.get_all(user_id="u1", cursor="\ud800"),
        lambda m: m.delete_all(user_id="\ud800"),
    ],
)
def test_surrogates_in_ids_are_typed_errors(
    seeded: Memory, call: Callable[[Memory], object]
) -> None:
    before = _observable(seeded)
    with pytest.raises(MemsvcError) as info:
        call(seeded)
    assert isinstance(info.value, InvalidInputError)
    info.value.message.encode("utf-8")
    assert _observable(seeded) == before


def test_the_largest_filter_allowed_runs_in_sqlite(seeded: Memory) -> None:
    """The limits sit below SQLite's own (expression depth 1000, 32766 bound values)."""
    alternatives: list[dict[str, Any]] = [{"n": i} for i in range(MAX_CONDITIONS - 2)]
    alternatives.append({"code": {"in": list(range(MAX_IN_VALUES))}})
    alternatives.append({"topic": "life"})
    filters: dict[str, Any] = {"OR": alternatives}
    for _ in range(MAX_DEPTH // 2 - 1):  # the OR's members sit at depth MAX_DEPTH - 1
        filters = {"NOT": {"NOT": filters}}
    found = seeded.search("Boston", user_id="u1", filters=filters)
    assert [r.memory.metadata["topic"] for r in found.results] == ["life"]
    assert seeded.get_all(user_id="u1", filters=filters).total == 1


# -- import: whole records from anyone's JSON get every check `add` applies ---------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metadata": {"k": "\ud800"}}, "[0].metadata.k"),
        ({"metadata": {"k": float("nan")}}, "[0].metadata.k"),
        ({"subject": "\ud800"}, "[0].subject"),
        ({"entities": ["ok", "\udfff"]}, "[0].entities[1]"),
        ({"id": "\ud800"}, "[0].id"),
        ({"scope": {"user_id": "u\ud800"}}, "[0].scope.user_id"),
        ({"scope": {"agent_id": " "}}, "[0].scope.agent_id"),
        ({"scope": {}}, "[0].scope"),
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "[0].created_at"),
        ({"importance": float("nan")}, "[0].importance"),
        ({"access_count": 2**63}, "[0].access_count"),
        ({"provenance": {"source_message_ids": ["\udcff"]}},
         "[0].provenance.source_message_ids[0]"),
        ({"text": "x" * 40_000}, "[0].text"),
    ],
)
def test_clean_record_refuses_what_import_could_not_read_back(
    seeded: Memory, change: dict[str, Any], field: str
) -> None:
    from memsvc.model.records import MemoryRecord
    from memsvc.model.validation import clean_record

    exported = next(iter(seeded.export())).model_dump()
    record = MemoryRecord.model_validate({**exported, **change})
    with pytest.raises(InvalidInputError) as info:
        clean_record(record, max_bytes=32_000, field="[0]")
    assert info.value.field == field
    info.value.message.encode("utf-8")


def test_clean_record_keeps_a_good_record_and_normalises_its_times(seeded: Memory) -> None:
    from datetime import timedelta, timezone

    from memsvc.model.records import MemoryRecord
    from memsvc.model.validation import clean_record

    exported = next(iter(seeded.export()))
    assert clean_record(exported, max_bytes=32_000) == exported
    local = exported.created_at.astimezone(timezone(timedelta(hours=-5)))
    shifted = MemoryRecord.model_validate({**exported.model_dump(), "created_at": local,
                                           "valid_from": datetime(5, 6, 1)})
    cleaned = clean_record(shifted, max_bytes=32_000)
    assert cleaned.created_at == exported.created_at and cleaned.created_at.tzinfo is UTC
    assert cleaned.valid_from == datetime(5, 6, 1, tzinfo=UTC)


def test_consolidating_a_turn_dated_at_the_calendars_end_works(memory: Memory) -> None:
    """A day or month summary of 9999-12-31 must not end past the calendar (OverflowError)."""
    memory.add("I moved to Denver", user_id="u-end", session_id="s1",
               timestamp="9999-12-31T23:59:59.999999Z", infer=True)
    memory.consolidate(user_id="u-end")
    assert memory.get_all(user_id="u-end").items


@pytest.mark.parametrize("op", ["get", "history", "update", "delete"])
def test_a_surrogate_memory_id_is_a_typed_error(seeded: Memory, op: str) -> None:
    before = [r.model_dump() for r in seeded.export()]
    call: dict[str, Callable[[], Any]] = {
        "get": lambda: seeded.get("mem\ud800"),
        "history": lambda: seeded.history("mem\ud800"),
        "update": lambda: seeded.update("mem\ud800", "new text"),
        "delete": lambda: seeded.delete("mem\ud800"),
    }
    with pytest.raises(InvalidInputError):
        call[op]()
    assert [r.model_dump() for r in seeded.export()] == before


def test_import_checks_every_field_and_recomputes_the_content_hash(seeded: Memory) -> None:
    record = next(seeded.export()).model_dump(mode="json")
    bad = {**record, "id": "imported-1", "metadata": {"k": "\ud800"}}
    with pytest.raises(InvalidInputError):
        seeded.import_records([bad])
    with pytest.raises(InvalidInputError):
        seeded.import_records([{**record, "id": "x" * 100_000}])
    forged = {**record, "id": "imported-2", "text": "I live in Paris", "content_hash": "forged"}
    assert seeded.import_records([forged]) == {"imported": 1, "skipped": 0}
    stored = seeded.get("imported-2")
    assert stored.content_hash == content_hash(stored.kind.value, "I live in Paris")
