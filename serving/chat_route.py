"""``POST /v1/chat``: the HTTP face of `ChatService` (body, server-sent events, the router).

Kept apart from ``chat.py`` (the turn itself) so each module has one job; ``chat.py``
re-exports these names, so ``from memsvc.serving.chat import chat_router`` keeps working.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from memsvc.model.chat import ChatEvent, ChatRequest, ChatResponse
from memsvc.sdk.memory import Memory

if TYPE_CHECKING:
    from memsvc.serving.chat import ChatService

__all__ = ["ChatBody", "chat_router", "sse_event"]


class ChatBody(BaseModel):
    """``POST /v1/chat``. ``stream: true`` answers ``text/event-stream``."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="The user's new message.")
    user_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    session_id: str | None = Field(default=None, max_length=256,
                                   description="Continue this conversation; omitted: a new one "
                                               "(its id is in the answer).")
    stream: bool = Field(default=False, description="Server-sent events: `delta` events with "
                                                    "text, then `done` with the response.")
    limit: int = Field(default=8, description="Memories to retrieve for the turn (1-50).")
    max_tokens: int = Field(default=256, description="Longest answer, in tokens.")
    temperature: float = 0.0
    infer: bool = Field(default=True, description="Extract memories from the exchange.")


def sse_event(event: ChatEvent) -> bytes:
    """One server-sent event: ``event: <type>`` and the event as JSON."""
    data = json.dumps(event.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
    return f"event: {event.type}\ndata: {data}\n\n".encode()


_bearer = HTTPBearer(auto_error=False, description="An API key from `memsvc keys create`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_ERR: dict[int | str, dict[str, Any]] = {
    code: {"description": text} for code, text in (
        (400, "the body is not parseable JSON"), (401, "unknown or missing API key"),
        (413, "message too large"), (415, "the body is not application/json"),
        (422, "invalid input"), (503, "the LLM is down, too slow, or sent malformed "
                                      "output; the message was stored"))}


def chat_router(service: ChatService) -> APIRouter:
    """``POST /v1/chat`` on the caller's tenant (resolved by ``app.state.tenancy``)."""
    router = APIRouter(tags=["chat"])

    @router.post("/v1/chat", response_model=ChatResponse, responses={
        **_ERR, 200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    def chat(body: ChatBody, request: Request,
             _b: Annotated[Any, Security(_bearer)] = None,
             _k: Annotated[Any, Security(_api_key)] = None) -> Any:
        """Answer with memory: retrieve, lay out for KV reuse, call the LLM, store the
        exchange. The message is stored before the model is called; 503 if it fails."""
        memory: Memory = request.app.state.tenancy.memory_for(request.headers)
        chat_request = ChatRequest.build(
            body.message, user_id=body.user_id, agent_id=body.agent_id,
            session_id=body.session_id, limit=body.limit, max_tokens=body.max_tokens,
            temperature=body.temperature, infer=body.infer,
            max_text_bytes=memory.settings.max_text_bytes,
        )
        if not body.stream:
            return service.chat(memory, chat_request)
        events = service.stream(memory, chat_request)  # raises 503 before streaming starts
        return StreamingResponse((sse_event(e) for e in events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    return router
