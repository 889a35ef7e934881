"""Checks every entry point runs before anything is written.

One place decides what counts as acceptable text, scope and time, so the SDK, the REST API
and the MCP tools refuse the same inputs with the same typed errors.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from memsvc.model.errors import (
    EmptyTextError,
    EncodingError,
    InvalidInputError,
    InvalidTimestampError,
    ScopeRequiredError,
    TextTooLargeError,
)
from memsvc.model.records import ExportedHistory, ExportedMessage, MemoryRecord, Scope

M = TypeVar("M", bound=BaseModel)

_MAX_ID_LEN = 256
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
# Metadata is free JSON, bounded so that what is stored can always be read back and served:
# SQLite's JSON functions and the serializers on the way out all have limits of their own.
MAX_METADATA_DEPTH = 32
MAX_METADATA_BYTES = 64 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def is_unicode(text: str) -> bool:
    """True when `text` encodes to UTF-8, i.e. holds no lone surrogate (``"\\ud800"``).

    Python strings may carry lone surrogates (from JSON ``"\\ud800"`` escapes); SQLite, the
    tokenizer and every JSON reply refuse them, so nothing holding one is ever stored.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str, limit: int = 60) -> str:
    """`text` made safe to quote in an error message: short, and sendable as UTF-8."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def clean_text(value: Any, *, max_bytes: int, field: str = "text") -> str:
    """Return the text to store, or raise: bytes must be UTF-8, strings must encode to it."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError(
                f"{field} is not valid UTF-8 (bad byte at offset {exc.start})", field=field
            ) from exc
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{field} must be a string, got {type(value).__name__}", field=field
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise EncodingError(
            f"{field} holds characters that are not valid Unicode (position {exc.start})",
            field=field,
        ) from exc
    if "\x00" in value:
        raise EncodingError(f"{field} contains a NUL character", field=field)
    if not value.strip():
        raise EmptyTextError(f"{field} is empty or only whitespace", field=field)
    if size > max_bytes:
        raise TextTooLargeError(
            f"{field} is {size} bytes; the limit is {max_bytes} bytes", field=field
        )
    return value.strip()


def clean_id(value: Any, *, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be a string", field=field)
    value = value.strip()
    if not value:
        raise InvalidInputError(f"{field} must not be empty", field=field)
    if not is_unicode(value):
        raise EncodingError(f"{field} holds characters that are not valid Unicode", field=field)
    if len(value) > _MAX_ID_LEN or _ID_FORBIDDEN.search(value):
        raise InvalidInputError(
            f"{field} must be at most {_MAX_ID_LEN} printable characters", field=field
        )
    return value


def make_scope(
    user_id: Any = None, agent_id: Any = None, session_id: Any = None, *, required: bool = True
) -> Scope:
    scope = Scope(
        user_id=clean_id(user_id, field="user_id"),
        agent_id=clean_id(agent_id, field="agent_id"),
        session_id=clean_id(session_id, field="session_id"),
    )
    if required and scope.is_empty():
        raise ScopeRequiredError(
            "name at least one of user_id, agent_id or session_id", field="user_id"
        )
    return scope


def parse_timestamp(value: Any, *, field: str = "timestamp") -> datetime | None:
    """Accept a datetime, an ISO-8601 string or epoch seconds; return an aware UTC datetime.

    Naive values are taken as UTC, so the same input always means the same instant. A time
    whose UTC form falls outside years 1..9999 (``0001-01-01T00:00:00+01:00``) cannot be
    represented, let alone stored, and is refused here rather than overflowing later.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidTimestampError(
                f"{field} {printable(repr(value))} is out of range", field=field
            ) from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidTimestampError(
                f"{field} {printable(repr(value))} is not an ISO-8601 date or datetime",
                field=field,
            ) from exc
    else:
        raise InvalidTimestampError(
            f"{field} must be a datetime, ISO-8601 string or epoch seconds", field=field
        )
    try:
        if parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidTimestampError(
            f"{field} {printable(str(value))} is outside years 1 to 9999 once converted to UTC",
            field=field,
        ) from exc


def clean_metadata(value: Any, *, field: str = "metadata") -> dict[str, Any]:
    """A copy of `value` that is plain JSON and reads back exactly as it was stored.

    Walks keys and values (depth first, stopping at `MAX_METADATA_DEPTH`, so no input can
    exhaust the stack) and refuses, naming the path, what would be stored but not read
    back or served: lone surrogates, NaN/Infinity, integers outside signed 64 bits, types
    JSON has no form for, non-string or empty keys. str/int/float subclasses become the
    plain type (so an IntEnum reads back as the int it was stored as), tuples become lists.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be an object", field=field)
    budget = [MAX_METADATA_BYTES]  # a running estimate, so a huge input fails early
    cleaned = _clean_json(value, field, 0, budget)
    size = len(json.dumps(cleaned, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    if budget[0] < 0 or size > MAX_METADATA_BYTES:
        raise InvalidInputError(
            f"{field} is over {MAX_METADATA_BYTES} bytes as JSON", field=field
        )
    assert isinstance(cleaned, dict)
    return cleaned


def _clean_json(value: Any, path: str, depth: int, budget: list[int]) -> Any:
    budget[0] -= 8  # every node costs at least its punctuation
    if budget[0] < 0:
        raise InvalidInputError(f"{path}: metadata is over {MAX_METADATA_BYTES} bytes",
                                field=path.partition(".")[0].partition("[")[0])
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not is_unicode(value):
            raise EncodingError(f"{path} holds characters that are not valid Unicode",
                                field=path)
        budget[0] -= len(value)
        return str(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInputError(f"{path} is outside the signed 64-bit integer range",
                                    field=path)
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} must be a finite number (JSON has no NaN or "
                                    "Infinity)", field=path)
        return float(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_METADATA_DEPTH:
        raise InvalidInputError(f"{path}: metadata nests deeper than {MAX_METADATA_DEPTH}",
                                field=path)
    if isinstance(value, list | tuple):
        return [_clean_json(v, f"{path}[{i}]", depth + 1, budget) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise InvalidInputError(f"{path} keys must be non-empty strings", field=path)
            if not is_unicode(key):
                raise EncodingError(
                    f"{path} has a key that is not valid Unicode ({printable(repr(key))})",
                    field=path,
                )
            budget[0] -= len(key)
            out[str(key)] = _clean_json(item, f"{path}.{key}", depth + 1, budget)
        return out
    raise InvalidInputError(
        f"{path}: {type(value).__name__} is not a JSON value (use a string, number, "
        "true/false, null, list or object)", field=path,
    )


def clean_limit(value: Any, *, field: str = "limit", maximum: int = 1000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{field} must be an integer from 1 to {maximum}", field=field)
    return value


def clean_record(record: MemoryRecord, *, max_bytes: int, field: str = "record") -> MemoryRecord:
    """An imported memory as it may be stored, or a typed error naming the offending part.

    `import_records` takes whole records (from an export file, or anyone's JSON), so every
    field needs the checks `add` applies piecemeal: its id and scope, text within
    `max_bytes`, metadata as `clean_metadata` wants it, times inside years 1..9999 in UTC,
    and no lone surrogate, NaN or out-of-range integer anywhere (SQLite stores NaN as NULL,
    which the model then cannot read back).
    """
    clean_text(record.text, max_bytes=max_bytes, field=f"{field}.text")
    changes: dict[str, Any] = {
        "id": clean_id(record.id, field=f"{field}.id"),
        "superseded_by": clean_id(record.superseded_by, field=f"{field}.superseded_by"),
        "scope": _owned_by(record.scope, field),
        "metadata": clean_metadata(record.metadata, field=f"{field}.metadata"),
    }
    return _cleaned(record, changes, field)


def _owned_by(scope: Scope, field: str) -> Scope:
    """An imported record's scope, each id checked; a record must belong to someone."""
    clean = Scope(**{name: clean_id(value, field=f"{field}.scope.{name}")
                     for name, value in scope})
    if clean.is_empty():
        raise ScopeRequiredError(f"{field} has no scope", field=f"{field}.scope")
    return clean


def _cleaned(model: M, changes: dict[str, Any], field: str) -> M:
    """`model` with `changes`, its times parsed and every other field checked as stored."""
    for name, value in model:
        if isinstance(value, datetime):
            changes[name] = parse_timestamp(value, field=f"{field}.{name}")
        elif name not in changes:
            _check_stored(value, f"{field}.{name}")
    return model.model_copy(update=changes)


def clean_message(message: ExportedMessage, *, max_bytes: int,
                  field: str = "record") -> ExportedMessage:
    """An imported raw message as it may be stored (the checks `add` applies to one)."""
    clean_text(message.content, max_bytes=max_bytes, field=f"{field}.content")
    changes: dict[str, Any] = {
        "id": clean_id(message.id, field=f"{field}.id"),
        "scope": _owned_by(message.scope, field),
        "metadata": clean_metadata(message.metadata, field=f"{field}.metadata"),
    }
    return _cleaned(message, changes, field)


def clean_history(entry: ExportedHistory, *, field: str = "record") -> ExportedHistory:
    """An imported history entry as it may be stored: its memory's id, its snapshots as
    metadata is checked, its time in range."""
    changes: dict[str, Any] = {
        "memory_id": clean_id(entry.memory_id, field=f"{field}.memory_id"),
        "old": None if entry.old is None else clean_metadata(entry.old, field=f"{field}.old"),
        "new": None if entry.new is None else clean_metadata(entry.new, field=f"{field}.new"),
    }
    return _cleaned(entry, changes, field)


def _check_stored(value: Any, path: str) -> None:
    """Strings, numbers and the lists and models holding them, as SQLite will store them."""
    if isinstance(value, str):
        if not is_unicode(value):
            raise EncodingError(f"{path} holds characters that are not valid Unicode",
                                field=path)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInputError(f"{path} is outside the signed 64-bit integer range",
                                    field=path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{path} must be a finite number", field=path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_stored(item, f"{path}[{i}]")
    elif isinstance(value, BaseModel):
        for name, item in value:
            _check_stored(item, f"{path}.{name}")
