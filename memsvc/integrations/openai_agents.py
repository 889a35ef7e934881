"""OpenAI Agents SDK: memory function tools, and a `Session` that keeps the conversation in
memsvc.

`MemsvcSession(session_id, memory, user_id=...)` implements the SDK's `Session` protocol
(`get_items` / `add_items` / `pop_item` / `clear_session`). Each input item becomes one memsvc
message of the session scope (so one `episode` memory, searchable like any other turn); the
item itself is kept as JSON in the episode's metadata (`oa_item`) and returned from there, so
`get_items` gives back exactly what `add_items` was given. Items are ordered by their
timestamps (`add_items` spaces a batch by microseconds) and then by position in the batch.
`pop_item` and `clear_session` delete the episodes — softly unless `hard=True`: as everywhere
in memsvc, a soft delete hides the item and keeps it in history.

`memory_tools(memory, user_id=...)` gives `remember`, `recall` and `forget` function tools.
Without a fixed scope they read `user_id` / `agent_id` / `session_id` from the run context
(an attribute or a key of `Runner.run(..., context=...)`). When memsvc refuses a call, the
model is told memsvc's message (the SDK's default hides every tool error's text).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agents import FunctionTool, RunContextWrapper, function_tool
from agents.exceptions import UserError
from agents.tool import default_tool_error_function

from memsvc import MemoryRecord, MemsvcError
from memsvc.integrations._backend import (
    Backend,
    Plan,
    call,
    error_text,
    forget_plan,
    recall_plan,
    remember_plan,
    scope_kwargs,
)

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

_PAGE = 1000
_MAX_TEXT = 16 * 1024  # the searchable rendering of an item is cut here; the JSON is whole
# memsvc stores no `system` messages (a system prompt is not a memory, and replayed it would
# speak as the deployment): the item itself is kept whole in metadata, its episode is "tool".
_ROLES = {"user": "user", "assistant": "assistant", "system": "tool", "developer": "tool"}


class MemsvcSession:
    """The Agents SDK `Session` protocol on memsvc: `Runner.run(agent, text, session=...)`."""

    session_settings: SessionSettings | None = None

    def __init__(self, session_id: str, memory: Any, *, user_id: str | None = None,
                 agent_id: str | None = None, hard: bool = False) -> None:
        if not isinstance(session_id, str) or not session_id.strip():
            raise UserError("session_id must be a non-empty string")
        self.session_id = session_id
        self.backend = Backend(memory)
        self.scope = scope_kwargs(user_id, agent_id, session_id)
        self.hard = hard

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        records = await self._arun(self._records())
        chosen = records if limit is None else records[-limit:] if limit > 0 else []
        return [json.loads(r.metadata["oa_item"]) for r in chosen]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        if not items:
            return
        meta = [{"oa_item": _dumps(item), "oa_seq": i} for i, item in enumerate(items)]
        start = datetime.now(UTC)
        messages = []
        for i, item in enumerate(items):
            role, text = _render(item)
            messages.append({"role": role, "content": text,
                             "timestamp": (start + timedelta(microseconds=i)).isoformat()})
        await self._arun(self._add(messages, meta))

    async def pop_item(self) -> TResponseInputItem | None:
        return await self._arun(self._pop())

    async def clear_session(self) -> None:
        await self._arun(self._clear())

    # -- plans ---------------------------------------------------------------------------

    def _records(self) -> Plan[list[MemoryRecord]]:
        """This session's items, oldest first; also those memsvc quarantined (a session is
        the transcript the agent already had in context, and must give back what it got)."""
        found: list[MemoryRecord] = []
        # the whole transcript, tool results too (stored at external trust, which a default
        # read leaves out) and quarantined turns: a session replays what happened, it is no
        # fact base
        for status in (None, "quarantined"):
            cursor = None
            while True:
                page = yield call("get_all", kinds=["episode"], limit=_PAGE, cursor=cursor,
                                  filters={"metadata.oa_item": {"ne": None}}, status=status,
                                  min_trust="external", **self.scope)
                found += page.items
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        found.sort(key=lambda r: (r.valid_from or r.created_at, r.metadata.get("oa_seq", 0)))
        return found

    def _add(self, messages: list[dict[str, Any]], meta: list[dict[str, Any]]) -> Plan[None]:
        # one add per item, as each message carries its own item JSON in its metadata; the
        # texts are pre-cleaned and the first call checks the scope, so memsvc refuses
        # before the first write or not at all
        for message, extra in zip(messages, meta, strict=True):
            yield call("add", [message], metadata=extra, infer=False, **self.scope)

    def _pop(self) -> Plan[TResponseInputItem | None]:
        records = yield from self._records()
        if not records:
            return None
        last = records[-1]
        yield call("delete", last.id, hard=self.hard)
        item: TResponseInputItem = json.loads(last.metadata["oa_item"])
        return item

    def _clear(self) -> Plan[None]:
        records = yield from self._records()
        for record in records:
            yield call("delete", record.id, hard=self.hard)

    async def _arun(self, plan: Plan[Any]) -> Any:
        try:
            return await self.backend.arun(plan)
        except MemsvcError as exc:
            raise UserError(error_text(exc)) from exc


def _dumps(item: Any) -> str:
    if not isinstance(item, dict):
        raise UserError(f"session items must be dicts, got {type(item).__name__}")
    try:
        text = json.dumps(item, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"session items must be JSON (as the SDK's own sessions store them): "
                        f"{exc}") from exc
    if json.loads(text) != item:
        raise UserError("session item changes in a JSON round trip (tuples, non-string keys?)")
    return text


def _render(item: Any) -> tuple[str, str]:
    """The memsvc role and searchable text of one (JSON, dict) input item."""
    kind = item.get("type")
    if kind == "function_call":
        role, text = "assistant", f"called {item.get('name')}({item.get('arguments', '')})"
    elif kind == "function_call_output":
        role, text = "tool", f"tool result: {_text_of(item.get('output'))}"
    elif "role" in item and kind in (None, "message"):
        role, text = _ROLES.get(str(item["role"]), "assistant"), _text_of(item.get("content"))
    else:
        role, text = "assistant", f"[{kind}] {_text_of(item.get('summary') or '')}"
    # only the index text is cleaned (NULs, lone surrogates, length); the item JSON is whole
    text = text.replace("\x00", "").encode("utf-8", "ignore")[:_MAX_TEXT].decode(
        "utf-8", "ignore").strip()
    return role, text or f"[{kind or item.get('role') or 'item'}]"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("refusal") or "")
    return "" if content is None else json.dumps(content)


# -- function tools -------------------------------------------------------------------------

def _context_scope(ctx: RunContextWrapper[Any], fixed: dict[str, str]) -> dict[str, str]:
    if fixed:
        return fixed
    context = ctx.context

    def pick(name: str) -> Any:
        if isinstance(context, dict):
            return context.get(name)
        return getattr(context, name, None)

    return scope_kwargs(pick("user_id"), pick("agent_id"), pick("session_id"))


def _tell_model(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """memsvc's own message for a refused call; the SDK's default for anything else."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, MemsvcError):
        cause = cause.__cause__
    return error_text(cause) if cause is not None else default_tool_error_function(ctx, error)


def memory_tools(memory: Any, *, user_id: str | None = None, agent_id: str | None = None,
                 session_id: str | None = None, infer: bool = False) -> list[FunctionTool]:
    """`remember`, `recall` and `forget` as function tools over any memsvc SDK object."""
    backend = Backend(memory)
    fixed = scope_kwargs(user_id, agent_id, session_id)

    async def remember(ctx: RunContextWrapper[Any], text: str) -> str:
        """Store a fact, preference or event about the user for later conversations.

        Args:
            text: What to remember, as one self-contained statement.
        """
        ids = await backend.arun(remember_plan(text, _context_scope(ctx, fixed), infer))
        return f"Remembered (memory {', '.join(ids)})." if ids else "Already known."

    async def recall(ctx: RunContextWrapper[Any], query: str, limit: int) -> str:
        """Search long-term memory for what is known that answers a question.

        Args:
            query: What to look for, in natural language.
            limit: How many memories at most (1 to 50; 5 is a good default).
        """
        hits = await backend.arun(recall_plan(query, _context_scope(ctx, fixed), limit))
        return json.dumps(hits, ensure_ascii=False)

    async def forget(ctx: RunContextWrapper[Any], memory_id: str) -> str:
        """Delete one memory, by the id `recall` showed, when it is wrong.

        Args:
            memory_id: The id of the memory to delete.
        """
        forgotten = await backend.arun(forget_plan(memory_id, _context_scope(ctx, fixed)))
        return f"Forgot memory {forgotten}."

    return [function_tool(f, failure_error_function=_tell_model)
            for f in (remember, recall, forget)]
