"""The SDK side of memory-aware chat: the request, the answer, the events, and the seam.

Why a seam: the chat turn needs an LLM client and the KV-reuse prompt layout, both of which
live in ``memsvc.serving``, and imports point serving → memsvc, never back. So ``Memory.chat``
only validates and delegates to a ``ChatEngine`` (``memsvc.sdk.chat_engine``) it was given
(``Memory(chat_engine=...)``); ``memsvc.serving.chat.ChatService`` is the implementation, and
the REST route calls the same service with the caller's tenant's ``Memory``. The embedded
default has no engine, so ``Memory.chat`` raises :class:`ChatUnavailableError` instead of
silently reaching for a network.

Everything here is plain data shared by ``Memory.chat``, ``POST /v1/chat`` and
``MemoryClient.chat``, so the three speak one model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from memsvc.model.errors import ERRORS_BY_CODE, InvalidInputError, MemsvcError, ScopeRequiredError
from memsvc.model.settings import DEFAULT_MAX_TEXT_BYTES
from memsvc.model.validation import clean_id, clean_limit, clean_text, make_scope

__all__ = [
    "CHAT_METADATA_KEY",
    "ChatEvent",
    "ChatRequest",
    "ChatResponse",
    "ChatUnavailableError",
    "ChatUsage",
    "chat_body",
    "events_from_lines",
    "parse_sse_event",
]

MAX_ANSWER_TOKENS = 4096

#: The message metadata key under which chat keeps a user turn's memory block, replayed into
#: later prompts. Only chat itself writes it: `Memory.add` refuses it from callers, or anyone
#: could store a forged block that every later turn of the session would replay.
CHAT_METADATA_KEY = "chat"


class ChatUnavailableError(MemsvcError):
    """The chat model could not answer (down, too slow, malformed output, or none is
    configured). The user's message was stored before the model was called; it is named in
    the message so the caller knows nothing was lost. HTTP 503."""

    code = "llm_unavailable"
    http_status = 503


# The remote client maps error codes back to classes through this table.
ERRORS_BY_CODE.setdefault(ChatUnavailableError.code, ChatUnavailableError)


class ChatRequest(BaseModel):
    """One chat turn, validated once here for every interface."""

    message: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    limit: int = 8  # memories retrieved for the turn
    max_tokens: int = 256  # of the answer
    temperature: float = 0.0
    infer: bool = True  # extract memories from the exchange after the answer

    @classmethod
    def build(
        cls,
        message: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 8,
        max_tokens: int = 256,
        temperature: float = 0.0,
        infer: bool = True,
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    ) -> ChatRequest:
        """Validate like `Memory.add`/`search` do: typed errors, nothing written yet."""
        text = clean_text(message, max_bytes=max_text_bytes, field="message")
        scope = make_scope(user_id, agent_id, session_id)
        if scope.user_id is None and scope.agent_id is None:
            raise ScopeRequiredError("chat needs a user_id or an agent_id (whose memories to "
                                     "use)", field="user_id")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not (
            1 <= max_tokens <= MAX_ANSWER_TOKENS
        ):
            raise InvalidInputError(f"max_tokens must be an integer from 1 to {MAX_ANSWER_TOKENS}",
                                    field="max_tokens")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not (
            0.0 <= float(temperature) <= 2.0
        ):
            raise InvalidInputError("temperature must be a number from 0 to 2",
                                    field="temperature")
        if not isinstance(infer, bool):
            raise InvalidInputError("infer must be true or false", field="infer")
        return cls(
            message=text, user_id=scope.user_id, agent_id=scope.agent_id,
            session_id=clean_id(scope.session_id, field="session_id"),
            limit=clean_limit(limit, maximum=50), max_tokens=max_tokens,
            temperature=float(temperature), infer=infer,
        )


class ChatUsage(BaseModel):
    """Token accounting of the model call; ``cached_tokens`` are the prompt tokens vLLM served
    from its prefix cache (None when the server does not report them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None


class ChatResponse(BaseModel):
    """A finished chat turn."""

    answer: str
    session_id: str = Field(description="Pass it back to continue the conversation.")
    memory_ids: list[str] = Field(default_factory=list,
                                  description="Memories retrieved for this turn, best first.")
    profile_id: str | None = Field(default=None, description="The profile memory in the prompt.")
    message_ids: list[str] = Field(default_factory=list,
                                   description="The stored user message, then the reply.")
    usage: ChatUsage | None = None
    model: str = ""
    ttft_s: float | None = Field(default=None, description="Time to the first answer token.")
    finish_reason: str | None = None


class ChatEvent(BaseModel):
    """One event of a streamed turn (SSE ``event:`` name = ``type``).

    - ``delta``: ``text`` is the next piece of the answer;
    - ``done``: ``response`` is the whole :class:`ChatResponse` (ids, usage);
    - ``error``: the model failed after the answer had started; ``message`` says why (the
      user's message is stored, the partial answer is not).
    """

    type: Literal["delta", "done", "error"]
    text: str | None = None
    response: ChatResponse | None = None
    message: str | None = None
    code: str | None = None


def chat_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``POST /v1/chat`` body for a validated request (the remote SDK sends this)."""
    body = request.model_dump(exclude_none=True)
    body["stream"] = stream
    return body


def parse_sse_event(data: str) -> ChatEvent:
    """One ``data:`` payload of the ``/v1/chat`` event stream."""
    try:
        return ChatEvent.model_validate_json(data)
    except ValueError as exc:
        raise ChatUnavailableError(f"malformed chat event from the server: {data[:200]}") from exc


def events_from_lines(lines: Iterator[str]) -> Iterator[ChatEvent]:
    """``ChatEvent`` objects from the lines of a ``text/event-stream`` body."""
    for line in lines:
        if line.startswith("data:"):
            yield parse_sse_event(line[5:].strip())
