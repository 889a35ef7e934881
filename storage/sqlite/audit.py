"""`memsvc verify` on a SQLite file (through `memsvc.storage.factory.open_auditor`): the
whole-store work itself is shared (memsvc.storage.integrity.whole_store); this opens the file
with any vector width and no embedder. `sign_existing` is what migration 0005 runs.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity import whole_store
from memsvc.storage.integrity.checks import Finding
from memsvc.storage.integrity.keys import Keyring
from memsvc.storage.schema import memories
from memsvc.storage.sqlite.engine import open_engine, reading
from memsvc.storage.sqlite.integrity import open_integrity


def sign_existing(conn: Connection, keyring: Keyring, store_id: str) -> int:
    """Sign a file written before MACs (migration 0005)."""
    return whole_store.sign_existing(conn, keyring, store_id, memories)


class SQLiteAuditor:
    """A SQLite file opened for `memsvc verify`: any vector width, no embedder."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise IntegrityError(f"no store at {path}")
        self.path = path
        self.engine: Engine = open_engine(path, None)
        try:
            self.guard = open_integrity(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def audit(self) -> list[Finding]:
        with reading(self.engine) as conn:
            return whole_store.audit(conn, self.guard)

    def rekey(self) -> int:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            n = whole_store.rekey(conn, self.guard)
            heads = whole_store.heads_of(conn)
        self.guard.witness.replace(heads)
        return n

    def reset_witness(self) -> int:
        with reading(self.engine) as conn:
            return whole_store.reset_witness(conn, self.guard)

    def close(self) -> None:
        self.engine.dispose()
