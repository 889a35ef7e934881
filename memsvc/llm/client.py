"""The one OpenAI-compatible chat client of memsvc, blocking and asyncio, on httpx.

Why not the ``openai`` package: memsvc must run embedded with few dependencies, and the
three things it needs from an LLM server -- chat completions, streamed chat completions
(SSE) and ``response_format`` JSON-schema output -- are a few dozen lines over httpx, which
the service already depends on. Keeping the client here also lets it speak vLLM's extras
(``cache_salt``, ``usage.prompt_tokens_details.cached_tokens``) without shims.

Every user of an LLM goes through it: the LLM extractor (``memsvc.extractors.llm``), the
write manager's decider (``memsvc.write.llm_decider``), ``/v1/chat`` (``memsvc.serving.chat``)
and the KV benchmark. Every failure surfaces as a typed exception (``memsvc.llm.errors``) so
that callers can keep their promises when the model misbehaves; the wire format (results,
parsing, SSE, JSON schema) lives in ``memsvc.llm.wire``. Both are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from memsvc.llm.errors import (
    LLMBadRequestError,
    LLMError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from memsvc.llm.wire import (
    STREAM_END,
    ChatChunk,
    ChatResult,
    Usage,
    chat_payload,
    checked_json,
    chunk_from_line,
    completion_from_response,
    json_schema_format,
    normalize_base_url,
    parse_json_content,
    raise_for_status,
)

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
    "json_schema_format",
    "normalize_base_url",
    "parse_json_content",
]

Message = Mapping[str, Any]


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
        salt = cache_salt if cache_salt is not None else self.cache_salt
        return chat_payload(model, messages, max_tokens=max_tokens, temperature=temperature,
                            response_format=response_format, stop=stop, stream=stream,
                            cache_salt=salt, extra=extra)

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
        raise_for_status(r, self.base_url)
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
        return completion_from_response(r, self.base_url, time.perf_counter() - t0)

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
        return checked_json(result, schema, max_tokens), result

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
                    raise_for_status(r, self.base_url)
                for line in r.iter_lines():
                    chunk = chunk_from_line(line, t0, deadline_s, self.base_url)
                    if chunk is STREAM_END:
                        return
                    if chunk is not None:
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
            raise_for_status(r, self.base_url)
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
        return completion_from_response(r, self.base_url, time.perf_counter() - t0)

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
        return checked_json(result, schema, max_tokens), result

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
                    raise_for_status(r, self.base_url)
                async for line in r.aiter_lines():
                    chunk = chunk_from_line(line, t0, deadline_s, self.base_url)
                    if chunk is STREAM_END:
                        return
                    if chunk is not None:
                        yield chunk
        except httpx.HTTPError as exc:
            raise self._wrap_transport_error(exc, self.base_url) from exc
