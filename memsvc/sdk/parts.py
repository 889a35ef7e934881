"""What the parts of `Memory` share: the attributes `Memory.__init__` sets.

`Memory` is assembled from one class per job (sdk/search.py: reads, sdk/writes.py: writes,
sdk/io.py: import and export) so no module holds the whole facade; each part reads the
collaborators declared here, and only `Memory.__init__` (sdk/memory.py) builds them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Extractor
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.model.settings import Settings
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import SearchPlan
from memsvc.sdk.access_log import AccessLog
from memsvc.sdk.chat_engine import ChatEngine
from memsvc.storage.base import MemoryStore
from memsvc.write.manager import WriteManager


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
