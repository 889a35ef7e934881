"""The seam `Memory.chat` delegates through: what a chat engine must offer.

It lives on the SDK floor, not with the chat data types in ``memsvc.model.chat``, because it
speaks of `Memory` itself; ``memsvc.serving.chat.ChatService`` implements it from above.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from memsvc.model.chat import ChatEvent, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from memsvc.sdk.memory import Memory

__all__ = ["ChatEngine"]


class ChatEngine(Protocol):
    """What `Memory.chat` delegates to (``memsvc.serving.chat.ChatService``)."""

    def chat(self, memory: Memory, request: ChatRequest) -> ChatResponse:
        """Answer one turn; raises :class:`ChatUnavailableError` when the model fails."""
        ...

    def stream(self, memory: Memory, request: ChatRequest) -> Iterator[ChatEvent]:
        """Answer one turn as events; a failure before the first token raises
        :class:`ChatUnavailableError`, a later one ends the stream with an ``error`` event."""
        ...
