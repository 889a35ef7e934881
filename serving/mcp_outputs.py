"""What each MCP tool returns, as typed models, and the titles hosts show for the tools.

Typed returns make the MCP SDK publish an output schema for every tool (and send structured
content matching it), so a host or an agent framework can validate and render results
instead of guessing at free-form JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from memsvc.model.records import MemoryRecord

#: Human-readable tool names (MCP `title`), for hosts' confirmation and approval dialogs.
TITLES: dict[str, str] = {
    "add_memory": "Remember",
    "search_memory": "Search memories",
    "get_context": "Get memory context",
    "list_memories": "List memories",
    "update_memory": "Correct a memory",
    "delete_memory": "Forget a memory",
    "review_memory": "Review a quarantined memory",
}


class MemoryBrief(BaseModel):
    """One memory as an agent needs it: no vectors, hashes or lifecycle bookkeeping."""

    id: str
    kind: str
    text: str
    status: str
    valid_from: str | None = Field(default=None, description="ISO-8601: true from then on")
    valid_to: str | None = Field(default=None, description="ISO-8601: true until then")
    created_at: str
    entities: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    channel: str = Field(default="user", description="How it arrived: user, agent, tool, "
                         "imported")
    trust: int = Field(default=3, description="3 user-stated, 2 agent, 1 external (tool, "
                       "document)")

    @classmethod
    def of(cls, record: MemoryRecord) -> MemoryBrief:
        return cls(
            id=record.id,
            kind=record.kind.value,
            text=record.text,
            status=record.status.value,
            valid_from=record.valid_from.isoformat() if record.valid_from else None,
            valid_to=record.valid_to.isoformat() if record.valid_to else None,
            created_at=record.created_at.isoformat(),
            entities=list(record.entities),
            metadata=dict(record.metadata),
            channel=record.channel,
            trust=record.trust,
        )


class ScoredBrief(MemoryBrief):
    score: float = Field(description="Fused relevance score (higher is better)")
    related: list[MemoryBrief] = Field(
        default_factory=list,
        description="Other memories derived from the same messages (grouped search)",
    )


class SearchOut(BaseModel):
    results: list[ScoredBrief]


class PageOut(BaseModel):
    items: list[MemoryBrief]
    next_cursor: str | None = Field(default=None, description="Pass as cursor for the next page")
    total: int


class DeletedOut(BaseModel):
    deleted: str = Field(description="Id of the memory forgotten")
