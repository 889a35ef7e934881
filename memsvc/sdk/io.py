"""Moving memories in and out: `export` and `import_records` (one part of `Memory`).

An export is a sequence of records: memories (untagged, as export files always held) and,
with `full`, the scope's raw messages (`"type": "message"`) and each exported memory's
history (`"type": "history"`), so a store moved between backends keeps all three. Whatever
comes in is checked like the input of `add` and signed by the importing store
(memsvc.storage.integrity); nothing derived (content hashes, MACs, chain positions, history
ids) is taken from the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from memsvc.model.errors import InvalidInputError
from memsvc.model.ids import content_hash
from memsvc.model.records import (
    ExportedHistory,
    ExportedMessage,
    ExportItem,
    HistoryEvent,
    MemoryRecord,
    MemoryStatus,
    Scope,
    StoredMessage,
)
from memsvc.model.trust import Channel
from memsvc.model.validation import clean_history, clean_message, clean_record, make_scope
from memsvc.sdk.parts import MemoryParts, _now
from memsvc.storage.base import HistoryDraft, VisibilityQuery, WriteBatch
from memsvc.write.manager import snapshot
from memsvc.write.quarantine import screened


class ImportExport(MemoryParts):
    def export(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        include_inactive: bool = True,
        full: bool = False,
    ) -> Iterator[ExportItem]:
        """Every memory of a scope (or of the whole tenant when no scope is named); with
        `full`, first the scope's raw messages, and each memory followed by its history, as
        `ExportedMessage` and `ExportedHistory` records.

        The arguments are checked at the call, not at the first record, so a refused export
        raises where every other method does (and a server can answer with an error status
        before it starts streaming); the records are then read 500 at a time.
        """
        scope = make_scope(self._own_user(user_id), agent_id, session_id, required=False)
        visibility = VisibilityQuery(
            scope=scope, statuses=() if include_inactive else (MemoryStatus.ACTIVE.value,)
        )
        self._access.flush()
        if not full:
            return self._pages(visibility)
        return self._full(scope, visibility)

    def _pages(self, visibility: VisibilityQuery) -> Iterator[MemoryRecord]:
        cursor = None
        while True:
            items, _ = self.store.list_memories(visibility, limit=500, after_id=cursor)
            yield from items
            if len(items) < 500:
                return
            cursor = items[-1].id

    def _full(self, scope: Scope, visibility: VisibilityQuery) -> Iterator[ExportItem]:
        for message in self.store.messages(scope, limit=_ALL_MESSAGES):
            yield ExportedMessage(**message.model_dump())
        for record in self._pages(visibility):
            yield record
            for entry in self.store.history(record.id):  # right after it: see `batches`
                yield ExportedHistory(**entry.model_dump(exclude={"id"}))

    def import_records(
        self, records: Iterable[dict[str, Any] | ExportItem]
    ) -> dict[str, int]:
        """Load exported records, every one checked before any is written: memories (ids
        already present are skipped, vectors recomputed, an "imported" history entry added
        unless the file brings the memory's own history), raw messages (ids present
        skipped) and history entries (one already there, same event, time and actor, is
        skipped; one of a memory that exists neither here nor in the file is refused).
        Returns how many memories were imported and records skipped, and, when the records
        held messages or history, how many of each were imported.

        Each memory is this writer's import (channel "imported"): its trust is the file's,
        capped by the importing key's ceiling, so a file cannot claim more than the key; its
        text is screened as an added message's is."""
        parsed: list[MemoryRecord] = []
        messages: list[ExportedMessage] = []
        histories: list[ExportedHistory] = []
        for i, raw in enumerate(records):
            item = _parse(raw, i)
            field = f"[{i}]"
            max_bytes = self.settings.max_text_bytes
            if isinstance(item, ExportedMessage):
                messages.append(self._check_owner(
                    clean_message(item, max_bytes=max_bytes, field=field), field=field))
            elif isinstance(item, ExportedHistory):
                histories.append(clean_history(item, field=field))
            else:
                record = clean_record(item, max_bytes=max_bytes, field=field)
                if self._writer.user_id is not None:
                    self._check_owner(record)
                # the dedupe key is derived here, never taken from the file: a forged hash
                # would let an imported memory shadow or dodge a real one; provenance likewise
                parsed.append(screened(record.model_copy(update={
                    "content_hash": content_hash(record.kind.value, record.text),
                    **self._writer.stamp(Channel.IMPORTED, claimed=record.trust),
                })))
        existing = self.store.get_many([r.id for r in parsed])
        fresh = [r for r in parsed if r.id not in existing]
        fresh = list({r.id: r for r in fresh}.values())
        new_messages = self._new_messages(messages)
        carried = self._new_history(histories, known={r.id for r in parsed})
        with_history = {h.memory_id for h in histories}
        now = _now()
        drafts = carried + [HistoryDraft(r.id, HistoryEvent.ADD, None, snapshot(r), "import",
                                         "imported", now)
                            for r in fresh if r.id not in with_history]
        embeddings = self.embedder.embed_documents([r.text for r in fresh])
        self.store.apply(WriteBatch(
            messages=[StoredMessage(**m.model_dump(exclude={"type"})) for m in new_messages],
            inserts=list(zip(fresh, embeddings, strict=True)),
            history=drafts,
        ))
        skipped = (len(parsed) - len(fresh) + len(messages) - len(new_messages)
                   + len(histories) - len(carried))
        result = {"imported": len(fresh), "skipped": skipped}
        if messages or histories:  # a memories-only import answers as it always did
            result.update(messages=len(new_messages), history=len(carried))
        return result

    def _new_messages(self, messages: list[ExportedMessage]) -> list[ExportedMessage]:
        """Those whose id this tenant does not hold yet (each scope's ids read once)."""
        present: set[str] = set()
        for scope in {m.scope for m in messages}:
            present.update(m.id for m in self.store.messages(scope, limit=_ALL_MESSAGES))
        return list({m.id: m for m in messages if m.id not in present}.values())

    def _new_history(self, entries: list[ExportedHistory], *, known: set[str]
                     ) -> list[HistoryDraft]:
        """Drafts of the entries not already there; InvalidInputError for an entry of a
        memory that is neither in the store nor among the imported records."""
        ids = sorted({e.memory_id for e in entries})
        stored = self.store.get_many([i for i in ids if i not in known])
        for record in stored.values():
            self._check_owner(record)  # a key bound to one user adds to its own history only
        drafts: list[HistoryDraft] = []
        seen: dict[str, set[tuple[str, Any, str]]] = {}
        for entry in entries:
            if entry.memory_id not in known and entry.memory_id not in stored:
                raise InvalidInputError(
                    f"history of memory {entry.memory_id!r}, which is neither stored nor "
                    "imported", field="memory_id")
            if entry.memory_id not in seen:
                seen[entry.memory_id] = {(h.event.value, h.created_at, h.actor)
                                         for h in self.store.history(entry.memory_id)}
            key = (entry.event.value, entry.created_at, entry.actor)
            if key in seen[entry.memory_id]:
                continue
            seen[entry.memory_id].add(key)
            drafts.append(HistoryDraft(entry.memory_id, entry.event, entry.old, entry.new,
                                       entry.actor, entry.reason, entry.created_at))
        return drafts


_ALL_MESSAGES = 10_000_000  # an export or an import dedupe reads a scope's messages whole


def _parse(raw: dict[str, Any] | ExportItem, i: int) -> ExportItem:
    """One record of an export: tagged message or history, else a memory (old files)."""
    if isinstance(raw, MemoryRecord | ExportedMessage | ExportedHistory):
        return raw
    kind = raw.get("type") if isinstance(raw, dict) else None
    what, model = _TAGGED.get(kind, ("memory", MemoryRecord)) if isinstance(kind, str) else (
        "memory", MemoryRecord)
    try:
        return model.model_validate(raw)
    except ValueError as exc:
        raise InvalidInputError(f"record {i} is not a {what}: {exc}", field=f"[{i}]") from exc


_TAGGED: dict[str, tuple[str, type[ExportItem]]] = {
    "message": ("message", ExportedMessage), "history": ("history entry", ExportedHistory),
}


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """`records` in calls of about `size` each for `import_records`, never cutting a memory
    from the history that follows it (an import adds its own "imported" entry to a memory
    whose history is not in the same call)."""
    start = 0
    while start < len(records):
        end = min(start + size, len(records))
        while end < len(records) and records[end].get("type") == "history":
            end += 1
        yield records[start:end]
        start = end
