"""Request and response bodies of the REST API that are not already memsvc models.

Responses reuse `memsvc.model.records` (and `ContextBlock`) so the remote SDK can parse them into
the very same classes. Requests forbid unknown fields, so a misspelt argument is a 422 that
names it instead of being silently ignored. Deep checks (text size, encoding, filter
grammar, scope) stay in `Memory`, so every interface refuses the same inputs the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from memsvc.consolidate import ConsolidationReport
from memsvc.model.records import AddResult, MemoryKind
from memsvc.retrievers.plan import ChannelSpec, SearchPlan

PlanName = Literal["fast", "balanced", "deep"]
Timestamp = str | float | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageIn(_Body):
    # no "system": a system prompt is not a memory (memsvc.sdk.writes refuses it)
    role: Literal["user", "assistant", "tool"] = "user"
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


class PlanChannel(_Body):
    weight: float = Field(default=1.0, description="Weight of this channel in the fusion.")
    k: int = Field(default=50, ge=1, le=1000,
                   description="Candidates this channel contributes before fusion.")


class PlanBody(_Body):
    """A `SearchPlan` as a value (memsvc.retrievers.plan): which channels, their weights."""

    channels: dict[str, PlanChannel] = Field(
        description="Channel name (vector, bm25, graph, temporal) → its weight and depth."
    )
    limit: int = Field(default=10, ge=1, le=1000)
    rrf_k: int = Field(default=10, ge=1, le=1000, description="Reciprocal-rank fusion's k.")
    track_access: bool = Field(default=True, description="Count hits towards decay.")

    def to_plan(self) -> SearchPlan:
        return SearchPlan(
            channels={n: ChannelSpec(weight=c.weight, k=c.k) for n, c in self.channels.items()},
            limit=self.limit, rrf_k=self.rrf_k, track_access=self.track_access,
        )


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
    plan: PlanName | PlanBody | None = Field(
        default=None, description="A recipe name, or a plan object (channels, weights)."
    )
    now: Timestamp = Field(
        default=None, description="The question's own date, for relative times in the query."
    )
    include_archived: bool = False
    group: bool = Field(
        default=True, description="One hit per source: memories derived from the same "
        "messages are folded into the best of them (its `related`); false: a flat ranking.",
    )
    min_trust: Literal["user", "agent", "external"] | int = Field(
        default="agent", description="Least trusted memories served: user, agent (default: "
        "tool- and document-derived memories are left out) or external (everything).")

    @field_validator("plan", mode="wrap")
    @classmethod
    def _one_plan_error(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """One error at `plan`, not one per member of the union (a name, or an object)."""
        try:
            return handler(value)
        except ValidationError as exc:
            if not isinstance(value, dict):
                raise ValueError("plan must be one of fast, balanced, deep, or a plan "
                                 "object") from None
            first = next((e for e in exc.errors() if e["loc"][:1] == ("PlanBody",)),
                         exc.errors()[0])
            where = ".".join(str(p) for p in first["loc"][1:])
            raise ValueError(f"plan object: {where}: {first['msg']}") from None

    def search_plan(self) -> SearchPlan | str | None:
        return self.plan.to_plan() if isinstance(self.plan, PlanBody) else self.plan


class ContextRequest(SearchRequest):
    limit: int = Field(default=50, ge=1, le=1000)
    max_tokens: int = Field(default=1000, ge=16, le=100_000)


class UpdateRequest(_Body):
    text: str | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = Field(default=None, ge=0.0, le=1.0)


class ReviewRequest(_Body):
    action: Literal["release", "delete"]


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
    background: bool = Field(
        default=False,
        description="Accept with 202 and a job id; the run happens afterwards (on a worker "
        "when the store is PostgreSQL). Poll GET /v1/jobs/{job_id}.",
    )


class InferRequest(ScopeFields):
    message_ids: list[str] = Field(description="Messages stored earlier by an add.")


class ImportRequest(_Body):
    records: list[Any] = Field(description="Records as `GET /v1/export` writes them: "
                               "memories, and (tagged by `type`) messages and history.")


class ImportResult(BaseModel):
    imported: int
    skipped: int
    # only when the records held messages or history (a memories-only import answers as
    # it always did)
    messages: int | None = None
    history: int | None = None


class ResetRequest(_Body):
    """Required, though empty: a destructive call needs a JSON body, which a cross-site form
    or a bare `fetch` cannot send without the server's consent (a CORS preflight)."""


class JobInfo(BaseModel):
    """A background job: an add's extraction (its raw messages are stored before this is
    returned) or a consolidation run. `result` is an add's, `report` a consolidation's."""

    id: str
    kind: Literal["add", "consolidate"] = "add"
    status: Literal["queued", "running", "done", "failed"]
    message_ids: list[str] = Field(default_factory=list)
    result: AddResult | None = None
    report: ConsolidationReport | None = None
    error: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    id: str | None = Field(default=None, description="Of an internal error: the server log "
                           "has the details under this id.")


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
