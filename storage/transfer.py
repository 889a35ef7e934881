"""Copying a whole store into another, any backend to any backend (`memsvc migrate-store`).

Only the protocols of storage/base.py are used: the source is read in keyset pages
(`list_memories` over every scope and status, `embeddings`, `StoreTransfer`'s dumps), and
the destination is written through `apply`, so it signs, indexes and links every row itself
(integrity chains and MACs are the destination's own, never copied; the entity graph is
rebuilt from the memories, as every write builds it).

Safe to run again: a row already in the destination with the same content is skipped, a
memory's history is copied only when the destination has none for it, and each page (its
memories with their history) is one transaction, so an interrupted copy resumes where it
stopped. A destination holding anything that is not in the source, or the same id with other
content, is refused before anything is written (`TransferConflict`). Afterwards the counts
of every tenant and a sample of vectors and records are compared (`TransferMismatch`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memsvc.model.errors import StoreError
from memsvc.model.records import HistoryEntry, MemoryRecord, Scope
from memsvc.storage.base import (
    HistoryDraft,
    MemoryStore,
    VisibilityQuery,
    WriteBatch,
)

# (stage, rows done in this call, total rows of the stage): a progress bar's advance
Progress = Callable[[str, int, int], None]
_EVERYTHING = VisibilityQuery(scope=Scope(), statuses=())
# what reads change on their own: not content, so not compared
_READ_FIELDS = frozenset({"access_count", "last_accessed_at"})
# compared after a copy; entities are not (the source may keep entities no memory links to)
VERIFIED_COUNTS = ("memories", "messages", "history", "links", "relations")


class TransferConflict(StoreError):
    """The destination holds rows that are not the source's: it is another store."""


class TransferMismatch(StoreError):
    """After the copy, the destination does not hold what the source holds."""


@dataclass
class TransferReport:
    """What a copy did: rows written and skipped per table, what was verified."""

    tenants: list[str]
    copied: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # tenant -> counts
    vectors_checked: int = 0


def _same_memory(a: MemoryRecord, b: MemoryRecord) -> bool:
    return a.model_dump(exclude=set(_READ_FIELDS)) == b.model_dump(exclude=set(_READ_FIELDS))


def _draft(entry: HistoryEntry) -> HistoryDraft:
    return HistoryDraft(entry.memory_id, entry.event, entry.old, entry.new, entry.actor,
                        entry.reason, entry.created_at)


def _memory_pages(store: MemoryStore, size: int) -> Iterator[list[MemoryRecord]]:
    after: str | None = None
    while True:
        page, _ = store.list_memories(_EVERYTHING, limit=size, after_id=after)
        if not page:
            return
        yield page
        after = page[-1].id


def _message_pages(store: MemoryStore, size: int) -> Iterator[list[Any]]:
    after: str | None = None
    while True:
        page = store.dump_messages(after_id=after, limit=size)
        if not page:
            return
        yield page
        after = page[-1].id


class StoreCopier:
    """Copies `src` into `dst` (both opened on the same vector width), tenant by tenant."""

    def __init__(self, src: MemoryStore, dst: MemoryStore, *, batch_size: int = 500,
                 sample: int = 200, progress: Progress | None = None) -> None:
        self.src, self.dst = src, dst
        self.batch_size, self.sample = batch_size, sample
        self.progress = progress or (lambda stage, done, total: None)
        self.tenants = sorted(set(src.transfer_tenants()) | set(dst.transfer_tenants()))

    # -- before: is the destination empty, or a (partial) copy of the source? -------------

    def check_destination(self) -> None:
        """TransferConflict unless every row of `dst` is in `src` with the same content."""
        for tenant in self.tenants:
            src, dst = self.src.for_tenant(tenant), self.dst.for_tenant(tenant)
            have = dst.transfer_counts()
            if have["memories"]:
                self._check_rows("memory", tenant, have["memories"],
                                 _memory_pages(src, self.batch_size), dst.get_many,
                                 _same_memory)
            if have["messages"]:
                self._check_rows("message", tenant, have["messages"],
                                 _message_pages(src, self.batch_size), dst.messages_by_id,
                                 lambda a, b: a == b)
        src_keys = {k.id: k for k in self.src.key_store().dump_keys()}
        for key in self.dst.key_store().dump_keys():
            if src_keys.get(key.id) != key:
                raise TransferConflict(f"the destination holds API key {key.prefix}… that the "
                                       "source does not: it is another store")

    @staticmethod
    def _check_rows(what: str, tenant: str, n: int, pages: Iterator[list[Any]],
                    lookup: Callable[[list[str]], Mapping[str, Any]],
                    same: Callable[[Any, Any], bool]) -> None:
        """Every one of the destination's `n` rows is one of the source's, unchanged."""
        matched = 0
        for page in pages:
            found = lookup([row.id for row in page])
            for row in page:
                other = found.get(row.id)
                if other is not None and not same(row, other):
                    raise TransferConflict(f"the destination's {what} {row.id} (tenant "
                                           f"{tenant!r}) differs from the source's")
                matched += other is not None
        if matched != n:
            raise TransferConflict(f"the destination holds {n - matched} {what} rows of tenant "
                                   f"{tenant!r} that the source does not: it is another store")

    # -- the copy -------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Rows of the source per stage, for progress bars."""
        out: Counter[str] = Counter()
        for tenant in self.tenants:
            counts = self.src.for_tenant(tenant).transfer_counts()
            out["memories"] += counts["memories"]
            out["messages"] += counts["messages"]
        return dict(out)

    def run(self) -> TransferReport:
        """Check, copy, verify; raises before writing anything when `dst` is another store."""
        self.check_destination()
        totals = self.totals()
        report = TransferReport(tenants=self.tenants)
        for tenant in self.tenants:
            src, dst = self.src.for_tenant(tenant), self.dst.for_tenant(tenant)
            self._copy_messages(src, dst, report, totals.get("messages", 0))
            self._copy_memories(src, dst, report, totals.get("memories", 0))
        keys = self.src.key_store().dump_keys()
        report.copied["api_keys"] = self.dst.key_store().restore_keys(keys)
        report.skipped["api_keys"] = len(keys) - report.copied["api_keys"]
        self.verify(report)
        return report

    def _copy_messages(self, src: MemoryStore, dst: MemoryStore, report: TransferReport,
                       total: int) -> None:
        for page in _message_pages(src, self.batch_size):
            have = dst.messages_by_id([m.id for m in page])
            new = [m for m in page if m.id not in have]
            dst.apply(WriteBatch(messages=new))
            report.copied["messages"] += len(new)
            report.skipped["messages"] += len(page) - len(new)
            self.progress("messages", len(page), total)

    def _copy_memories(self, src: MemoryStore, dst: MemoryStore, report: TransferReport,
                       total: int) -> None:
        for page in _memory_pages(src, self.batch_size):
            ids = [r.id for r in page]
            have = dst.get_many(ids)
            for rec in page:
                if rec.id in have and not _same_memory(rec, have[rec.id]):
                    raise TransferConflict(f"the destination's memory {rec.id} changed "
                                           "during the copy")
            new = [r for r in page if r.id not in have]
            vectors = src.embeddings([r.id for r in new])
            missing = [r.id for r in new if r.id not in vectors]
            if missing:
                raise StoreError(f"the source has no vector for memory {missing[0]}")
            done_history = dst.dump_history(ids)
            drafts = [_draft(e) for mid, entries in src.dump_history(ids).items()
                      if mid not in done_history for e in entries]
            # one transaction: a page's memories land with their history or not at all
            dst.apply(WriteBatch(inserts=[(r, vectors[r.id]) for r in new], history=drafts))
            report.copied["memories"] += len(new)
            report.skipped["memories"] += len(page) - len(new)
            report.copied["history"] += len(drafts)
            self.progress("memories", len(page), total)

    # -- after: does the destination hold what the source holds? --------------------------

    def verify(self, report: TransferReport) -> None:
        """Counts of every tenant, and a seeded sample of records and vectors."""
        for tenant in self.tenants:
            src, dst = self.src.for_tenant(tenant), self.dst.for_tenant(tenant)
            want, got = src.transfer_counts(), dst.transfer_counts()
            for name in VERIFIED_COUNTS:
                if want[name] != got[name]:
                    raise TransferMismatch(f"tenant {tenant!r}: the source has {want[name]} "
                                           f"{name}, the destination {got[name]}")
            report.counts[tenant] = got
            report.vectors_checked += self._check_sample(tenant, src, dst, want["memories"])
        want_keys = len(self.src.key_store().dump_keys())
        if len(self.dst.key_store().dump_keys()) != want_keys:
            raise TransferMismatch("the destination's API keys differ from the source's")

    def _check_sample(self, tenant: str, src: MemoryStore, dst: MemoryStore, n: int) -> int:
        ids = [r.id for page in _memory_pages(src, max(self.batch_size, 1000)) for r in page]
        picked = random.Random(n).sample(ids, min(self.sample, len(ids)))
        want_vec, got_vec = src.embeddings(picked), dst.embeddings(picked)
        want_rec, got_rec = src.get_many(picked), dst.get_many(picked)
        for mid in picked:
            if mid not in got_rec or not _same_memory(want_rec[mid], got_rec[mid]):
                raise TransferMismatch(f"tenant {tenant!r}: memory {mid} differs after copy")
            if mid not in got_vec or not np.allclose(want_vec[mid], got_vec[mid], atol=1e-5):
                raise TransferMismatch(f"tenant {tenant!r}: the vector of memory {mid} "
                                       "differs after copy")
        return len(picked)


def copy_store(src: MemoryStore, dst: MemoryStore, *, batch_size: int = 500,
               sample: int = 200, progress: Progress | None = None) -> TransferReport:
    """Copy everything of `src` into `dst` (see the module docstring); the report says what
    was copied, skipped and verified."""
    return StoreCopier(src, dst, batch_size=batch_size, sample=sample, progress=progress).run()


__all__ = ["Progress", "StoreCopier", "TransferConflict", "TransferMismatch",
           "TransferReport", "copy_store"]
