"""LangChain tools (remember / recall / forget) and a retriever over memsvc.

The scope of a call is the tool's own `user_id` / `agent_id` / `session_id` when given, else
the run's `configurable` (`user_id`, or LangMem's `langgraph_user_id`; `agent_id`;
`session_id`), so one tool object serves every user of a LangGraph deployment:
`graph.invoke(..., {"configurable": {"user_id": "alice"}})`. A call memsvc refuses raises
`ToolException` with memsvc's message; the tools set `handle_tool_error=True`, so the model
reads that message as the tool's (error) result and nothing is written.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from memsvc import MemsvcError
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


class RememberInput(BaseModel):
    text: str = Field(description="What to remember, as one self-contained statement.")


class RecallInput(BaseModel):
    query: str = Field(description="What to look for, in natural language.")
    limit: int = Field(default=5, ge=1, le=50, description="How many memories at most.")


class ForgetInput(BaseModel):
    memory_id: str = Field(description="The id of a memory, as `recall` showed it.")


class _MemoryTool(BaseTool):
    """Shared scope resolution and error mapping of the three tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Backend = Field(exclude=True)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    handle_tool_error: bool = True

    def _scope(self, config: RunnableConfig | None) -> dict[str, str]:
        conf = (config or {}).get("configurable") or {}
        return scope_kwargs(
            self.user_id or conf.get("user_id") or conf.get("langgraph_user_id"),
            self.agent_id or conf.get("agent_id"),
            self.session_id or conf.get("session_id"),
        )

    def _go(self, plan: Plan[Any]) -> Any:
        try:
            return self.backend.run(plan)
        except MemsvcError as exc:
            raise ToolException(error_text(exc)) from exc

    async def _ago(self, plan: Plan[Any]) -> Any:
        try:
            return await self.backend.arun(plan)
        except MemsvcError as exc:
            raise ToolException(error_text(exc)) from exc


class RememberTool(_MemoryTool):
    name: str = "remember"
    description: str = ("Store a fact, preference or event about the user for later "
                        "conversations.")
    args_schema: type[BaseModel] = RememberInput
    infer: bool = False  # also run memsvc's extractor on the text

    def _run(self, text: str, config: RunnableConfig) -> str:
        return _remembered(self._go(remember_plan(text, self._scope(config), self.infer)))

    async def _arun(self, text: str, config: RunnableConfig) -> str:
        return _remembered(await self._ago(remember_plan(text, self._scope(config), self.infer)))


class RecallTool(_MemoryTool):
    """Returns the hits as text for the model and, as the message's artifact, as dicts
    (id, text, score, kind, created_at, channel_ranks)."""

    name: str = "recall"
    description: str = "Search long-term memory for what is known that answers a question."
    args_schema: type[BaseModel] = RecallInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    def _run(self, query: str, config: RunnableConfig,
             limit: int = 5) -> tuple[str, list[dict[str, Any]]]:
        return _recalled(self._go(recall_plan(query, self._scope(config), limit)))

    async def _arun(self, query: str, config: RunnableConfig,
                    limit: int = 5) -> tuple[str, list[dict[str, Any]]]:
        return _recalled(await self._ago(recall_plan(query, self._scope(config), limit)))


class ForgetTool(_MemoryTool):
    name: str = "forget"
    description: str = "Delete one memory, by the id `recall` showed, when it is wrong."
    args_schema: type[BaseModel] = ForgetInput

    def _run(self, memory_id: str, config: RunnableConfig) -> str:
        return f"Forgot memory {self._go(forget_plan(memory_id, self._scope(config)))}."

    async def _arun(self, memory_id: str, config: RunnableConfig) -> str:
        forgotten = await self._ago(forget_plan(memory_id, self._scope(config)))
        return f"Forgot memory {forgotten}."


def memory_tools(memory: Any, *, user_id: str | None = None, agent_id: str | None = None,
                 session_id: str | None = None, infer: bool = False) -> list[BaseTool]:
    """`[remember, recall, forget]` over any memsvc SDK object."""
    backend = Backend(memory)
    scope: dict[str, Any] = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
    return [RememberTool(backend=backend, infer=infer, **scope),
            RecallTool(backend=backend, **scope), ForgetTool(backend=backend, **scope)]


def _remembered(ids: list[str]) -> str:
    return f"Remembered (memory {', '.join(ids)})." if ids else "Already known."


def _recalled(hits: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    if not hits:
        return "No memories found.", hits
    lines = [f"[{h['id']}] ({h['score']:.3f}) {h['text']}" for h in hits]
    return "\n".join(lines), hits


class MemsvcRetriever(BaseRetriever):
    """Documents from memsvc's search: `page_content` is the memory text; `metadata` holds
    its id, fused `score`, per-channel scores and ranks, kind, scope, times and provenance
    (source message ids, extractor). Errors are memsvc's (`ValueError` family)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any = Field(exclude=True)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    k: int = 4
    filters: dict[str, Any] | None = None
    plan: str | None = None
    _backend: Backend = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._backend = Backend(self.memory)

    def _search(self, query: str) -> Plan[list[Document]]:
        scope = scope_kwargs(self.user_id, self.agent_id, self.session_id)
        response = yield call("search", query, limit=self.k, filters=self.filters,
                              plan=self.plan, **scope)
        return [_document(hit) for hit in response.results]

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._backend.run(self._search(query))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return await self._backend.arun(self._search(query))


def _document(hit: Any) -> Document:
    m = hit.memory
    return Document(
        page_content=m.text,
        id=m.id,
        metadata={
            "id": m.id,
            "score": hit.score,
            "channel_scores": dict(hit.channel_scores),
            "channel_ranks": dict(hit.channel_ranks),
            "kind": m.kind.value,
            **m.scope.model_dump(exclude_none=True),
            "created_at": m.created_at.isoformat(),
            "valid_from": m.valid_from.isoformat() if m.valid_from else None,
            "source_message_ids": list(m.provenance.source_message_ids),
            "extractor": m.provenance.extractor,
            "metadata": dict(m.metadata),
        },
    )
