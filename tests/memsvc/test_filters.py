"""The filter language parses into a tree or fails naming the offending part."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memsvc.model.errors import InvalidFilterError
from memsvc.model.filters import AllOf, AnyOf, Condition, Negation, parse_filters


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
