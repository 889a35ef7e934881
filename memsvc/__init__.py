"""memsvc: long-term memory for AI agents.

    from memsvc import Memory
    m = Memory()
    m.add("I moved to Denver last month", user_id="alice")
    m.search("where does alice live?", user_id="alice")

The names below are re-exported lazily (PEP 562): `import memsvc` loads nothing but this file,
so a tool that only needs, say, `memsvc.text.timeparse` does not pay for SQLAlchemy and torch,
and importing the package changes nothing in the host process.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Memory": "memsvc.sdk.memory",
    "AsyncMemory": "memsvc.sdk.async_memory",
    "MemoryClient": "memsvc.sdk.client",
    "AsyncMemoryClient": "memsvc.sdk.client",
    "ContextBlock": "memsvc.retrievers.context",
    "RECIPES": "memsvc.retrievers.plan",
    "ChannelSpec": "memsvc.retrievers.plan",
    "SearchPlan": "memsvc.retrievers.plan",
    **{
        name: "memsvc.model.errors"
        for name in (
            "EmptyTextError", "EncodingError", "InvalidFilterError", "InvalidInputError",
            "InvalidTimestampError", "MemsvcError", "NotFoundError", "ScopeRequiredError",
            "StoreError", "TextTooLargeError", "UnauthorizedError",
        )
    },
    **{
        name: "memsvc.model.records"
        for name in (
            "AddResult", "HistoryEntry", "MemoryKind", "MemoryRecord", "MemoryStatus", "Page",
            "Scope", "ScoredMemory", "SearchResponse",
        )
    },
}

__all__ = [
    "RECIPES",
    "AddResult",
    "AsyncMemory",
    "AsyncMemoryClient",
    "ChannelSpec",
    "ContextBlock",
    "EmptyTextError",
    "EncodingError",
    "HistoryEntry",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidTimestampError",
    "Memory",
    "MemoryClient",
    "MemoryKind",
    "MemoryRecord",
    "MemoryStatus",
    "MemsvcError",
    "NotFoundError",
    "Page",
    "Scope",
    "ScopeRequiredError",
    "ScoredMemory",
    "SearchPlan",
    "SearchResponse",
    "StoreError",
    "TextTooLargeError",
    "UnauthorizedError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memsvc' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from memsvc.model.errors import (
        EmptyTextError,
        EncodingError,
        InvalidFilterError,
        InvalidInputError,
        InvalidTimestampError,
        MemsvcError,
        NotFoundError,
        ScopeRequiredError,
        StoreError,
        TextTooLargeError,
        UnauthorizedError,
    )
    from memsvc.model.records import (
        AddResult,
        HistoryEntry,
        MemoryKind,
        MemoryRecord,
        MemoryStatus,
        Page,
        Scope,
        ScoredMemory,
        SearchResponse,
    )
    from memsvc.retrievers.context import ContextBlock
    from memsvc.retrievers.plan import RECIPES, ChannelSpec, SearchPlan
    from memsvc.sdk.async_memory import AsyncMemory
    from memsvc.sdk.client import AsyncMemoryClient, MemoryClient
    from memsvc.sdk.memory import Memory
