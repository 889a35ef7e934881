"""Tamper evidence for stored memories, messages and history (issue 11, item 3).

Backend-neutral: the key, the canonical encoding and MACs, the chain, the witness, the
checks, and the SQL around them (guard: signing inside a write, checking on read and open;
sealed: multi-row writes; whole_store: audit, rekey, first signing). A backend supplies only
a `guard.Layout` (its memories table, fresh reads, vector index upkeep, chain locking) and
its `memsvc verify` auditor: storage/sqlite/{integrity,audit}.py,
storage/postgres/{integrity,audit}.py.

- keys: HMAC-SHA256 key from `MEMSVC_INTEGRITY_KEY` or a 0600 key file in the config dir,
  older keys in a keyring (verify only), a key id beside every MAC.
- codec: what a MAC covers: content, metadata, owner (tenant + user scope), identity and
  position (chain seq). Not access counts (they change on reads).
- chain: one append-only chain per (tenant, user); a row binds to its entry, the latest entry
  of a memory must carry its current MAC; a signed head (length, last tag, live row counts).
- witness: the heads again, outside the store, to catch a whole-file rollback.
- checks: row, scope and chain checks; `IntegrityMonitor` refuses, logs and counts.
"""

from memsvc.storage.integrity.chain import ChainWriter, Entry, Head, Seal
from memsvc.storage.integrity.checks import (
    Finding,
    IntegrityMonitor,
    head_problem,
    row_problem,
    scope_problems,
    walk,
)
from memsvc.storage.integrity.codec import GENESIS, REF_PREFIX, scope_key
from memsvc.storage.integrity.keys import Keyring, load_keyring
from memsvc.storage.integrity.witness import Witness

__all__ = [
    "GENESIS",
    "REF_PREFIX",
    "ChainWriter",
    "Entry",
    "Finding",
    "Head",
    "IntegrityMonitor",
    "Keyring",
    "Seal",
    "Witness",
    "head_problem",
    "load_keyring",
    "row_problem",
    "scope_key",
    "scope_problems",
    "walk",
]
