"""OnceCache: one computation per key, even when callers race; failures are not kept."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from memsvc.retrievers.once import OnceCache


def test_concurrent_callers_share_one_computation() -> None:
    cache: OnceCache[str, int] = OnceCache(4)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get, "q", slow)
        assert started.wait(5)
        second = pool.submit(cache.get, "q", lambda: -1)
        release.set()
        assert (first.result(5), second.result(5)) == (42, 42)
    assert calls == [1]


def test_least_recently_used_key_is_dropped() -> None:
    cache: OnceCache[str, str] = OnceCache(2)
    cache.get("a", lambda: "a1")
    cache.get("b", lambda: "b1")
    cache.get("a", lambda: "a2")  # a is now the most recent
    cache.get("c", lambda: "c1")  # drops b
    assert cache.get("a", lambda: "a3") == "a1"
    assert cache.get("b", lambda: "b2") == "b2"


def test_a_failure_is_not_cached() -> None:
    cache: OnceCache[str, int] = OnceCache(2)

    def boom() -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.get("k", boom)
    assert cache.get("k", lambda: 7) == 7
