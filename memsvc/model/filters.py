"""The search filter language, parsed into a small typed tree before it reaches storage.

Shape (Mem0-compatible): ``{"kind": "fact"}``, ``{"metadata.topic": {"in": ["a", "b"]}}``,
``{"created_at": {"gte": "2024-01-01"}}``, combined with ``{"AND": [...]}`` / ``{"OR": [...]}``
/ ``{"NOT": {...}}``; several keys in one object are ANDed. A bare key that is not a memory
field is a metadata key. Parsing up front means a malformed filter fails with a message that
names the offending part, before any query runs.

Limits (each a typed `InvalidFilterError`): at most `MAX_DEPTH` levels of AND/OR/NOT, at
most `MAX_CONDITIONS` conditions and `MAX_IN_VALUES` ``in``/``nin`` values in the whole
filter. SQLite parses ``a OR b OR …`` into a tree one level deeper per term and refuses
trees deeper than 1000, and binds at most 32766 values per statement, so an unbounded
filter was a 500 rather than a clear refusal.
Operands must be storable values too: integers within signed 64 bits, finite floats,
strings without lone surrogates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union

from memsvc.model.errors import InvalidFilterError, InvalidTimestampError
from memsvc.model.validation import INT64_MAX, INT64_MIN, is_unicode, parse_timestamp, printable

TIME_FIELDS = frozenset(
    {"valid_from", "valid_to", "created_at", "updated_at", "invalidated_at", "last_accessed_at"}
)
NUMBER_FIELDS = frozenset({"confidence", "importance", "access_count", "version"})
TEXT_FIELDS = frozenset(
    {"kind", "status", "subject", "predicate", "object", "extractor", "session_id", "agent_id",
     "user_id", "id"}
)
OPERATORS = frozenset({"eq", "ne", "in", "nin", "gt", "gte", "lt", "lte"})
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
MAX_DEPTH = 8
MAX_CONDITIONS = 256
MAX_IN_VALUES = 1000
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Condition:
    field: str  # a memory column, or the metadata key path when `metadata` is true
    op: str
    value: Any
    metadata: bool = False


@dataclass(frozen=True)
class AllOf:
    parts: tuple[FilterNode, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[FilterNode, ...]


@dataclass(frozen=True)
class Negation:
    part: FilterNode


FilterNode = Union[Condition, AllOf, AnyOf, Negation]  # noqa: UP007 (used at runtime)


def parse_filters(raw: Any) -> FilterNode | None:
    """Parse a filter object; ``None`` or ``{}`` means no filter."""
    if raw is None or (isinstance(raw, dict) and not raw):
        return None
    return _parse(raw, "filters", 0, _Budget())


@dataclass
class _Budget:
    """What the rest of a filter may still hold; counted down while parsing."""

    conditions: int = MAX_CONDITIONS
    values: int = MAX_IN_VALUES


def _parse(raw: Any, where: str, depth: int, budget: _Budget) -> FilterNode:
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"{where}: filters nest deeper than {MAX_DEPTH}", field=where)
    if not isinstance(raw, dict) or not raw:
        raise InvalidFilterError(f"{where}: expected a non-empty object", field=where)
    parts: list[FilterNode] = []
    for key, value in raw.items():
        path = f"{where}.{printable(key, 200) if isinstance(key, str) else repr(key)}"
        upper = key.upper() if isinstance(key, str) else key
        if upper in ("AND", "OR"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{path}: expected a non-empty list", field=path)
            children = tuple(
                _parse(v, f"{path}[{i}]", depth + 1, budget) for i, v in enumerate(value)
            )
            parts.append(AllOf(children) if upper == "AND" else AnyOf(children))
        elif upper == "NOT":
            parts.append(Negation(_parse(value, path, depth + 1, budget)))
        else:
            parts.extend(_conditions(key, value, path, budget))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _conditions(key: Any, value: Any, path: str, budget: _Budget) -> list[Condition]:
    if not isinstance(key, str) or not key:
        raise InvalidFilterError(f"{path}: field names must be non-empty strings", field=path)
    metadata = key.startswith("metadata.") or key not in (TIME_FIELDS | NUMBER_FIELDS | TEXT_FIELDS)
    name = key.removeprefix("metadata.") if metadata else key
    if metadata and not _METADATA_KEY.match(name):
        raise InvalidFilterError(
            f"{path}: metadata keys may use letters, digits, '_', '-' and '.'", field=path
        )
    if isinstance(value, dict):
        if not value:
            raise InvalidFilterError(f"{path}: empty operator object", field=path)
        out = []
        for op, operand in value.items():
            if op not in OPERATORS:
                raise InvalidFilterError(
                    f"{path}: unknown operator {op!r}; use one of {sorted(OPERATORS)}", field=path
                )
            out.append(Condition(name, op, _operand(name, op, operand, metadata, path, budget),
                                 metadata))
        return out
    return [Condition(name, "eq", _operand(name, "eq", value, metadata, path, budget), metadata)]


def _operand(
    name: str, op: str, value: Any, metadata: bool, path: str, budget: _Budget
) -> Any:
    budget.conditions -= 1
    if budget.conditions < 0:
        raise InvalidFilterError(
            f"{path}: a filter may hold at most {MAX_CONDITIONS} conditions", field="filters"
        )
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value:
            raise InvalidFilterError(f"{path}: '{op}' needs a non-empty list", field=path)
        budget.values -= len(value)
        if budget.values < 0:
            raise InvalidFilterError(
                f"{path}: a filter's 'in'/'nin' lists may hold at most {MAX_IN_VALUES} values "
                "in all", field=path,
            )
        return tuple(_scalar(name, v, metadata, path) for v in value)
    scalar = _scalar(name, value, metadata, path)
    if op in ("gt", "gte", "lt", "lte") and (scalar is None or isinstance(scalar, bool)):
        raise InvalidFilterError(f"{path}: '{op}' needs a number, string or date", field=path)
    return scalar


def _scalar(name: str, value: Any, metadata: bool, path: str) -> Any:
    if isinstance(value, dict | list | tuple):
        raise InvalidFilterError(f"{path}: expected a single value, got {type(value).__name__}",
                                 field=path)
    _storable(value, path)
    if metadata:
        if not isinstance(value, Scalar):
            raise InvalidFilterError(f"{path}: unsupported value type", field=path)
        return value
    if name in TIME_FIELDS:
        if value is None:
            return None
        try:
            return parse_timestamp(value, field=path)
        except InvalidTimestampError as exc:  # its message already names the path
            raise InvalidFilterError(exc.message, field=path) from exc
    if name in NUMBER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilterError(f"{path}: expected a number", field=path)
        return value
    if value is not None and not isinstance(value, str):
        raise InvalidFilterError(f"{path}: expected a string", field=path)
    return value


def _storable(value: Any, path: str) -> None:
    """Refuse operands SQLite cannot bind (or would compare meaninglessly)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidFilterError(f"{path}: integers must fit in signed 64 bits", field=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"{path}: numbers must be finite", field=path)
    if isinstance(value, str) and not is_unicode(value):
        raise InvalidFilterError(
            f"{path}: holds characters that are not valid Unicode", field=path
        )
