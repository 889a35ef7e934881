"""A small OpenAI-compatible chat client on httpx.

Why not the ``openai`` package: memsvc must run embedded with few dependencies, and the
three things it needs from an LLM server -- chat completions, streamed chat completions
(SSE) and ``response_format`` JSON-schema output -- are a few dozen lines over httpx, which
the service already depends on. Keeping the client here also lets it speak vLLM's extras
(``cache_salt``, ``usage.prompt_tokens_details.cached_tokens``) without shims.

Every failure surfaces as a typed exception so that callers can keep their promises when the
model misbehaves: the write pipeline falls back to rules, ``/v1/chat`` answers 503, and
nothing already stored is touched.

- :class:`LLMUnavailableError` -- the server cannot be reached, refused, or answered 5xx/429.
  Retryable later.
- :class:`LLMTimeoutError` (a subclass of the above) -- it was reached but too slow.
- :class:`LLMBadRequestError` -- the server rejected the request (4xx): prompt too long,
  unknown model. Retrying the same request will not help.
- :class:`LLMResponseError` -- the server answered 2xx but the body is not what the
  protocol promises (not JSON, no choices, content that does not parse against the schema).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "AsyncLLMClient",
    "ChatChunk",
    "ChatResult",
    "LLMBadRequestError",
    "LLMClient",
    "LLMError",
    "LLMResponseError",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "Usage",
    "normalize_base_url",
]

Message = Mapping[str, Any]


# --------------------------------------------------------------------------- exceptions


class LLMError(Exception):
    """Base class of every error this client raises."""


class LLMUnavailableError(LLMError):
    """The LLM server is down, unreachable, overloaded or failing (connect error, 5xx, 429).

    The caller should degrade (rule-based extraction, HTTP 503) and retry later.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMTimeoutError(LLMUnavailableError):
    """The LLM server accepted the connection but did not answer within the time allowed."""


class LLMBadRequestError(LLMError):
    """The server rejected the request itself (HTTP 4xx other than 429); do not retry as is."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMResponseError(LLMError):
    """The server answered, but with something malformed (bad JSON, missing fields, output
    that does not satisfy the requested JSON schema)."""

    def __init__(self, message: str, *, body: str | None = None) -> None:
        super().__init__(message)
        self.body = body


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


def _raise_for_status(response: httpx.Response, url: str) -> None:
    code = response.status_code
    if code < 400:
        return
    reason = _error_message(response)
    if code == 429 or code >= 500:
        raise LLMUnavailableError(f"LLM server at {url} answered {code}: {reason}",
                                  status_code=code)
    raise LLMBadRequestError(f"LLM server at {url} rejected the request ({code}): {reason}",
                             status_code=code)


def _parse_completion(body: Any, latency_s: float) -> ChatResult:
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


def _parse_sse_data(data: str, t0: float) -> ChatChunk | None:
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


# --------------------------------------------------------------------------- clients


class _Base:
    """Shared configuration and payload building of the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        cache_salt: str | None = None,
    ) -> None:
        """
        Args:
            base_url: server root or ``.../v1``.
            model: model name; when ``None`` the first entry of ``/v1/models`` is used
                (a local vLLM serves exactly one).
            api_key: sent as a bearer token when given (vLLM ``--api-key``, hosted APIs).
            timeout_s: the longest wait for any single read -- for a stream, the longest gap
                between two chunks, which bounds time to first token. Also the total deadline
                of a non-streamed request.
            connect_timeout_s: short on purpose: a local server that does not accept a TCP
                connection within seconds is down, and the caller should degrade now.
            cache_salt: vLLM prefix-cache namespace sent with every request. Requests with
                different salts never share cached blocks -- used to keep tenants apart and
                to keep benchmark runs from warming each other.
        """
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.cache_salt = cache_salt

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _payload(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        max_tokens: int | None,
        temperature: float | None,
        response_format: Mapping[str, Any] | None,
        stop: Sequence[str] | None,
        stream: bool,
        cache_salt: str | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
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
        salt = cache_salt if cache_salt is not None else self.cache_salt
        if salt:
            payload["cache_salt"] = salt
        if extra:
            payload.update(extra)
        return payload

    def _wrap_transport_error(self, exc: httpx.HTTPError, url: str) -> LLMError:
        if isinstance(exc, httpx.ConnectTimeout):
            return LLMUnavailableError(f"LLM server at {url} did not accept a connection within "
                                       f"{self.connect_timeout_s:g} s")
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeoutError(f"LLM server at {url} did not answer within "
                                   f"{self.timeout_s:g} s ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return LLMUnavailableError(f"LLM server at {url} is unreachable: {exc}")
        return LLMUnavailableError(f"LLM request to {url} failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _first_model(body: Any, url: str) -> str:
        try:
            return str(body["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMResponseError(f"{url}/v1/models lists no model", body=str(body)[:500]) from exc


class LLMClient(_Base):
    """Blocking client. Thread-safe for concurrent requests (httpx.Client is)."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None,
                 **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(timeout=self._timeout(), headers=self._headers(),
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- discovery -------------------------------------------------------------------

    def health(self, timeout_s: float = 2.0) -> bool:
        """True when the server answers ``/health`` (vLLM) or ``/v1/models`` (any
        OpenAI-compatible server) with 200. Never raises: it is a probe."""
        for path in ("/health", "/v1/models"):
            try:
                r = self._http.get(self.base_url + path, timeout=timeout_s)
            except httpx.HTTPError:
                return False
            if r.status_code == 200:
                return True
        return False

    def list_models(self) -> list[str]:
        url = self.base_url + "/v1/models"
        try:
            r = self._http.get(url)
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc
        _raise_for_status(r, self.base_url)
        try:
            body = r.json()
            return [str(m["id"]) for m in body["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMResponseError("malformed /v1/models answer", body=r.text[:500]) from exc

    def resolve_model(self) -> str:
        """The configured model, or the server's first one (looked up once)."""
        if self.model is None:
            models = self.list_models()
            if not models:
                raise LLMResponseError(f"{self.base_url}/v1/models lists no model")
            self.model = models[0]
        return self.model

    # -- chat ------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = 256,
        temperature: float | None = 0.0,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | None = None,
        cache_salt: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """One non-streamed chat completion."""
        payload = self._payload(self.resolve_model(), messages, max_tokens=max_tokens,
                                temperature=temperature, response_format=response_format,
                                stop=stop, stream=False, cache_salt=cache_salt, extra=extra)
        url = self.base_url + "/v1/chat/completions"
        t0 = time.perf_counter()
        try:
            r = self._http.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc
        latency = time.perf_counter() - t0
        _raise_for_status(r, self.base_url)
        try:
            body = r.json()
        except ValueError as exc:
            raise LLMResponseError("chat completion body is not JSON", body=r.text[:500]) from exc
        return _parse_completion(body, latency)

    def chat_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        *,
        name: str = "output",
        strict: bool = True,
        max_tokens: int | None = 512,
        temperature: float | None = 0.0,
        cache_salt: str | None = None,
    ) -> tuple[Any, ChatResult]:
        """Chat with JSON-schema constrained output; returns (parsed value, raw result).

        Raises :class:`LLMResponseError` when the output is cut off or does not parse/validate.
        """
        result = self.chat(messages, max_tokens=max_tokens, temperature=temperature,
                           response_format=json_schema_format(schema, name, strict),
                           cache_salt=cache_salt)
        if result.finish_reason == "length":
            raise LLMResponseError(f"JSON output was cut off at max_tokens={max_tokens}",
                                   body=result.content[:500])
        return parse_json_content(result.content, schema), result

    def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = 256,
        temperature: float | None = 0.0,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | None = None,
        cache_salt: str | None = None,
        extra: Mapping[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> Iterator[ChatChunk]:
        """Stream a chat completion over SSE, yielding :class:`ChatChunk` as they arrive.

        ``deadline_s`` bounds the whole stream (``timeout_s`` bounds each gap); past it
        :class:`LLMTimeoutError` is raised and the connection is closed, so a runaway
        generation cannot hold a request handler forever.
        """
        payload = self._payload(self.resolve_model(), messages, max_tokens=max_tokens,
                                temperature=temperature, response_format=response_format,
                                stop=stop, stream=True, cache_salt=cache_salt, extra=extra)
        url = self.base_url + "/v1/chat/completions"
        t0 = time.perf_counter()
        try:
            with self._http.stream("POST", url, json=payload) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for_status(r, self.base_url)
                for line in r.iter_lines():
                    if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
                        raise LLMTimeoutError(f"LLM stream from {self.base_url} exceeded "
                                              f"{deadline_s:g} s")
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (":"), "event:" lines
                    chunk = _parse_sse_data(line[5:].strip(), t0)
                    if chunk is None:
                        return
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc


class AsyncLLMClient(_Base):
    """The asyncio twin of :class:`LLMClient`, for FastAPI handlers."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.AsyncClient(timeout=self._timeout(), headers=self._headers(),
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def health(self, timeout_s: float = 2.0) -> bool:
        """See :meth:`LLMClient.health`."""
        for path in ("/health", "/v1/models"):
            try:
                r = await self._http.get(self.base_url + path, timeout=timeout_s)
            except httpx.HTTPError:
                return False
            if r.status_code == 200:
                return True
        return False

    async def resolve_model(self) -> str:
        if self.model is None:
            try:
                r = await self._http.get(self.base_url + "/v1/models")
            except httpx.HTTPError as exc:
                raise self._wrap_transport_error(exc, self.base_url) from exc
            _raise_for_status(r, self.base_url)
            try:
                body = r.json()
            except ValueError as exc:
                raise LLMResponseError("malformed /v1/models answer", body=r.text[:500]) from exc
            self.model = self._first_model(body, self.base_url)
        return self.model

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = 256,
        temperature: float | None = 0.0,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | None = None,
        cache_salt: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """See :meth:`LLMClient.chat`."""
        payload = self._payload(await self.resolve_model(), messages, max_tokens=max_tokens,
                                temperature=temperature, response_format=response_format,
                                stop=stop, stream=False, cache_salt=cache_salt, extra=extra)
        t0 = time.perf_counter()
        try:
            r = await self._http.post(self.base_url + "/v1/chat/completions", json=payload)
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc
        latency = time.perf_counter() - t0
        _raise_for_status(r, self.base_url)
        try:
            body = r.json()
        except ValueError as exc:
            raise LLMResponseError("chat completion body is not JSON", body=r.text[:500]) from exc
        return _parse_completion(body, latency)

    async def chat_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        *,
        name: str = "output",
        strict: bool = True,
        max_tokens: int | None = 512,
        temperature: float | None = 0.0,
        cache_salt: str | None = None,
    ) -> tuple[Any, ChatResult]:
        """See :meth:`LLMClient.chat_json`."""
        result = await self.chat(messages, max_tokens=max_tokens, temperature=temperature,
                                 response_format=json_schema_format(schema, name, strict),
                                 cache_salt=cache_salt)
        if result.finish_reason == "length":
            raise LLMResponseError(f"JSON output was cut off at max_tokens={max_tokens}",
                                   body=result.content[:500])
        return parse_json_content(result.content, schema), result

    async def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = 256,
        temperature: float | None = 0.0,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | None = None,
        cache_salt: str | None = None,
        extra: Mapping[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """See :meth:`LLMClient.stream_chat`."""
        payload = self._payload(await self.resolve_model(), messages, max_tokens=max_tokens,
                                temperature=temperature, response_format=response_format,
                                stop=stop, stream=True, cache_salt=cache_salt, extra=extra)
        t0 = time.perf_counter()
        try:
            async with self._http.stream("POST", self.base_url + "/v1/chat/completions",
                                         json=payload) as r:
                if r.status_code >= 400:
                    await r.aread()
                    _raise_for_status(r, self.base_url)
                async for line in r.aiter_lines():
                    if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
                        raise LLMTimeoutError(f"LLM stream from {self.base_url} exceeded "
                                              f"{deadline_s:g} s")
                    if not line.startswith("data:"):
                        continue
                    chunk = _parse_sse_data(line[5:].strip(), t0)
                    if chunk is None:
                        return
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc
