"""Checks every entry point runs before anything is written.

One place decides what counts as acceptable text, scope and time, so the SDK, the REST API
and the MCP tools refuse the same inputs with the same typed errors.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from memsvc.model.errors import (
    EmptyTextError,
    EncodingError,
    InvalidInputError,
    InvalidTimestampError,
    ScopeRequiredError,
    TextTooLargeError,
)
from memsvc.model.records import Scope

_MAX_ID_LEN = 256
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


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

    Naive values are taken as UTC, so the same input always means the same instant.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidTimestampError(f"{field} {value!r} is out of range", field=field) from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidTimestampError(
                f"{field} {value!r} is not an ISO-8601 date or datetime", field=field
            ) from exc
    else:
        raise InvalidTimestampError(
            f"{field} must be a datetime, ISO-8601 string or epoch seconds", field=field
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def clean_metadata(value: Any, *, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be an object", field=field)
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{field} keys must be non-empty strings", field=field)
    return dict(value)


def clean_limit(value: Any, *, field: str = "limit", maximum: int = 1000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{field} must be an integer from 1 to {maximum}", field=field)
    return value
