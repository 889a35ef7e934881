"""The SDK surface, declared once: every operation's parameters, result and HTTP mapping.

`Memory` is the hand-written implementation; its signatures must equal these (a test checks
names, kinds, defaults and types). `AsyncMemory`, `MemoryClient` and `AsyncMemoryClient` are
generated from this table, and the CLI, the REST routes and the MCP tools are checked
against it, so an argument added in one place and forgotten in another fails a test instead
of drifting. The flags (`read_only`, `destructive`, `idempotent`) are what an MCP tool's
annotations say about the operation.
"""

from __future__ import annotations

import collections.abc
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from memsvc.consolidate import ConsolidationConfig, ConsolidationReport, Progress
from memsvc.model.chat import ChatEvent, ChatResponse
from memsvc.model.records import (
    AddResult,
    ExportItem,
    HistoryEntry,
    MemoryRecord,
    Page,
    SearchResponse,
    StoredMessage,
    StoreStats,
)
from memsvc.retrievers.context import ContextBlock
from memsvc.retrievers.plan import SearchPlan

__all__ = ["OPERATIONS", "MessagesInput", "Operation", "Param", "Surface", "Time", "operation"]

MessagesInput = str | bytes | dict[str, Any] | Sequence[dict[str, Any] | str]
Time = datetime | str | float | None
REQUIRED: Any = inspect.Parameter.empty
Stream = Literal["sse", "ndjson"]


@dataclass(frozen=True)
class Param:
    """One argument. `positional`: may be passed by position (the leading arguments);
    otherwise keyword-only. `remote`: False for what cannot cross a network (a callback)."""

    name: str
    type: Any
    default: Any = REQUIRED
    positional: bool = False
    remote: bool = True

    def parameter(self) -> inspect.Parameter:
        kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if self.positional
                else inspect.Parameter.KEYWORD_ONLY)
        return inspect.Parameter(self.name, kind, default=self.default, annotation=self.type)


@dataclass(frozen=True)
class Operation:
    """One method of the four SDK classes, and the REST route that serves it remotely.

    Over HTTP, the names in `{...}` of `path` travel in the path, the other remote
    parameters in the query string (GET, DELETE) or the JSON body (POST, PATCH).
    `result_key`: the REST body wraps the result under this key. `stream`: the result is an
    iterator, sent as server-sent events or NDJSON (when `stream_flag` names a parameter,
    only if that argument is true).
    """

    name: str
    params: tuple[Param, ...]
    returns: Any
    method: str
    path: str
    doc: str
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    result_key: str | None = None
    stream: Stream | None = None
    stream_flag: str | None = None

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))

    @property
    def result_types(self) -> tuple[Any, Any]:
        """(the type of a plain result, the item type of a streamed one): `returns` split,
        e.g. `ChatResponse | Iterator[ChatEvent]` → (ChatResponse, ChatEvent)."""
        union = typing.get_origin(self.returns) in (typing.Union, types.UnionType)
        members = typing.get_args(self.returns) if union else (self.returns,)
        plain = [m for m in members if typing.get_origin(m) is not collections.abc.Iterator]
        items = [typing.get_args(m)[0] for m in members
                 if typing.get_origin(m) is collections.abc.Iterator]
        return (plain[0] if plain else None), (items[0] if items else None)

    @property
    def async_returns(self) -> Any:
        """What the awaitable twin returns: an async iterator where this one streams."""
        plain, item = self.result_types
        if item is None:
            return self.returns
        items: Any = collections.abc.AsyncIterator
        items = items[item]
        return items if plain is None else plain | items

    def where(self, param: Param) -> Literal["path", "query", "body", "local"]:
        """How an argument travels over HTTP ("local": it does not, embedded only)."""
        if not param.remote:
            return "local"
        if param.name in self.path_params:
            return "path"
        return "query" if self.method in ("GET", "DELETE") else "body"

    def signature(self, *, returns: Any = None, bound: bool = True) -> inspect.Signature:
        """The method's signature (with `self` unless `bound`), for `__signature__`."""
        params = [p.parameter() for p in self.params]
        if not bound:
            self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            params.insert(0, self_param)
        return inspect.Signature(params, return_annotation=self.returns if returns is None
                                 else returns)

    def streams(self, arguments: Mapping[str, Any]) -> bool:
        """Whether a call with these (bound) arguments returns an iterator."""
        if self.stream is None:
            return False
        return self.stream_flag is None or bool(arguments.get(self.stream_flag))

    def present(self, fn: Callable[..., Any], *, doc: str | None, returns: Any = None
                ) -> Callable[..., Any]:
        """Give a generated method this operation's name, docstring and real signature, so
        `help()`, IDEs and `inspect.signature` show the parameters rather than `*args`."""
        signature = self.signature(returns=returns, bound=False)
        fn.__name__ = fn.__qualname__ = self.name
        fn.__doc__ = doc or self.doc
        fn.__signature__ = signature  # type: ignore[attr-defined]
        fn.__annotations__ = {
            **{p.name: p.annotation for p in list(signature.parameters.values())[1:]},
            "return": signature.return_annotation,
        }
        return fn


@dataclass(frozen=True)
class Surface:
    """How a CLI command or an MCP tool offers an operation, and where it knowingly differs:
    `renamed` (its name → the operation's), `extra` (its own parameters), `omitted` (the
    operation's parameters it does not offer) and `defaults` (where its default differs)."""

    operation: str
    renamed: Mapping[str, str] = field(default_factory=dict)
    extra: frozenset[str] = frozenset()
    omitted: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def drift(self, offered: Mapping[str, Any]) -> list[str]:
        """Differences between what a surface offers ({name: default, REQUIRED if none})
        and the operation; empty when they agree."""
        op = operation(self.operation)
        spec = {p.name: p.default for p in op.params}
        problems: list[str] = []
        seen: set[str] = set()
        for name, default in offered.items():
            if name in self.extra:
                continue
            target = self.renamed.get(name, name)
            if target not in spec:
                problems.append(f"{name!r} is not a parameter of {op.name}")
                continue
            seen.add(target)
            expected = self.defaults.get(target, spec[target])
            if default != expected and not (default is REQUIRED and expected is REQUIRED):
                problems.append(f"{name!r} defaults to {default!r}, {op.name} to {expected!r}")
        for name in sorted(set(spec) - seen - self.omitted):
            problems.append(f"{op.name} parameter {name!r} is not offered")
        for name in sorted(self.omitted & seen):
            problems.append(f"{name!r} is offered but declared omitted")
        return problems


# -- the operations --------------------------------------------------------------------------

def _p(name: str, type_: Any, default: Any = REQUIRED, **kw: Any) -> Param:
    return Param(name, type_, default, **kw)


USER, AGENT, SESSION = (_p(n, str | None, None) for n in ("user_id", "agent_id", "session_id"))
SCOPE = (USER, AGENT, SESSION)
MEMORY_ID = _p("memory_id", str, positional=True)
FILTERS = _p("filters", dict[str, Any] | None, None)
KINDS = _p("kinds", Sequence[str] | None, None)
PLAN = _p("plan", SearchPlan | str | None, None)
# Hits derived from the same source messages come back as one (with the others `related`);
# False gives the flat ranking.
GROUP = _p("group", bool, True)
# the least trusted memories a read serves (memsvc.model.trust): "user", "agent" (default:
# tool- and document-derived memories are left out) or "external" (everything)
MIN_TRUST = _p("min_trust", str | int, "agent")


def _search_params(limit: int) -> tuple[Param, ...]:
    return (_p("query", str, positional=True), *SCOPE, FILTERS, KINDS, _p("limit", int, limit))


OPERATIONS: tuple[Operation, ...] = (
    # -- write
    Operation("add", (_p("messages", MessagesInput, positional=True), *SCOPE,
                      _p("metadata", dict[str, Any] | None, None), _p("timestamp", Time, None),
                      _p("infer", bool, False)),
              AddResult, "POST", "/v1/memories",
              "Store the messages verbatim, each as an episode; with `infer`, extract more."),
    Operation("infer", (_p("message_ids", Sequence[str], positional=True), *SCOPE),
              AddResult, "POST", "/v1/infer",
              "Run the extractor over messages already stored by `add(infer=False)`."),
    Operation("update", (MEMORY_ID, _p("text", str | None, None, positional=True),
                         _p("metadata", dict[str, Any] | None, None),
                         _p("importance", float | None, None)),
              MemoryRecord, "PATCH", "/v1/memories/{memory_id}",
              "Write a new version of a memory; the old one is kept in its history."),
    Operation("review", (MEMORY_ID, _p("action", str, positional=True)), MemoryRecord,
              "POST", "/v1/memories/{memory_id}/review",
              "Decide on a quarantined memory: `release` it (active again) or `delete` it.",
              destructive=True, idempotent=True),
    Operation("delete", (MEMORY_ID, _p("hard", bool, False)), None,
              "DELETE", "/v1/memories/{memory_id}",
              "Soft delete (status `deleted`, kept in history) or, with `hard`, erase.",
              destructive=True, idempotent=True),
    Operation("delete_all", (*SCOPE, _p("hard", bool, False)), int, "DELETE", "/v1/memories",
              "Delete every memory of a scope; returns how many. `hard` also erases messages.",
              destructive=True, idempotent=True, result_key="deleted"),
    Operation("reset", (), None, "POST", "/v1/reset",
              "Erase everything this tenant has stored.", destructive=True, idempotent=True),
    # -- manage
    Operation("consolidate", (USER, AGENT, _p("now", Time, None),
                              _p("steps", Sequence[str] | None, None),
                              _p("config", ConsolidationConfig | None, None),
                              _p("progress", Progress | None, None, remote=False)),
              ConsolidationReport, "POST", "/v1/consolidate",
              "Offline upkeep of a scope: retry, merge, summarise, archive, profile.",
              idempotent=True),
    # -- read
    Operation("search", (*_search_params(10), _p("as_of", Time, None), PLAN,
                         _p("now", Time, None), _p("include_archived", bool, False), GROUP,
                         MIN_TRUST),
              SearchResponse, "POST", "/v1/search",
              "The few memories of a scope that best answer `query`, with per-channel scores.",
              read_only=True, idempotent=True),
    Operation("context", (*_search_params(50), _p("max_tokens", int, 1000),
                          _p("as_of", Time, None), PLAN, _p("now", Time, None),
                          _p("include_archived", bool, False), GROUP, MIN_TRUST),
              ContextBlock, "POST", "/v1/context",
              "`search`, then the best hits packed into one prompt block of `max_tokens`.",
              read_only=True, idempotent=True),
    Operation("chat", (_p("message", str, positional=True), *SCOPE, _p("limit", int, 8),
                       _p("max_tokens", int, 256), _p("temperature", float, 0.0),
                       _p("infer", bool, True), _p("stream", bool, False)),
              ChatResponse | Iterator[ChatEvent], "POST", "/v1/chat",
              "Answer `message` with memory through the configured LLM.",
              stream="sse", stream_flag="stream"),
    Operation("get", (MEMORY_ID,), MemoryRecord, "GET", "/v1/memories/{memory_id}",
              "One memory by id.", read_only=True, idempotent=True),
    Operation("get_all", (*SCOPE, FILTERS, KINDS, _p("limit", int, 100),
                          _p("cursor", str | None, None), _p("include_inactive", bool, False),
                          _p("include_archived", bool, False), _p("status", str | None, None),
                          MIN_TRUST),
              Page, "GET", "/v1/memories",
              "One page of a scope's memories, oldest first; pass `next_cursor` for the next.",
              read_only=True, idempotent=True),
    Operation("history", (MEMORY_ID,), list[HistoryEntry], "GET",
              "/v1/memories/{memory_id}/history", "Every change of a memory, oldest first.",
              read_only=True, idempotent=True),
    Operation("messages", (*SCOPE, _p("limit", int, 1000)), list[StoredMessage],
              "GET", "/v1/messages", "The raw messages of a scope, in time order.",
              read_only=True, idempotent=True),
    Operation("stats", (), StoreStats, "GET", "/v1/stats",
              "Counts by kind and status, and index sizes.", read_only=True, idempotent=True),
    # -- import / export
    Operation("export", (*SCOPE, _p("include_inactive", bool, True), _p("full", bool, False)),
              Iterator[ExportItem],
              "GET", "/v1/export",
              "Every memory of a scope (or of the whole tenant when no scope is named); with "
              "`full`, its raw messages and history too.",
              stream="ndjson", read_only=True,
              idempotent=True),
    Operation("import_records",
              (_p("records", Iterable[dict[str, Any] | ExportItem], positional=True),),
              dict[str, int], "POST", "/v1/import",
              "Load exported memories; ids already present are skipped, vectors recomputed.",
              idempotent=True),
)

_BY_NAME = {op.name: op for op in OPERATIONS}


def operation(name: str) -> Operation:
    """The operation called `name` (KeyError names the known ones)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no SDK operation {name!r}; known: {sorted(_BY_NAME)}") from None
