"""The OpenAI chat-completions wire format: result types, parsing, SSE, JSON-schema output.

Pure functions over bodies and responses, shared by the sync and async clients
(``memsvc.llm.client``) so both read the protocol the same way. ``json_schema_format`` is the
one place a JSON-schema ``response_format`` is built; the extractor, the decider and
``chat_json`` all go through it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from memsvc.llm.errors import (
    LLMBadRequestError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
)

__all__ = [
    "STREAM_END",
    "ChatChunk",
    "ChatResult",
    "Usage",
    "chat_payload",
    "checked_json",
    "chunk_from_line",
    "completion_from_response",
    "json_schema_format",
    "normalize_base_url",
    "parse_completion",
    "parse_json_content",
    "parse_sse_data",
    "raise_for_status",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Usage:
    """Token accounting of one request.

    ``cached_tokens`` is vLLM's ``usage.prompt_tokens_details.cached_tokens`` (the prompt
    tokens served from the prefix cache); ``None`` when the server does not report it (vLLM
    needs ``--enable-prompt-tokens-details``).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage | None:
        if not data:
            return None
        details = data.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
        try:
            return cls(
                prompt_tokens=int(data.get("prompt_tokens") or 0),
                completion_tokens=int(data.get("completion_tokens") or 0),
                total_tokens=int(data.get("total_tokens") or 0),
                cached_tokens=int(cached) if cached is not None else None,
            )
        except (TypeError, ValueError) as exc:
            raise LLMResponseError(f"malformed usage block: {data!r}") from exc


@dataclass(frozen=True)
class ChatResult:
    """A complete (non-streamed) chat completion."""

    content: str
    finish_reason: str | None
    model: str
    usage: Usage | None
    latency_s: float
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed completion.

    ``delta`` is the new text (may be empty on the first, role-only chunk). The last chunk
    carries ``usage`` when the server supports ``stream_options.include_usage``.
    ``elapsed_s`` is measured from the moment the request was sent, so the first chunk with a
    non-empty ``delta`` gives the time to first token.
    """

    delta: str
    finish_reason: str | None = None
    usage: Usage | None = None
    elapsed_s: float = 0.0


# --------------------------------------------------------------------------- helpers


def normalize_base_url(base_url: str) -> str:
    """Return the server root (no trailing slash, no ``/v1``).

    Users paste either ``http://host:8000`` or ``http://host:8000/v1`` (the OpenAI SDK
    convention); both must work, and ``/health`` lives at the root.
    """
    url = base_url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"LLM base URL must start with http:// or https://, got {base_url!r}")
    return url


def _error_message(response: httpx.Response) -> str:
    """Pull the human-readable reason out of an OpenAI-style error body."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        return text[:500]
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if body.get("detail"):
            return str(body["detail"])[:500]
    return text[:500]


def raise_for_status(response: httpx.Response, url: str) -> None:
    code = response.status_code
    if code < 400:
        return
    reason = _error_message(response)
    if code == 429 or code >= 500:
        raise LLMUnavailableError(f"LLM server at {url} answered {code}: {reason}",
                                  status_code=code)
    raise LLMBadRequestError(f"LLM server at {url} rejected the request ({code}): {reason}",
                             status_code=code)


def parse_completion(body: Any, latency_s: float) -> ChatResult:
    if not isinstance(body, Mapping):
        raise LLMResponseError("chat completion body is not a JSON object", body=str(body)[:500])
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise LLMResponseError("chat completion has no choices", body=json.dumps(body)[:500])
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        raise LLMResponseError("chat completion choice has no message", body=json.dumps(body)[:500])
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise LLMResponseError("chat completion content is not a string",
                               body=json.dumps(body)[:500])
    return ChatResult(
        content=content,
        finish_reason=choices[0].get("finish_reason"),
        model=str(body.get("model", "")),
        usage=Usage.from_json(body.get("usage")),
        latency_s=latency_s,
        raw=body,
    )


def chat_payload(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    response_format: Mapping[str, Any] | None = None,
    stop: Sequence[str] | None = None,
    stream: bool = False,
    cache_salt: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/chat/completions``; unset options are left out so the
    server's defaults apply. ``stream`` asks for the usage block on the last chunk."""
    payload: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if temperature is not None:
        payload["temperature"] = temperature
    if response_format is not None:
        payload["response_format"] = dict(response_format)
    if stop:
        payload["stop"] = list(stop)
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    if cache_salt:
        payload["cache_salt"] = cache_salt
    if extra:
        payload.update(extra)
    return payload


def completion_from_response(response: httpx.Response, url: str,
                             latency_s: float) -> ChatResult:
    """A non-streamed answer: status checked, body parsed (both clients)."""
    raise_for_status(response, url)
    try:
        body = response.json()
    except ValueError as exc:
        raise LLMResponseError("chat completion body is not JSON",
                               body=response.text[:500]) from exc
    return parse_completion(body, latency_s)


#: What :func:`chunk_from_line` answers for the ``[DONE]`` sentinel (compare with ``is``).
STREAM_END = ChatChunk(delta="", finish_reason=None)


def chunk_from_line(line: str, t0: float, deadline_s: float | None,
                    url: str) -> ChatChunk | None:
    """One line of an SSE stream: a chunk, :data:`STREAM_END` at ``[DONE]``, or ``None`` for
    a line that carries no data (blank separators, ``:`` comments, ``event:`` lines).

    Raises :class:`LLMTimeoutError` once the whole stream has run past ``deadline_s``.
    """
    if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
        raise LLMTimeoutError(f"LLM stream from {url} exceeded {deadline_s:g} s")
    if not line.startswith("data:"):
        return None
    chunk = parse_sse_data(line[5:].strip(), t0)
    return STREAM_END if chunk is None else chunk


def parse_sse_data(data: str, t0: float) -> ChatChunk | None:
    """Parse one SSE ``data:`` payload; ``None`` for the ``[DONE]`` sentinel."""
    if data == "[DONE]":
        return None
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise LLMResponseError("stream chunk is not JSON", body=data[:500]) from exc
    if not isinstance(body, Mapping):
        raise LLMResponseError("stream chunk is not a JSON object", body=data[:500])
    if "error" in body:
        err = body["error"]
        msg = err.get("message") if isinstance(err, Mapping) else str(err)
        raise LLMUnavailableError(f"LLM server failed mid-stream: {msg}")
    usage = Usage.from_json(body.get("usage"))
    choices = body.get("choices") or []
    delta_text = ""
    finish = None
    if choices:
        choice = choices[0]
        if not isinstance(choice, Mapping):
            raise LLMResponseError("stream chunk choice is not an object", body=data[:500])
        delta = choice.get("delta") or {}
        delta_text = (delta.get("content") or "") if isinstance(delta, Mapping) else ""
        finish = choice.get("finish_reason")
    return ChatChunk(delta=delta_text, finish_reason=finish, usage=usage,
                     elapsed_s=time.perf_counter() - t0)


def parse_json_content(content: str, schema: Mapping[str, Any] | None = None) -> Any:
    """Parse model output that was constrained to a JSON schema, and check it.

    Guided decoding makes the output *usually* valid, but a server that ignores
    ``response_format`` (or a truncated answer, ``finish_reason == "length"``) must not let
    garbage into memory: this raises :class:`LLMResponseError` instead. The schema is checked
    with ``jsonschema`` when it is installed; otherwise only the JSON itself is checked.
    """
    text = content.strip()
    if text.startswith("```"):  # some servers/models wrap JSON in a fence despite the schema
        text = text.strip("`")
        if text.lower().startswith("json"):
            text = text[4:]
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise LLMResponseError(f"model output is not valid JSON: {exc}",
                               body=content[:500]) from exc
    if schema is not None:
        try:
            import jsonschema
        except ImportError:  # optional: validation is a bonus, parsing is the contract
            return value
        try:
            jsonschema.validate(value, dict(schema))
        except jsonschema.ValidationError as exc:
            raise LLMResponseError(f"model output does not match the schema: {exc.message}",
                                   body=content[:500]) from exc
    return value


def json_schema_format(schema: Mapping[str, Any], name: str = "output",
                       strict: bool = True) -> dict[str, Any]:
    """The ``response_format`` value for JSON-schema constrained output.

    vLLM 0.32 honours this field; its older ``guided_json`` extra is silently ignored, so
    this is the only form memsvc sends.
    """
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": dict(schema), "strict": strict}}


def checked_json(result: ChatResult, schema: Mapping[str, Any] | None,
                 max_tokens: int | None) -> Any:
    """The parsed value of a JSON-schema constrained ``result`` (see ``chat_json``).

    Raises :class:`LLMResponseError` when the output was cut off at ``max_tokens`` (a
    truncated JSON value is never valid) or does not parse/validate.
    """
    if result.finish_reason == "length":
        raise LLMResponseError(f"JSON output was cut off at max_tokens={max_tokens}",
                               body=result.content[:500])
    return parse_json_content(result.content, schema)
