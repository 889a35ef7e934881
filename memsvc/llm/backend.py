"""The one call the LLM extractor makes, behind a protocol it can be handed.

`ChatBackend` is shaped like `memsvc.llm.client.LLMClient.chat` (messages in, an
object with ``content`` and ``finish_reason`` out), so the serving layer passes its own client
in and gets its typed errors, retries and vLLM extras. Extractors may not import serving
(imports point serving → memsvc → extractors), so for the embedded case this module also
holds a minimal httpx client for any OpenAI-compatible ``/v1/chat/completions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


class ChatReply(Protocol):
    content: str
    finish_reason: str | None


class ChatBackend(Protocol):
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = ...,
        temperature: float | None = ...,
        response_format: Mapping[str, Any] | None = ...,
    ) -> ChatReply: ...


class ChatError(Exception):
    """The endpoint could not be used: unreachable, an HTTP error, or a body without text."""


@dataclass(frozen=True)
class SimpleReply:
    content: str
    finish_reason: str | None


class SimpleChatClient:
    """Blocking chat completions over httpx; enough for extraction, nothing more."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0) -> None:
        root = base_url.rstrip("/")
        self.url = (root if root.endswith("/v1") else root + "/v1") + "/chat/completions"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0),
                                  headers=headers)

    def close(self) -> None:
        self._http.close()

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = 1024,
        temperature: float | None = 0.0,
        response_format: Mapping[str, Any] | None = None,
    ) -> SimpleReply:
        payload: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if temperature is not None:
            payload["temperature"] = temperature
        if response_format is not None:
            payload["response_format"] = dict(response_format)
        try:
            response = self._http.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise ChatError(f"LLM endpoint {self.url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise ChatError(f"LLM endpoint answered HTTP {response.status_code}: "
                            f"{response.text[:200]}")
        try:
            choice = response.json()["choices"][0]
            return SimpleReply(str(choice["message"]["content"] or ""),
                               choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ChatError(f"LLM endpoint sent a malformed completion: {response.text[:200]}"
                            ) from exc
