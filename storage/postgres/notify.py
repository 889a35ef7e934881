"""Telling every replica that the API keys changed: PostgreSQL LISTEN/NOTIFY.

Why LISTEN/NOTIFY and not a version counter for the key cache: the cache exists to spare
each request its key lookup, and checking a counter in the database costs the same round
trip as the lookup itself (one index probe), so a counter would make the cache pointless.
A notification costs nothing per request: `create` and `revoke` send one in their own
transaction (PostgreSQL delivers it at commit, never for a rolled-back change), and a
thread of each replica holding a LISTEN connection clears that replica's cache.

What keeps it safe: the cache is trusted only while the listener is connected (after a
lost connection, every request looks its key up until LISTEN is back, since notifications
sent meanwhile are gone) and while nothing unread waits on its socket (a `select` with no
timeout, so a notification that has arrived counts before the listener thread has even
woken up); and each notification moves a generation counter, so a lookup that started
before a revoke cannot put the revoked key back into the cache afterwards. The window
left is the notification's transit from the database to the replica, shorter than the
revoke's answer's way back to its caller plus a new request's way to the replica.

The per-user graph cache takes the other road, version counters in the database
(`graph_state`, bumped in every transaction that changes links, storage/sqlite/graph.py):
there, checking the counter (one row) spares rebuilding a whole graph, and it is exact.
"""

from __future__ import annotations

import logging
import select
import threading

import psycopg
from sqlalchemy import Connection, text

log = logging.getLogger("memsvc.storage")
CHANNEL = "memsvc_api_keys"
_POLL_SECONDS = 1.0


class KeyChangeFeed:
    """`memsvc.storage.keys.ChangeFeed` over LISTEN/NOTIFY; the listener starts on first use."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._generation = 0
        self._live = False
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def generation(self) -> int:
        return self._generation

    def live(self) -> bool:
        """Whether every change is being heard (starts listening on the first call)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._listen, daemon=True,
                                                    name="memsvc-key-listener")
                    self._thread.start()
        fd = self._fd
        if not self._live or fd is None:
            return False
        try:
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):  # the connection is closing
            return False
        return not readable

    def announce(self, conn: Connection) -> None:
        """Tell every replica, when the caller's transaction commits."""
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2 * _POLL_SECONDS + 1)

    def _changed(self) -> None:
        self._generation += 1  # only this thread writes it

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._changed()  # whatever was cached before listening is suspect
                    self._fd = conn.fileno()
                    self._live = True
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=_POLL_SECONDS):
                            self._changed()
            except psycopg.Error as exc:
                log.warning("API key change listener lost its connection: %s", exc)
            finally:
                self._live = False
                self._fd = None
                self._changed()
            self._stop.wait(_POLL_SECONDS)
