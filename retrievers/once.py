"""A small bounded cache whose value for a key is computed once, even by concurrent callers.

One search asks the graph the same things twice, from two threads at once: the topic channel
(on the calling thread, before the query is embedded) and the graph channel (on the pool)
both want the scope's graph and the entities the question names. With a plain memo both
would miss and compute; here the first caller computes and the other waits for its result,
which costs the waiter no CPU and no more wall time than computing it itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OnceCache(Generic[K, V]):
    """The last `size` keys' values (least recently used out first). Thread-safe; a
    computation that raises is not cached (its waiters get the exception, the next caller
    computes again)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, Future[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = self._entries[key] = Future()
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if not owner:
            return entry.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            entry.set_exception(exc)
            raise
        entry.set_result(value)
        return value
