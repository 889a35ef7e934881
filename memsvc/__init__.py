"""memsvc: long-term memory for AI agents, in one SQLite file.

    from memsvc import Memory
    m = Memory()
    m.add("I moved to Denver last month", user_id="alice")
    m.search("where does alice live?", user_id="alice")
"""

from memsvc.async_memory import AsyncMemory
from memsvc.client import AsyncMemoryClient, MemoryClient
from memsvc.errors import (
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
from memsvc.memory import Memory
from memsvc.models import (
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

__version__ = "0.1.0"

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
