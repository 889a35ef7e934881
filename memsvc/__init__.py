"""memsvc: long-term memory for AI agents, in one SQLite file.

    from memsvc import Memory
    m = Memory()
    m.add("I moved to Denver last month", user_id="alice")
    m.search("where does alice live?", user_id="alice")
"""

import os

# torch's OpenMP runtime on Linux (libgomp) keeps a finished parallel region's workers
# spinning for GOMP_SPINCOUNT rounds (300,000 by default: milliseconds of a full core) in
# case more work follows. A search embeds its query and then runs SQLite channels, which found
# a core still burning: the vector channel took 9.7 ms instead of 7.5, a search 18 ms
# instead of 15 (10k memories in one scope). 10,000 rounds still bridge the gaps inside one
# forward pass. libgomp reads it once, when torch is first imported, which is why it is set
# here, before anything of memsvc can import torch; a value already set wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

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
