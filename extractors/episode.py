"""Every stored turn becomes an `episode` memory: the verbatim record of what was said.

The speaker's name is written into the text ("Caroline: ...") so both BM25 and the vector
channel can match questions that name who said it; the time is the turn's own timestamp.

Each episode also carries the turn before it (in the same `add`) as its `context`: indexed
with it, not stored as it. A reply ("Yes, last Saturday, with my kids") often holds the
answer to a question worded like the turn it answers ("Did you go to the pottery class?").
"""

from __future__ import annotations

from collections.abc import Sequence

from memsvc.extractors.base import Candidate
from memsvc.model.records import MemoryKind, StoredMessage


def speaker_of(message: StoredMessage) -> str:
    return message.name or message.role


def said(message: StoredMessage) -> str:
    """A turn as its episode's text: who said it, then what."""
    return f"{speaker_of(message)}: {message.content}"


class EpisodeExtractor:
    name = "episode"
    version = "1"

    def __init__(self, before: int = 1, after: int = 0) -> None:
        self.before = before  # turns before this one (in the same `add`) used as context
        self.after = after  # and after it

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        return [
            Candidate(
                kind=MemoryKind.EPISODE,
                text=said(m),
                source_message_ids=[m.id],
                valid_from=m.timestamp,
                metadata={**m.metadata, "speaker": speaker_of(m), "role": m.role},
                entities=[m.name] if m.name else [],
                context=self._context(messages, i),
            )
            for i, m in enumerate(messages)
        ]

    def _context(self, messages: Sequence[StoredMessage], i: int) -> str:
        near = [*messages[max(0, i - self.before):i], *messages[i + 1:i + 1 + self.after]]
        return "\n".join(said(m) for m in near)
