"""Write-time quarantine: memories from instruction-shaped or stuffed turns are kept aside.

Every message a write stores is screened (``memsvc.text.screening``) on its *content* --
never on memsvc's own formatting of it, such as an episode's ``role: content`` line. Every
memory drawn from a flagged message (its episode and whatever the extractor found in it) is
written with status ``quarantined`` and ``metadata.quarantine = {"reasons": [...]}``: it is
kept and listed for review (``get_all(status="quarantined")``, ``review``), but default
search, context, chat prompts and consolidation read only active memories, so it never
reaches a model. A quarantined memory takes no part in the write decision either: it cannot
supersede or reinforce an active one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from memsvc.model.records import MemoryKind, MemoryRecord, MemoryStatus, StoredMessage
from memsvc.text.screening import screen

__all__ = ["QUARANTINE_KEY", "flagged_messages", "quarantined", "screened"]

#: Where a quarantined memory keeps why.
QUARANTINE_KEY = "quarantine"


def flagged_messages(messages: Iterable[StoredMessage]) -> dict[str, tuple[str, ...]]:
    """{message id: reasons} for the messages whose content is flagged."""
    out: dict[str, tuple[str, ...]] = {}
    for message in messages:
        verdict = screen(message.content)
        if verdict.flagged:
            out[message.id] = verdict.reasons
    return out


def quarantined(record: MemoryRecord, flagged: Mapping[str, tuple[str, ...]]
                ) -> MemoryRecord | None:
    """`record` as a quarantined memory when one of its source messages is flagged, else
    None."""
    reasons: list[str] = []
    for mid in record.provenance.source_message_ids:
        reasons += [r for r in flagged.get(mid, ()) if r not in reasons]
    if not reasons:
        return None
    metadata = {**record.metadata, QUARANTINE_KEY: {"reasons": reasons}}
    return record.model_copy(update={"status": MemoryStatus.QUARANTINED, "metadata": metadata})


def screened(record: MemoryRecord) -> MemoryRecord:
    """`record` quarantined when its own text is flagged (a memory written directly, by
    `update` or `import_records`, with no message behind it); unchanged otherwise, and
    whenever it is not active. An episode is screened without the ``speaker: `` prefix
    memsvc put in front of its message."""
    if record.status is not MemoryStatus.ACTIVE:
        return record
    text = record.text
    speaker = record.metadata.get("speaker")
    if record.kind is MemoryKind.EPISODE and isinstance(speaker, str) and text.startswith(
            f"{speaker}: "):
        text = text[len(speaker) + 2:]
    verdict = screen(text)
    if not verdict.flagged:
        return record
    metadata = {**record.metadata, QUARANTINE_KEY: {"reasons": list(verdict.reasons)}}
    return record.model_copy(update={"status": MemoryStatus.QUARANTINED, "metadata": metadata})
