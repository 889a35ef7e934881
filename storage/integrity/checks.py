"""The checks themselves, and what a store does with a failure: refuse, log, count.

Backend-neutral: a backend fetches rows, heads and chain entries and asks these functions
whether they hold. Three levels, cheapest first:
- a row (every read): its MAC under the key it names, and whether the chain's latest entry
  for it carries that MAC (`row_problem`);
- a scope (on open, on list): the head's MAC, the chain's length and last tag against it,
  the live row counts against it (deleted or forged rows), the witness against it
  (a rolled-back store) (`head_problem`, `scope_problems`);
- the whole chain (audit, `memsvc verify`): every entry's tag from the first (`walk`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity.chain import COUNTED, Entry, Head
from memsvc.storage.integrity.codec import RowKind, entry_tag, row_mac, same
from memsvc.storage.integrity.keys import Keyring
from memsvc.storage.integrity.witness import Point

log = logging.getLogger("memsvc.integrity")


@dataclass(frozen=True)
class Finding:
    """One integrity failure: where (tenant, scope, record) and what."""

    tenant: str
    scope: str
    what: str  # "memory", "message", "history", "chain", "head", "witness", "counts"
    ref: str | None
    detail: str

    def __str__(self) -> str:
        where = f"tenant {self.tenant!r} scope {self.scope or '(no user)'!r}"
        thing = f"{self.what} {self.ref}" if self.ref else self.what
        return f"{where}: {thing}: {self.detail}"


def row_problem(
    keyring: Keyring,
    kind: RowKind,
    *,
    store_id: str,
    tenant: str,
    scope: str,
    values: Mapping[str, Any],
    chain_digest: str | None,
) -> str | None:
    """Why a row must not be served, or None. `values` holds its signed fields and its
    `chain_seq`, `mac`, `mac_key`; `chain_digest` is the digest of the chain entry that must
    name it (a memory: the latest entry of its id; others: the entry at its seq)."""
    mac, seq = values.get("mac"), values.get("chain_seq")
    if not mac or seq is None:
        return "not signed"
    key = keyring.get(values.get("mac_key"))
    if key is None:
        return f"signed with an unknown key {values.get('mac_key')!r}"
    expected = row_mac(
        key, kind, store_id=store_id, tenant=tenant, scope=scope, seq=int(seq), values=values
    )
    if not same(expected, mac):
        return "MAC mismatch: content, metadata, owner or position changed"
    if not same(chain_digest, mac):
        return "not the change the chain last recorded for it (rolled back, replayed or moved)"
    return None


def head_problem(keyring: Keyring, store_id: str, head: Head) -> str | None:
    key = keyring.get(head.mac_key)
    if key is None:
        return f"head signed with an unknown key {head.mac_key!r}"
    if not same(head.expected_mac(key, store_id), head.mac):
        return "head MAC mismatch"
    return None


def scope_problems(
    head: Head | None,
    *,
    last: Point | None,
    counts: Mapping[str, int],
    entries: int | None = None,
    witnessed: Point | None = None,
    tag_at_witness: str | None = None,
) -> list[str]:
    """What is wrong with a scope, given its head (None: rows without one), its last chain
    entry, the live rows counted per table (those present), how many entries it holds
    (None: not counted) and the witness (None: not witnessed)."""
    if head is None:
        rows = sum(counts.values())
        return [f"{rows} rows but no chain head"] if rows or last else []
    out = []
    if head.seq > head.base:
        if last is None or last[0] != head.seq or not same(last[1], head.tag):
            end = last[0] if last else head.base
            out.append(f"chain ends at {end}, head says {head.seq} (truncated or rewritten)")
    elif last is not None:
        out.append("chain entries after an erase the head does not know")
    if entries is not None and entries != head.seq - head.base:
        out.append(f"chain holds {entries} entries, head says {head.seq - head.base}")
    for table in COUNTED:
        if table in counts and counts[table] != getattr(head, table):
            out.append(f"{counts[table]} {table} rows, head says {getattr(head, table)}"
                       " (rows deleted or inserted outside memsvc)")
    if witnessed is not None:
        seq, tag = witnessed
        if head.seq < seq:
            out.append(f"store is at {head.seq} but the witness saw {seq}: rolled back")
        elif head.seq == seq and not same(head.tag, tag):
            out.append(f"head tag differs from the witness at {seq}: replaced")
        elif head.seq > seq > head.base and not same(tag_at_witness, tag):
            out.append(f"entry {seq} differs from the witness: history rewritten")
    return out


def walk(keyring: Keyring, store_id: str, head: Head, entries: Iterable[Entry]) -> list[str]:
    """Re-check every tag of a scope's chain, in order, from the pruned base (audit)."""
    out: list[str] = []
    prev, expected_seq = head.base_tag, head.base + 1
    for entry in entries:
        if entry.seq != expected_seq:
            out.append(f"entry {expected_seq} missing (next is {entry.seq})")
        key = keyring.get(entry.mac_key)
        tag = None if key is None else entry_tag(
            key, store_id=store_id, tenant=entry.tenant, scope=entry.scope, seq=entry.seq,
            prev=prev, ref=entry.ref, event=entry.event, digest=entry.digest,
        )
        if not same(tag, entry.tag):
            out.append(f"entry {entry.seq} ({entry.ref} {entry.event}) fails its tag")
        prev, expected_seq = entry.tag, entry.seq + 1
    return out


class IntegrityMonitor:
    """What one open store has refused: scopes flagged (their reads fail closed), rows
    refused (counted, logged once each). Shared by the tenant views of a store.

    `refused` is the counter a metrics exporter reads; `summary()` is what a store's
    diagnostics (`consistency()["integrity"]`) show.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.flagged: dict[tuple[str, str], str] = {}
        self.findings: list[Finding] = []
        self.refused = 0
        self.witness_errors = 0
        self._logged: set[Finding] = set()

    def flag(self, finding: Finding) -> None:
        """A scope-level failure: nothing of the scope is served until the store reopens
        clean (a restored store, `memsvc verify --reset-witness`)."""
        with self._lock:
            key = (finding.tenant, finding.scope)
            if key not in self.flagged:
                log.error("integrity: %s", finding)
                self.findings.append(finding)
            self.flagged.setdefault(key, finding.detail)

    def scope_error(self, tenant: str, scope: str) -> IntegrityError | None:
        reason = self.flagged.get((tenant, scope))
        if reason is None:
            return None
        return IntegrityError(
            f"the memories of user {scope or '(none)'!r} fail their integrity check "
            f"and are not served: {reason}",
            field="user_id",
        )

    def refuse(self, finding: Finding) -> IntegrityError:
        """A row-level failure: count and log it, and return the error to raise (get) or
        drop (search, list)."""
        with self._lock:
            self.refused += 1
            first = finding not in self._logged
            if first and len(self._logged) < 10_000:
                self._logged.add(finding)
                self.findings.append(finding)
        if first:  # every refusal is counted; each failing record is logged once
            log.error("integrity: not served: %s", finding)
        return IntegrityError(f"{finding.what} {finding.ref} is not served: {finding.detail}",
                              field="id")

    def witness_failed(self, path: object, error: OSError) -> None:
        """The witness file could not be read or written: rollbacks may go unseen."""
        with self._lock:
            self.witness_errors += 1
        log.error("integrity: witness %s unavailable (%s): a restored older copy of the "
                  "store may go unnoticed", path, error)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "ok": not self.flagged and not self.refused and not self.witness_errors,
                "refused": self.refused,
                "witness_errors": self.witness_errors,
                "flagged_scopes": len(self.flagged),
                "findings": [str(f) for f in self.findings[:20]],  # the first few
            }
