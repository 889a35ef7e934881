"""The witness: each scope's chain head (length + last tag) kept outside the store.

Why: a head stored beside the rows rolls back with them. Someone who restores an older copy
of the whole store file (every row, entry and head genuine and consistent) is caught only by
a record the copy does not include. The witness is a small JSON file per store,
`<witness dir>/<store id>.json`, in `MEMSVC_WITNESS_DIR` or `<config dir>/witness`, updated
after every committed write. A store *ahead* of its witness is fine (a crash between the
commit and the witness update; another process wrote); a store *behind* it, or with a
different tag at the witnessed length, was rolled back.

Writers in several processes share the file: each update takes an exclusive lock, re-reads
the file and keeps, per scope, the longer head, so a slow writer never moves it backwards.
One file holds every scope of the store, so it suits stores with up to some thousands of
scopes; it is rewritten whole on each write.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from memsvc.storage.integrity.keys import config_dir

try:  # POSIX; elsewhere writers in one process are still serialized by the store
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

ENV_WITNESS_DIR = "MEMSVC_WITNESS_DIR"
Point = tuple[int, str]  # (seq, tag)
Heads = dict[tuple[str, str], Point]  # (tenant, scope) -> point


def witness_dir() -> Path:
    override = os.environ.get(ENV_WITNESS_DIR)
    return Path(override).expanduser() if override else config_dir() / "witness"


class Witness:
    """The witness file of one store; `known` is what this process last read or wrote."""

    def __init__(self, store_id: str, directory: Path | None = None) -> None:
        self.directory = directory or witness_dir()
        self.path = self.directory / f"{store_id}.json"
        self.store_id = store_id
        self.known: Heads = {}

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Heads:
        self.known = self._read()
        return dict(self.known)

    def advance(self, points: Iterable[tuple[str, str, int, str]]) -> None:
        """Record heads after a commit; a scope's witnessed head only ever moves forward."""
        fresh = list(points)
        if not fresh:
            return
        with self._locked():
            current = self._read()
            for tenant, scope, seq, tag in fresh:
                old = current.get((tenant, scope))
                if old is None or seq > old[0]:
                    current[(tenant, scope)] = (seq, tag)
            self._write(current)
        self.known = current

    def replace(self, points: Iterable[tuple[str, str, int, str]]) -> None:
        """Re-baseline to exactly these heads (an operator accepting a restored backup)."""
        fresh: Heads = {(t, s): (seq, tag) for t, s, seq, tag in points}
        with self._locked():
            self._write(fresh)
        self.known = fresh

    def _read(self) -> Heads:
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {
            (tenant, scope): (int(point[0]), str(point[1]))
            for tenant, scopes in stored.get("scopes", {}).items()
            for scope, point in scopes.items()
        }

    def _write(self, heads: Heads) -> None:
        nested: dict[str, dict[str, list[object]]] = {}
        for (tenant, scope), (seq, tag) in sorted(heads.items()):
            nested.setdefault(tenant, {})[scope] = [seq, tag]
        text = json.dumps({"store_id": self.store_id, "scopes": nested}, indent=1)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
