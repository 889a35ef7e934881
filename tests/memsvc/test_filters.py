"""The filter language parses into a tree or fails naming the offending part."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memsvc.model.errors import InvalidFilterError
from memsvc.model.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    AllOf,
    AnyOf,
    Condition,
    Negation,
    parse_filters,
)


def test_plain_keys_are_metadata_and_known_fields_are_columns() -> None:
    node = parse_filters({"topic": "x", "kind": "fact"})
    assert node == AllOf((Condition("topic", "eq", "x", metadata=True),
                          Condition("kind", "eq", "fact")))


def test_time_fields_parse_dates() -> None:
    node = parse_filters({"created_at": {"gte": "2024-01-01"}})
    assert node == Condition("created_at", "gte", datetime(2024, 1, 1, tzinfo=UTC))


def test_boolean_combinators_nest() -> None:
    node = parse_filters({"OR": [{"a": 1}, {"NOT": {"b": {"in": [1, 2]}}}]})
    assert isinstance(node, AnyOf) and isinstance(node.parts[1], Negation)


def test_empty_means_no_filter() -> None:
    assert parse_filters(None) is None and parse_filters({}) is None


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"a": {"like": 1}}, "filters.a"),
        ({"OR": [{"a": 1}, "b"]}, "filters.OR[1]"),
        ({"importance": {"gt": "high"}}, "filters.importance"),
        ({"a": {"in": []}}, "filters.a"),
        ({"a": {"gt": None}}, "filters.a"),
        ({"a": [1, 2]}, "filters.a"),
        ({"metadata.a b": 1}, "filters.metadata.a b"),
        ({"valid_from": {"lt": "not a date"}}, "filters.valid_from"),
    ],
)
def test_malformed_filters_name_the_field(raw: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filters(raw)
    assert info.value.field == where


def test_depth_is_bounded() -> None:
    raw: dict[str, object] = {"a": 1}
    for _ in range(12):
        raw = {"NOT": raw}
    with pytest.raises(InvalidFilterError, match="deeper"):
        parse_filters(raw)


def test_conditions_are_counted_across_the_whole_tree() -> None:
    at_limit = {"OR": [{"a": i} for i in range(MAX_CONDITIONS)]}
    assert isinstance(parse_filters(at_limit), AnyOf)
    with pytest.raises(InvalidFilterError, match=f"at most {MAX_CONDITIONS} conditions"):
        parse_filters({"OR": [{"a": i} for i in range(1500)]})
    spread = {"AND": [{"OR": [{"a": i}, {"b": {"gt": i, "lt": i + 9}}]}
                      for i in range(MAX_CONDITIONS // 3 + 1)]}
    with pytest.raises(InvalidFilterError, match="conditions"):
        parse_filters(spread)


def test_in_lists_are_bounded_in_all() -> None:
    assert parse_filters({"a": {"in": list(range(MAX_IN_VALUES))}}) is not None
    with pytest.raises(InvalidFilterError, match=f"at most {MAX_IN_VALUES} values") as info:
        parse_filters({"a": {"nin": list(range(MAX_IN_VALUES + 1))}})
    assert info.value.field == "filters.a"
    half = list(range(MAX_IN_VALUES // 2 + 1))
    with pytest.raises(InvalidFilterError, match="values in all") as info:
        parse_filters({"OR": [{"a": {"in": half}}, {"b": {"nin": half}}]})
    assert info.value.field == "filters.OR[1].b"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"a": 2**63}, "filters.a"),
        ({"a": -(2**63) - 1}, "filters.a"),
        ({"version": {"gte": 2**64}}, "filters.version"),
        ({"a": {"in": [1, 10**30]}}, "filters.a"),
        ({"a": float("nan")}, "filters.a"),
        ({"confidence": {"lt": float("inf")}}, "filters.confidence"),
        ({"a": "\ud800"}, "filters.a"),
        ({"subject": {"in": ["ok", "x\udfff"]}}, "filters.subject"),
        ({"\ud800": 1}, "filters.\\ud800"),
        ({"created_at": {"gte": "0001-01-01T00:00:00+01:00"}}, "filters.created_at"),
        ({"created_at": {"gte": 1e300}}, "filters.created_at"),
    ],
)
def test_operands_sqlite_cannot_bind_are_refused(raw: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filters(raw)
    assert info.value.field == where
    info.value.message.encode("utf-8")  # the error itself can be sent as JSON


def test_64_bit_edges_are_accepted() -> None:
    node = parse_filters({"a": {"in": [2**63 - 1, -(2**63)]}})
    assert node == Condition("a", "in", (2**63 - 1, -(2**63)), metadata=True)


def test_very_deep_filters_stop_at_the_depth_check() -> None:
    """The check runs on the way down: no depth of input reaches the recursion limit."""
    raw: dict[str, object] = {"a": 1}
    for _ in range(100_000):
        raw = {"NOT": raw}
    with pytest.raises(InvalidFilterError, match=f"deeper than {MAX_DEPTH}"):
        parse_filters(raw)
