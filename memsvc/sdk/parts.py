"""What the parts of `Memory` share: the attributes `Memory.__init__` sets.

`Memory` is assembled from one class per job (sdk/search.py: reads, sdk/writes.py: writes,
sdk/io.py: import and export) so no module holds the whole facade; each part reads the
collaborators declared here, and only `Memory.__init__` (sdk/memory.py) builds them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import TypeVar

from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Extractor
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.model.errors import ForbiddenError
from memsvc.model.records import MemoryRecord, StoredMessage
from memsvc.model.settings import Settings
from memsvc.model.trust import Writer
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import SearchPlan
from memsvc.sdk.access_log import AccessLog
from memsvc.sdk.chat_engine import ChatEngine
from memsvc.storage.base import MemoryStore
from memsvc.write.manager import WriteManager

# what `_check_owner` checks: anything with an owning scope
R = TypeVar("R", bound=MemoryRecord | StoredMessage)


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryParts:
    settings: Settings
    embedder: Embedder
    store: MemoryStore
    extractor: Extractor | None
    chat_engine: ChatEngine | None
    retriever: HybridRetriever
    default_plan: SearchPlan
    _episodes: EpisodeExtractor
    _manager: WriteManager
    _access: AccessLog
    # who writes through this object (memsvc.model.trust): LOCAL for the embedded SDK; the
    # server hands each request a view `acting_as` the writer its API key resolves to
    _writer: Writer

    def _own_user(self, user_id: str | None) -> str | None:
        """The user a call acts for: a bound writer's own (named or implied), else as given."""
        bound = self._writer.user_id
        if bound is None:
            return user_id
        if user_id is not None and user_id != bound:
            raise ForbiddenError(f"this API key may act only for user {bound!r}",
                                 field="user_id")
        return bound

    def _check_owner(self, record: R, *, field: str = "memory_id") -> R:
        """`record` (a memory or a message), if a bound writer may touch it (ForbiddenError
        otherwise)."""
        bound = self._writer.user_id
        if bound is not None and record.scope.user_id != bound:
            raise ForbiddenError(f"this API key may act only for user {bound!r}",
                                 field=field)
        return record

    def _forbid_bound(self, what: str) -> None:
        """Tenant-wide operations are not for a key bound to one user."""
        if self._writer.user_id is not None:
            raise ForbiddenError(f"{what} acts on the whole tenant; this API key may act "
                                 f"only for user {self._writer.user_id!r}")


M = TypeVar("M", bound=MemoryParts)


def acting_as(memory: M, writer: Writer) -> M:
    """`memory` as seen by `writer`: the same store, retriever and caches (a shallow copy),
    its writes stamped with that writer's id and trust ceiling, and, for a key bound to one
    user, every call confined to that user (ForbiddenError otherwise). Closing the view
    closes what it shares: close the original only. The server builds one per request."""
    view = copy.copy(memory)
    view._writer = writer
    return view
