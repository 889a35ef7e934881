"""The typed errors of the LLM client, one family so callers can keep their promises.

The write pipeline falls back to rules on any of them, ``/v1/chat`` answers 503, and nothing
already stored is touched:

- :class:`LLMUnavailableError` -- the server cannot be reached, refused, or answered 5xx/429.
  Retryable later.
- :class:`LLMTimeoutError` (a subclass of the above) -- it was reached but too slow.
- :class:`LLMBadRequestError` -- the server rejected the request (4xx): prompt too long,
  unknown model. Retrying the same request will not help.
- :class:`LLMResponseError` -- the server answered 2xx but the body is not what the
  protocol promises (not JSON, no choices, content that does not parse against the schema).
"""

from __future__ import annotations

__all__ = [
    "LLMBadRequestError",
    "LLMError",
    "LLMResponseError",
    "LLMTimeoutError",
    "LLMUnavailableError",
]


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
