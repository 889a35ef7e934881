"""Which memories a default search treats as no longer current.

A fact, preference or procedure with a `valid_to` in the past has stopped being true ("I
work at Acme until March"): offered as a current answer it misleads. Events and episodes are
about the past by nature, so their end does not retire them; summaries and the profile are
rebuilt by consolidation. An expired memory stays in the store: a search `as_of` a time
inside its validity finds it, and its history keeps it.
"""

from __future__ import annotations

from datetime import datetime

from memsvc.model.records import MemoryKind, MemoryRecord

EXPIRING_KINDS = frozenset({MemoryKind.FACT, MemoryKind.PREFERENCE, MemoryKind.PROCEDURE})


def expired(record: MemoryRecord, at: datetime) -> bool:
    """Whether `record` has stopped holding by `at` (and is of a kind that can)."""
    return ended(record.kind, record.valid_to, at)


def ended(kind: str, valid_to: datetime | None, at: datetime) -> bool:
    """`expired` on the two fields it reads (a search decides on them before fetching)."""
    return kind in EXPIRING_KINDS and valid_to is not None and valid_to <= at
