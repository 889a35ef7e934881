"""Every stored turn becomes an `episode` memory: the verbatim record of what was said.

The speaker's name is written into the text ("Caroline: ...") so both BM25 and the vector
channel can match questions that name who said it; the time is the turn's own timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence

from memsvc.extractors.base import Candidate
from memsvc.model.records import MemoryKind, StoredMessage


def speaker_of(message: StoredMessage) -> str:
    return message.name or message.role


class EpisodeExtractor:
    name = "episode"
    version = "1"

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        return [
            Candidate(
                kind=MemoryKind.EPISODE,
                text=f"{speaker_of(m)}: {m.content}",
                source_message_ids=[m.id],
                valid_from=m.timestamp,
                metadata={**m.metadata, "speaker": speaker_of(m), "role": m.role},
                entities=[m.name] if m.name else [],
            )
            for m in messages
        ]
