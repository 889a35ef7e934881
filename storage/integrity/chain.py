"""The per-scope chain: append-only entries, one per change, and the head that closes it.

Why a chain of its own rather than the rows: rows change (an update rewrites a memory) and
rows go away (a hard delete erases a memory and its history, for privacy), yet deleting or
rolling back a row must still show. So every change a store applies appends an entry to the
chain of its owner (tenant + user): the row's reference, the event, and the MAC of the row as
written, tagged together with the previous entry's tag. A row's own MAC names its position
(seq), and the *latest* entry of a memory must carry that row's MAC, so a memory replaced by
an older genuine version of itself fails too. The head (length, last tag, live row counts)
is kept in the store, signed, and by a witness outside it (see witness.py).

Erasure: a full erase of a scope (hard delete of a user, reset) prunes the scope's entries
and appends one "erase" entry; the head keeps the pruned part's length and last tag (`base`,
`base_tag`), so the sequence never restarts and a rolled-back copy is still older.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memsvc.storage.integrity.codec import (
    GENESIS,
    REF_PREFIX,
    RowKind,
    entry_tag,
    head_mac,
    row_mac,
)
from memsvc.storage.integrity.keys import Keyring

COUNTED = ("memories", "messages", "history")
_TABLE_OF: dict[str, str] = {"memory": "memories", "message": "messages", "history": "history"}


@dataclass
class Head:
    """A scope's chain head as stored (and signed) beside the rows."""

    tenant: str
    scope: str
    seq: int = 0
    tag: str = GENESIS
    base: int = 0  # entries up to `base` were pruned by an erase; `base_tag` is the last one's
    base_tag: str = GENESIS
    memories: int = 0
    messages: int = 0
    history: int = 0
    mac_key: str = ""
    mac: str = ""

    @property
    def counts(self) -> tuple[int, int, int]:
        return (self.memories, self.messages, self.history)

    def expected_mac(self, key: bytes, store_id: str) -> str:
        return head_mac(
            key, store_id=store_id, tenant=self.tenant, scope=self.scope, base=self.base,
            base_tag=self.base_tag, seq=self.seq, tag=self.tag, counts=self.counts,
        )


@dataclass(frozen=True)
class Entry:
    tenant: str
    scope: str
    seq: int
    ref: str
    event: str
    digest: str
    tag: str
    mac_key: str


@dataclass(frozen=True)
class Seal:
    """What a signed row stores beside its values."""

    chain_seq: int
    mac: str
    mac_key: str

    def columns(self) -> dict[str, Any]:
        return {"chain_seq": self.chain_seq, "mac": self.mac, "mac_key": self.mac_key}


HeadLoader = Callable[[str, str], Head | None]


@dataclass
class ChainWriter:
    """Signs the rows of one write and appends their chain entries, inside its transaction.

    The backend loads heads on demand (`load`, one query per scope touched), stores
    `entries` and `changed_heads()` before committing, and tells the witness after.
    """

    keyring: Keyring
    store_id: str
    load: HeadLoader
    entries: list[Entry] = field(default_factory=list)
    pruned: list[Head] = field(default_factory=list)  # delete their entries up to `base`
    _heads: dict[tuple[str, str], Head] = field(default_factory=dict)
    _changed: set[tuple[str, str]] = field(default_factory=set)

    def head(self, tenant: str, scope: str) -> Head:
        key = (tenant, scope)
        if key not in self._heads:
            self._heads[key] = self.load(tenant, scope) or Head(tenant, scope)
        return self._heads[key]

    def sign(
        self, kind: RowKind, tenant: str, scope: str, values: Mapping[str, Any], *,
        event: str, ref: str | None = None,
    ) -> Seal:
        """Sign a row written by this change (its values in stored form) and append its
        entry; an insert also counts the row."""
        head = self.head(tenant, scope)
        seq = head.seq + 1
        mac = row_mac(
            self.keyring.current, kind, store_id=self.store_id, tenant=tenant, scope=scope,
            seq=seq, values=values,
        )
        identity = ref if ref is not None else str(values["id"])
        self._append(head, REF_PREFIX[kind] + identity, event, mac)
        if event == "insert":
            self.count(tenant, scope, _TABLE_OF[kind], +1)
        return Seal(seq, mac, self.keyring.current_id)

    def note(self, tenant: str, scope: str, ref: str, event: str) -> None:
        """An entry for a change that leaves no signed row (a deletion)."""
        self._append(self.head(tenant, scope), ref, event, "")

    def count(self, tenant: str, scope: str, table: str, delta: int) -> None:
        head = self.head(tenant, scope)
        setattr(head, table, getattr(head, table) + delta)
        self._changed.add((tenant, scope))

    def erase(self, tenant: str, scope: str) -> None:
        """Every row of the scope is gone: prune its entries, zero its counts, and append
        one "erase" entry so the chain moves on (a copy from before is older)."""
        head = self.head(tenant, scope)
        self.entries = [e for e in self.entries if (e.tenant, e.scope) != (tenant, scope)]
        head.base, head.base_tag = head.seq, head.tag
        head.memories = head.messages = head.history = 0
        self.pruned.append(head)
        self._append(head, "*", "erase", "")

    def _append(self, head: Head, ref: str, event: str, digest: str) -> None:
        seq = head.seq + 1
        tag = entry_tag(
            self.keyring.current, store_id=self.store_id, tenant=head.tenant,
            scope=head.scope, seq=seq, prev=head.tag, ref=ref, event=event, digest=digest,
        )
        self.entries.append(
            Entry(head.tenant, head.scope, seq, ref, event, digest, tag, self.keyring.current_id)
        )
        head.seq, head.tag = seq, tag
        self._changed.add((head.tenant, head.scope))

    def changed_heads(self) -> list[Head]:
        """The heads this write moved, signed with the current key."""
        out = []
        for key in sorted(self._changed):
            head = self._heads[key]
            head.mac_key = self.keyring.current_id
            head.mac = head.expected_mac(self.keyring.current, self.store_id)
            out.append(head)
        return out
