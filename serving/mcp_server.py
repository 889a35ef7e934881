"""The MCP server: six tools over the `Memory` facade, for stdio and streamable HTTP.

Each tool is a thin call of the `Memory` method it names, so validation and errors are the
SDK's (a refused input comes back as a tool error whose text says which field and why).
Over HTTP the caller's API key picks the tenant exactly as for REST (serving/tenancy.py);
over stdio the process serves the one store it was started on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memsvc.model.errors import MemsvcError
from memsvc.model.records import AddResult
from memsvc.retrievers.context import ContextBlock
from memsvc.sdk.memory import Memory
from memsvc.sdk.operations import Surface, operation
from memsvc.serving.mcp_outputs import (
    TITLES,
    DeletedOut,
    MemoryBrief,
    PageOut,
    ScoredBrief,
    SearchOut,
)

F = TypeVar("F", bound=Callable[..., Any])

MemoryResolver = Callable[[Context | None], Memory]

INSTRUCTIONS = (
    "Long-term memory for this user. Before answering, call get_context (or search_memory) "
    "with the user's question and user_id. After the user tells you something worth keeping "
    "(facts about them, preferences, plans, lessons), call add_memory with their words. "
    "Memories are scoped: always pass the same user_id (and agent_id / session_id if used)."
)

GROUP_HELP = ("One result per source: memories derived from the same messages are one "
              "result (the others under `related`); false for a flat list.")

# The operation each tool runs, and where the tool knowingly offers less than the SDK (an
# agent gets a small surface); tests/memsvc/test_sdk_spec.py checks these against the spec.
TOOLS: dict[str, Surface] = {
    "add_memory": Surface("add", renamed={"text": "messages"}, omitted=frozenset({"infer"}),
                          defaults={"messages": None}),  # text or messages, one of them
    "search_memory": Surface("search", omitted=frozenset({"as_of", "plan", "now",
                                                           "include_archived"})),
    "get_context": Surface("context", omitted=frozenset({
        "filters", "kinds", "limit", "as_of", "plan", "now", "include_archived",
        "min_trust"})),
    # no `status`: quarantined text is kept away from agents (a human reviews it)
    "list_memories": Surface("get_all", omitted=frozenset({
        "filters", "kinds", "include_inactive", "include_archived", "status"}),
        defaults={"limit": 50}),
    "update_memory": Surface("update"),
    "delete_memory": Surface("delete", omitted=frozenset({"hard"})),
    "review_memory": Surface("review"),
}


def tool_annotations(tool: str) -> ToolAnnotations:
    """What the tool's operation declares about itself (sdk/operations.py), for clients
    that ask before running a tool that changes or erases data."""
    op = operation(TOOLS[tool].operation)
    return ToolAnnotations(title=TITLES[tool], read_only_hint=op.read_only,
                           destructive_hint=op.destructive, idempotent_hint=op.idempotent,
                           open_world_hint=False)


MinTrust = Annotated[Literal["user", "agent", "external"], Field(
    description="Least trusted memories served: user, agent (default) or external (also "
    "what came from tools and documents).")]
UserId = Annotated[str | None, Field(description="Whose memories (the end user's stable id).")]
AgentId = Annotated[str | None, Field(description="Optional: the agent the memories belong to.")]
SessionId = Annotated[str | None, Field(description="Optional: one conversation/session id.")]


def _agent_errors(fn: F) -> F:
    """Refusals reach the agent as readable tool errors (the SDK hides other exceptions)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemsvcError as exc:
            where = f" (field: {exc.field})" if exc.field else ""
            raise ToolError(f"{exc.code}: {exc.message}{where}") from exc

    return wrapper  # type: ignore[return-value]


def build_mcp(resolve: MemoryResolver, *, name: str = "memsvc") -> MCPServer:
    """An MCP server whose tools act on `resolve(ctx)`: the caller's tenant's `Memory`."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(
        title=TITLES["add_memory"],
        annotations=tool_annotations("add_memory"),
        description="Store something the user said (or a list of chat turns) as long-term "
        "memory. Returns the ids of the stored messages and the memories created."
    )
    @_agent_errors
    def add_memory(
        text: Annotated[str | None, Field(description="What to remember, in the user's words.")]
        = None,
        messages: Annotated[
            list[dict[str, Any]] | None,
            Field(description="Alternatively, chat turns: [{role, content, timestamp?}]."),
        ] = None,
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Free JSON tags.")] = None,
        timestamp: Annotated[
            str | None, Field(description="When it was said, ISO-8601 (default: now).")
        ] = None,
        ctx: Context | None = None,
    ) -> AddResult:
        payload: Any = messages if messages is not None else text
        return resolve(ctx).add(
            payload, user_id=user_id, agent_id=agent_id, session_id=session_id,
            metadata=metadata, timestamp=timestamp,
        )

    @server.tool(
        title=TITLES["search_memory"],
        annotations=tool_annotations("search_memory"),
        description="Find the user's memories most relevant to a question (hybrid vector + "
        "keyword search). Returns memories with ids, kinds, validity times and scores."
    )
    @_agent_errors
    def search_memory(
        query: Annotated[str, Field(description="The question or topic, in natural language.")],
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        limit: Annotated[int, Field(ge=1, le=100, description="How many results.")] = 10,
        kinds: Annotated[
            list[str] | None,
            Field(description="Only these kinds: episode, fact, preference, event, procedure, "
                  "summary, profile."),
        ] = None,
        filters: Annotated[
            dict[str, Any] | None, Field(description='Filter object, e.g. {"kind": "fact"}.')
        ] = None,
        group: Annotated[bool, Field(description=GROUP_HELP)] = True,
        min_trust: MinTrust = "agent",
        ctx: Context | None = None,
    ) -> SearchOut:
        response = resolve(ctx).search(
            query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            kinds=kinds, filters=filters, group=group, min_trust=min_trust,
        )
        return SearchOut(results=[
            ScoredBrief(**MemoryBrief.of(hit.memory).model_dump(), score=hit.score,
                        related=[MemoryBrief.of(r.memory) for r in hit.related])
            for hit in response.results
        ])

    @server.tool(
        title=TITLES["get_context"],
        annotations=tool_annotations("get_context"),
        description="Get a ready-to-paste prompt block of the memories relevant to a question, "
        "within a token budget. Use it before answering the user."
    )
    @_agent_errors
    def get_context(
        query: Annotated[str, Field(description="The user's current question or message.")],
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        max_tokens: Annotated[
            int, Field(ge=16, le=100_000, description="Token budget of the block.")
        ] = 1000,
        group: Annotated[bool, Field(description=GROUP_HELP)] = True,
        ctx: Context | None = None,
    ) -> ContextBlock:
        return resolve(ctx).context(
            query, user_id=user_id, agent_id=agent_id, session_id=session_id,
            max_tokens=max_tokens, group=group,
        )

    @server.tool(
        title=TITLES["list_memories"],
        annotations=tool_annotations("list_memories"),
        description="List the user's stored memories, oldest first, one page at a time. "
        "Pass next_cursor from the previous page to continue."
    )
    @_agent_errors
    def list_memories(
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="Page size.")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the last page.")] = None,
        min_trust: MinTrust = "agent",
        ctx: Context | None = None,
    ) -> PageOut:
        page = resolve(ctx).get_all(
            user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            cursor=cursor, min_trust=min_trust,
        )
        return PageOut(items=[MemoryBrief.of(r) for r in page.items],
                       next_cursor=page.next_cursor, total=page.total)

    @server.tool(
        title=TITLES["update_memory"],
        annotations=tool_annotations("update_memory"),
        description="Correct a memory: give its id and the new text (and/or metadata, "
        "importance 0..1). The previous version stays in the memory's history."
    )
    @_agent_errors
    def update_memory(
        memory_id: Annotated[str, Field(description="Id of the memory (from search/list).")],
        text: Annotated[str | None, Field(description="The corrected text.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="New metadata.")] = None,
        importance: Annotated[float | None, Field(ge=0.0, le=1.0)] = None,
        ctx: Context | None = None,
    ) -> MemoryBrief:
        record = resolve(ctx).update(memory_id, text, metadata=metadata, importance=importance)
        return MemoryBrief.of(record)

    @server.tool(
        title=TITLES["delete_memory"],
        annotations=tool_annotations("delete_memory"),
        description="Forget a memory by id (soft delete: it stops being returned; its history "
        "is kept)."
    )
    @_agent_errors
    def delete_memory(
        memory_id: Annotated[str, Field(description="Id of the memory to forget.")],
        ctx: Context | None = None,
    ) -> DeletedOut:
        resolve(ctx).delete(memory_id)
        return DeletedOut(deleted=memory_id)

    @server.tool(
        title=TITLES["review_memory"],
        annotations=tool_annotations("review_memory"),
        description="Forget a quarantined memory (one whose text read as instructions to a "
        "model). Releasing one is left to a person (REST, CLI, explorer): an agent could "
        "otherwise release text that was injected into it."
    )
    @_agent_errors
    def review_memory(
        memory_id: Annotated[str, Field(description="Id of the quarantined memory.")],
        action: Annotated[Literal["delete"], Field(description="The decision.")],
        ctx: Context | None = None,
    ) -> MemoryBrief:
        return MemoryBrief.of(resolve(ctx).review(memory_id, action))

    return server
