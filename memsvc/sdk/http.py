"""How an SDK call becomes an HTTP request, and a response its result (both remote clients).

Generic over sdk/operations.py: an operation's path, method and parameter placement say where
each argument goes, its return type says how to parse the answer. The few arguments the JSON
wire cannot carry as given (bytes, a plan object, a config dataclass) are encoded here with
the checks the embedded SDK would make, so both refuse the same inputs with the same errors.
Errors come back as `{"error": {code, message, field}}` and are raised as the class the code
names (`ERRORS_BY_CODE`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python

from memsvc.consolidate import ConsolidationConfig
from memsvc.model.chat import parse_sse_event
from memsvc.model.errors import ERRORS_BY_CODE, EncodingError, InvalidInputError, MemsvcError
from memsvc.model.records import MemoryRecord
from memsvc.retrievers.plan import SearchPlan
from memsvc.sdk.operations import Operation, Stream

__all__ = ["HttpCall", "RemoteError", "build_call", "raise_for_error"]


class RemoteError(MemsvcError):
    """An error the server reported whose code has no class here."""

    def __init__(self, message: str, *, code: str, status: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code
        self.http_status = status


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error response back into the exception the embedded SDK would raise."""
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        code, message, field = str(err["code"]), str(err["message"]), err.get("field")
    except (ValueError, KeyError, TypeError):
        code, message, field = f"http_{response.status_code}", response.text[:500], None
    cls = ERRORS_BY_CODE.get(code)
    if cls is not None and cls is not MemsvcError:
        raise cls(message, field=field)
    raise RemoteError(message, code=code, status=response.status_code, field=field)


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


@dataclass(frozen=True)
class HttpCall:
    """One request, and how to read its answer."""

    op: Operation
    method: str
    path: str
    params: dict[str, Any] | None
    json: Any
    stream: Stream | None  # the answer is a stream of items of this format

    def parse(self, response: httpx.Response) -> Any:
        plain, _ = self.op.result_types
        if response.status_code == 204 or plain in (None, type(None)):
            return None
        if self.op.result_key is not None:
            return _adapter(plain).validate_python(response.json()[self.op.result_key])
        return _adapter(plain).validate_json(response.content)

    def parse_line(self, line: str) -> Any | None:
        """The item on one line of a streamed answer (None: a line that carries none)."""
        if self.stream == "sse":
            return parse_sse_event(line[5:].strip()) if line.startswith("data:") else None
        _, item = self.op.result_types
        return _adapter(item).validate_json(line) if line.strip() else None


# -- encoding the arguments ------------------------------------------------------------------

def _messages(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError(f"messages are not valid UTF-8 (offset {exc.start})",
                                field="messages") from exc
    if isinstance(value, dict):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


def _names(value: Any) -> Any:
    """`kinds`/`steps`: one name or several, as the embedded SDK accepts them."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, Sequence) else value


def _plan(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, SearchPlan):
        return dataclasses.asdict(value)
    raise InvalidInputError("plan must be a SearchPlan or a recipe name", field="plan")


def _config(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, ConsolidationConfig):
        return dataclasses.asdict(value)
    raise InvalidInputError("config must be a ConsolidationConfig", field="config")


def _records(value: Any) -> Any:
    return [r.model_dump(mode="json") if isinstance(r, MemoryRecord) else r for r in value]


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "messages": _messages, "kinds": _names, "steps": _names, "plan": _plan,
    "config": _config, "records": _records,
}


def _path_value(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("memory id must be a non-empty string", field="id")
    return quote(value.strip(), safe="")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _jsonable(name: str, value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise InvalidInputError(f"{name} cannot be sent as JSON: {exc}", field=name) from exc


def build_call(op: Operation, arguments: Mapping[str, Any]) -> HttpCall:
    """The request for a call of `op` with these arguments (every parameter bound)."""
    path_values: dict[str, str] = {}
    params: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for param in op.params:
        value = arguments[param.name]
        where = op.where(param)
        if where == "local":
            if value is not None:
                raise InvalidInputError(f"{param.name} runs only in the embedded SDK",
                                        field=param.name)
            continue
        value = _ENCODERS.get(param.name, lambda v: v)(value)
        if where == "path":
            path_values[param.name] = _path_value(value)
        elif where == "query":
            if value is not None or param.default is not None:
                params[param.name] = _query_value(value)
        else:
            body[param.name] = _jsonable(param.name, value)
    has_body = op.method not in ("GET", "DELETE")
    return HttpCall(
        op=op, method=op.method, path=op.path.format(**path_values), params=params or None,
        json=body if has_body else None,
        stream=op.stream if op.streams(arguments) else None,
    )
