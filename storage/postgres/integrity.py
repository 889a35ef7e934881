"""The PostgreSQL side of tamper evidence: the `Layout` the shared integrity code
(memsvc.storage.integrity.guard) works through, and opening it on a database.

What is PostgreSQL's own:
- Several processes (replicas) write one database, so a chain's writers are serialised by a
  transaction-level advisory lock on (tenant, scope), taken before its head is read: two
  writers can never both extend the same head (fork the chain). A deadlock between two
  writes touching two scopes in opposite order is retried by the store.
- JSON is `jsonb`, which keeps numbers as `numeric`: a float written as `1e+16` comes back
  as the integer 10000000000000000 and `-0.0` as `0.0`, so those are signed as they will be
  read.
- The witness file is named after the store's URL without its password (a database dropped
  and created again under the same URL is still compared with what was witnessed there);
  the store id in `store_meta` is bound into every MAC as on SQLite.
- Vectors live in the `memories` rows: nothing else to keep in step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, make_url, text

from memsvc.storage.integrity.codec import RowKind
from memsvc.storage.integrity.guard import Layout, StoreIntegrity, stored_form
from memsvc.storage.postgres.graph import purge_orphans
from memsvc.storage.postgres.tables import RECORD_COLUMNS, pg_memories

_JSON_FIELDS = frozenset({"entities", "metadata", "source_message_ids", "old", "new"})


def _as_jsonb(value: Any) -> Any:
    """`value` as it comes back from a jsonb column (see module docstring)."""
    if isinstance(value, float):
        if value == 0:
            return 0.0
        # numeric keeps the decimal digits: 1.2345678901234567e+20 → 123456789012345670000
        return int(Decimal(repr(value))) if "e+" in repr(value) else value
    if isinstance(value, dict):
        return {k: _as_jsonb(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_jsonb(v) for v in value]
    return value


def jsonb_stored_form(kind: RowKind, values: Mapping[str, Any]) -> dict[str, Any]:
    out = stored_form(kind, values)
    for name in _JSON_FIELDS.intersection(out):
        out[name] = _as_jsonb(out[name])
    return out


def _lock_scope(conn: Connection, tenant: str, scope: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"),
                 {"k": json.dumps(["memsvc-chain", tenant, scope])})


def witness_name(url: str) -> str:
    """The witness file of the store at `url`: its URL without the password, hashed."""
    bare = make_url(url)._replace(password=None).render_as_string(hide_password=False)
    return "pg-" + hashlib.sha256(bare.encode()).hexdigest()[:32]


def postgres_layout(reading: Callable[[str], AbstractContextManager[Connection]]) -> Layout:
    return Layout(
        memories=pg_memories,
        columns=RECORD_COLUMNS,
        reading=reading,
        purge_orphans=purge_orphans,
        stored_form=jsonb_stored_form,
        lock_scope=_lock_scope,
    )


def open_integrity(url: str, conn: Connection,
                   reading: Callable[[str], AbstractContextManager[Connection]]
                   ) -> StoreIntegrity:
    """The key, the store id (read on `conn`) and the witness of the store at `url`;
    `reading(tenant)` opens a fresh read transaction of a tenant."""
    return StoreIntegrity(postgres_layout(reading), conn, witness_name(url))


__all__ = ["open_integrity", "postgres_layout", "witness_name"]
