"""Canonical encoding and the MACs of rows, chain entries and chain heads.

Every backend signs the same bytes for the same record, so a store can move between backends
(and the PostgreSQL backend reuses these functions unchanged). A MAC is HMAC-SHA256, hex, over
a JSON array: a format version, what is signed, the store's id, the owner (tenant + scope) and
the position (chain seq), then the record's fields in a fixed order. Datetimes are written as
integer microseconds since the Unix epoch (naive ones read as UTC); JSON fields (metadata,
entities, history snapshots) with sorted keys. The backend hands over values in the form it
reads them back (see `SIGNED_FIELDS`), so signing at write time and checking at read time see
the same values.

What is *not* signed, on purpose:
- `access_count` and `last_accessed_at`: every search bumps them (off the read path, in
  batches); signing them would turn each read into a write of a new MAC and chain entry.
  They feed ranking decay only; a forged count can reorder, never alter, what is served.
- storage-internal columns: the row's primary key, the FTS scope token (derived from tenant
  and user, both signed) and the vector (derived from the signed text by the embedder).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

FORMAT = 1
GENESIS = "0" * 64  # the "previous tag" of a scope's first entry
RowKind = Literal["memory", "message", "history"]

MEMORY_FIELDS = (
    "id", "user_id", "agent_id", "session_id", "kind", "text", "subject", "predicate",
    "object", "entities", "metadata", "valid_from", "valid_to", "created_at", "updated_at",
    "invalidated_at", "source_message_ids", "extractor", "extractor_version", "confidence",
    "status", "superseded_by", "importance", "content_hash", "version",
)
MESSAGE_FIELDS = (
    "id", "user_id", "agent_id", "session_id", "role", "name", "content", "timestamp",
    "created_at", "metadata",
)
HISTORY_FIELDS = ("memory_id", "event", "old", "new", "actor", "reason", "created_at")
# provenance (migration 0006): signed after the fields above, except on a row that still
# holds what 0006 gave rows written before it, which keeps the MAC it was signed with. The
# two forms differ in length, so neither can pass for the other: a row whose provenance is
# edited either way no longer matches its MAC.
PROVENANCE_FIELDS = ("writer", "channel", "trust")
LEGACY_PROVENANCE = ("legacy", "user", 3)
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "memory": MEMORY_FIELDS,
    "message": MESSAGE_FIELDS,
    "history": HISTORY_FIELDS,
}
# the prefix of a row's reference in the chain: "mem:<memory id>" and so on
REF_PREFIX: dict[str, str] = {"memory": "mem:", "message": "msg:", "history": "his:"}


def scope_key(user_id: str | None) -> str:
    """The chain a record belongs to inside its tenant: its user ('' for none)."""
    return user_id or ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        # exact integer microseconds since the epoch: zone-free, and 6× faster than ISO text
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _MICROSECOND
    raise TypeError(f"cannot sign a {type(value).__name__}")


# one encoder, reused (json.dumps with options builds a new one per call)
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_default
)


def canonical(parts: list[Any]) -> bytes:
    """The exact bytes a MAC covers."""
    return _ENCODER.encode(parts).encode("utf-8", "surrogatepass")


def _mac(key: bytes, parts: list[Any]) -> str:
    return hmac.digest(key, canonical(parts), "sha256").hex()


def row_mac(
    key: bytes,
    kind: RowKind,
    *,
    store_id: str,
    tenant: str,
    scope: str,
    seq: int,
    values: Mapping[str, Any],
) -> str:
    """The MAC of one memory, message or history row at position `seq` of its scope's chain:
    content, metadata, owner (tenant + scope) and identity (ids are among the fields)."""
    parts = [FORMAT, kind, store_id, tenant, scope, seq,
             *(values[f] for f in SIGNED_FIELDS[kind])]
    if kind == "memory":
        parts += _provenance(values)
    return _mac(key, parts)


def _provenance(values: Mapping[str, Any]) -> list[Any]:
    """The provenance part of a memory's MAC: nothing for a row from before migration 0006
    (or signed by 0005, which had no such columns), the three fields otherwise."""
    found = tuple(values.get(f) for f in PROVENANCE_FIELDS)
    if found in (LEGACY_PROVENANCE, (None, None, None)):
        return []
    return list(found)


def entry_tag(
    key: bytes,
    *,
    store_id: str,
    tenant: str,
    scope: str,
    seq: int,
    prev: str,
    ref: str,
    event: str,
    digest: str,
) -> str:
    """The tag of chain entry `seq`: it binds the previous tag, what changed (`ref`, `event`)
    and the MAC of the row as it was written (`digest`; '' for a deletion)."""
    return _mac(key, [FORMAT, "entry", store_id, tenant, scope, seq, prev, ref, event, digest])


def head_mac(
    key: bytes,
    *,
    store_id: str,
    tenant: str,
    scope: str,
    base: int,
    base_tag: str,
    seq: int,
    tag: str,
    counts: tuple[int, int, int],
) -> str:
    """The MAC of a scope's head: its length, last tag and live row counts (memories,
    messages, history), which is what catches deleted rows and a truncated chain."""
    return _mac(
        key, [FORMAT, "head", store_id, tenant, scope, base, base_tag, seq, tag, *counts]
    )


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tags (None never matches)."""
    return a is not None and b is not None and hmac.compare_digest(a, b)
