"""Moving memories in and out: `export` and `import_records` (one part of `Memory`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from memsvc.model.errors import InvalidInputError
from memsvc.model.ids import content_hash
from memsvc.model.records import HistoryEvent, MemoryRecord, MemoryStatus
from memsvc.model.trust import Channel
from memsvc.model.validation import clean_record, make_scope
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
    ) -> Iterator[MemoryRecord]:
        """Every memory of a scope (or of the whole tenant when no scope is named).

        The arguments are checked at the call, not at the first record, so a refused export
        raises where every other method does (and a server can answer with an error status
        before it starts streaming); the records are then read 500 at a time.
        """
        scope = make_scope(self._own_user(user_id), agent_id, session_id, required=False)
        visibility = VisibilityQuery(
            scope=scope, statuses=() if include_inactive else (MemoryStatus.ACTIVE.value,)
        )
        self._access.flush()
        return self._pages(visibility)

    def _pages(self, visibility: VisibilityQuery) -> Iterator[MemoryRecord]:
        cursor = None
        while True:
            items, _ = self.store.list_memories(visibility, limit=500, after_id=cursor)
            yield from items
            if len(items) < 500:
                return
            cursor = items[-1].id

    def import_records(self, records: Iterable[dict[str, Any] | MemoryRecord]) -> dict[str, int]:
        """Load exported memories; ids already present are skipped, vectors are recomputed.

        Each memory is this writer's import (channel "imported"): its trust is the file's,
        capped by the importing key's ceiling, so a file cannot claim more than the key."""
        parsed: list[MemoryRecord] = []
        for i, raw in enumerate(records):
            try:
                record = raw if isinstance(raw, MemoryRecord) else MemoryRecord.model_validate(raw)
            except ValueError as exc:
                raise InvalidInputError(
                    f"record {i} is not a memory: {exc}", field=f"[{i}]"
                ) from exc
            record = clean_record(record, max_bytes=self.settings.max_text_bytes, field=f"[{i}]")
            if self._writer.user_id is not None:
                self._check_owner(record)
            # the dedupe key is derived here, never taken from the file: a forged hash would
            # let an imported memory shadow or dodge a real one; provenance likewise. Its
            # text is screened as an added message's is.
            parsed.append(screened(record.model_copy(update={
                "content_hash": content_hash(record.kind.value, record.text),
                **self._writer.stamp(Channel.IMPORTED, claimed=record.trust),
            })))
        existing = self.store.get_many([r.id for r in parsed])
        fresh = [r for r in parsed if r.id not in existing]
        fresh = list({r.id: r for r in fresh}.values())
        embeddings = self.embedder.embed_documents([r.text for r in fresh])
        now = _now()
        self.store.apply(
            WriteBatch(
                inserts=list(zip(fresh, embeddings, strict=True)),
                history=[
                    HistoryDraft(r.id, HistoryEvent.ADD, None, snapshot(r), "import",
                                 "imported", now)
                    for r in fresh
                ],
            )
        )
        return {"imported": len(fresh), "skipped": len(parsed) - len(fresh)}


