"""Pydantic AI: memsvc as a `FunctionToolset` with typed arguments and results.

`Agent(model, toolsets=[memory_toolset(memory, user_id="alice")])`. Without a fixed scope the
tools read `user_id` / `agent_id` / `session_id` from the run's `deps` (attribute or key), so
one toolset serves every user: `agent.run(prompt, deps=UserDeps(user_id="alice"))`.

Errors follow Pydantic AI's conventions: arguments outside their types or bounds are
refused by Pydantic AI itself (a retry prompt); an input memsvc refuses (empty text, an
unknown id) raises `ModelRetry` with memsvc's message, so the model can correct the call;
a call with no scope at all raises `ToolFailed` — retrying cannot fix a missing user, and
the model is told so. Nothing is written in any of these cases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.toolsets import FunctionToolset

from memsvc import InvalidInputError, NotFoundError, ScopeRequiredError
from memsvc.integrations._backend import (
    Backend,
    Plan,
    error_text,
    forget_plan,
    recall_plan,
    remember_plan,
    scope_kwargs,
)


class RecalledMemory(BaseModel):
    """One memory `recall` found, with memsvc's fused score and each channel's rank."""

    id: str
    text: str
    score: float
    kind: str
    created_at: datetime
    channel_ranks: dict[str, int]


def _deps_scope(ctx: RunContext[Any], fixed: dict[str, str]) -> dict[str, str]:
    if fixed:
        return fixed
    deps = ctx.deps

    def pick(name: str) -> Any:
        return deps.get(name) if isinstance(deps, dict) else getattr(deps, name, None)

    return scope_kwargs(pick("user_id"), pick("agent_id"), pick("session_id"))


def memory_toolset(memory: Any, *, user_id: str | None = None, agent_id: str | None = None,
                   session_id: str | None = None, infer: bool = False,
                   id: str = "memsvc") -> FunctionToolset[Any]:
    """`remember`, `recall` and `forget` over any memsvc SDK object."""
    backend = Backend(memory)
    fixed = scope_kwargs(user_id, agent_id, session_id)

    async def run(plan: Plan[Any]) -> Any:
        try:
            return await backend.arun(plan)
        except ScopeRequiredError as exc:
            raise ToolFailed(error_text(exc)) from exc
        except (InvalidInputError, NotFoundError) as exc:
            raise ModelRetry(error_text(exc)) from exc

    async def remember(ctx: RunContext[Any],
                       text: Annotated[str, Field(min_length=1, max_length=8000)]) -> str:
        """Store a fact, preference or event about the user for later conversations.

        Args:
            text: What to remember, as one self-contained statement.
        """
        ids = await run(remember_plan(text, _deps_scope(ctx, fixed), infer))
        return f"Remembered (memory {', '.join(ids)})." if ids else "Already known."

    async def recall(ctx: RunContext[Any], query: Annotated[str, Field(min_length=1)],
                     limit: Annotated[int, Field(ge=1, le=50)] = 5) -> list[RecalledMemory]:
        """Search long-term memory for what is known that answers a question.

        Args:
            query: What to look for, in natural language.
            limit: How many memories at most.
        """
        hits = await run(recall_plan(query, _deps_scope(ctx, fixed), limit))
        return [RecalledMemory.model_validate(h) for h in hits]

    async def forget(ctx: RunContext[Any], memory_id: Annotated[str, Field(min_length=1)]) -> str:
        """Delete one memory, by the id `recall` showed, when it is wrong.

        Args:
            memory_id: The id of the memory to delete.
        """
        return f"Forgot memory {await run(forget_plan(memory_id, _deps_scope(ctx, fixed)))}."

    return FunctionToolset([remember, recall, forget], id=id)
