"""Access counts of searched memories, written behind the searches in batches.

A search that wrote its hits' `access_count` itself took the store's write lock on the read
path: 0.6 ms of every search, and a search queued behind any long write (a big `add`, a
consolidation) for as long as that write held the lock. Counts now gather in memory and are
written together, by one short transaction, a second after the first of them (or at once when
many are waiting). Anything that reads them back through `Memory` (get, get_all, export,
consolidate) flushes first, so within one process nothing is ever seen stale; a crash loses at
most that last second of counts, which only feed decay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from memsvc.model.errors import MemsvcError
from memsvc.storage.base import MemoryStore

log = logging.getLogger(__name__)


class AccessLog:
    def __init__(
        self, store: MemoryStore, *, flush_after_s: float = 1.0, max_pending: int = 1000
    ) -> None:
        self._store = store
        self._flush_after_s = flush_after_s
        self._max_pending = max_pending
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, so counts land in order
        self._timer: threading.Timer | None = None

    def record(self, memory_ids: Sequence[str], at: datetime) -> None:
        """Count one access to each of `memory_ids` at `at`."""
        if not memory_ids:
            return
        with self._lock:
            for memory_id in memory_ids:
                count, _ = self._pending.get(memory_id, (0, at))
                self._pending[memory_id] = (count + 1, at)
            full = len(self._pending) >= self._max_pending
            if self._timer is None and not full:
                self._timer = threading.Timer(self._flush_after_s, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every pending count now (a no-op when none is pending)."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                timer, self._timer = self._timer, None
            if timer is not None and timer is not threading.current_thread():
                timer.cancel()
            if not pending:
                return
            try:
                self._store.record_access(pending)
            except MemsvcError as error:  # advisory numbers: never fail a caller over them
                log.warning("dropped %d access counts: %s", len(pending), error)

    def close(self) -> None:
        self.flush()
