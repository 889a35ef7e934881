"""Request and response bodies of the REST API that are not already memsvc models.

Responses reuse `memsvc.model.records` (and `ContextBlock`) so the remote SDK can parse them into
the very same classes. Requests forbid unknown fields, so a misspelt argument is a 422 that
names it instead of being silently ignored. Deep checks (text size, encoding, filter
grammar, scope) stay in `Memory`, so every interface refuses the same inputs the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memsvc.model.records import AddResult, MemoryKind

PlanName = Literal["fast", "balanced", "deep"]
Timestamp = str | float | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_Body):
    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str
    name: str | None = None
    timestamp: str | float | None = None


class ScopeFields(_Body):
    user_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    session_id: str | None = Field(default=None, max_length=256)


class AddRequest(ScopeFields):
    messages: str | list[MessageIn | str] = Field(
        description="One text, or a list of chat messages ({role, content, name?, timestamp?})."
    )
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp = Field(
        default=None, description="When the messages were said (ISO-8601 or epoch seconds)."
    )
    infer: bool = Field(default=False, description="Also run the configured extractor.")
    background: bool = Field(
        default=False,
        description="Accept with 202 and a job id once the raw messages are durable; the "
        "extraction runs afterwards. Poll GET /v1/jobs/{job_id}.",
    )

    def message_dicts(self) -> str | list[dict[str, Any] | str]:
        if isinstance(self.messages, str):
            return self.messages
        return [
            m if isinstance(m, str) else m.model_dump(exclude_none=True) for m in self.messages
        ]


class SearchRequest(ScopeFields):
    query: str
    filters: dict[str, Any] | None = Field(
        default=None,
        description='Filter object, e.g. {"kind": "fact"} or {"metadata.topic": {"in": ["a"]}}.',
    )
    kinds: list[str] | None = Field(
        default=None,
        description="Only these kinds: " + ", ".join(k.value for k in MemoryKind) + ".",
    )
    limit: int = Field(default=10, ge=1, le=1000)
    as_of: Timestamp = None
    plan: PlanName | None = None
    now: Timestamp = Field(
        default=None, description="The question's own date, for relative times in the query."
    )
    include_archived: bool = False


class ContextRequest(SearchRequest):
    limit: int = Field(default=50, ge=1, le=1000)
    max_tokens: int = Field(default=1000, ge=16, le=100_000)


class UpdateRequest(_Body):
    text: str | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = Field(default=None, ge=0.0, le=1.0)


class DeleteResult(BaseModel):
    deleted: int


class ConsolidateRequest(_Body):
    user_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    now: Timestamp = None
    steps: list[str] | None = Field(
        default=None,
        description="Among retry, merge, summaries, decay, profile (default: all, in order).",
    )
    config: dict[str, float] | None = Field(
        default=None, description="ConsolidationConfig fields, e.g. {\"merge_threshold\": 0.9}."
    )


class JobInfo(BaseModel):
    """A background write: the raw messages are stored before this is returned."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    message_ids: list[str] = Field(default_factory=list)
    result: AddResult | None = None
    error: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    auth: Literal["api_key", "none"]


class GraphNode(BaseModel):
    id: str  # "m:<memory id>" or "e:<entity key>"
    type: Literal["memory", "entity"]
    label: str
    kind: str | None = None  # memory kind
    status: str | None = None  # memory status


class GraphEdge(BaseModel):
    source: str
    target: str
    label: str  # "mentions" (memory → entity) or the relation's predicate


class MemoryGraph(BaseModel):
    """The entity graph one hop around a memory: its entities, their relations, and the
    other memories that name them."""

    center: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
