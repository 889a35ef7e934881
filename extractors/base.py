"""The extractor interface: the seam between raw turns and typed memories.

An extractor never writes: it proposes candidates, and the manager decides for each one
whether to add, update, invalidate or ignore it. That keeps every extractor (rules, LLM)
swappable and testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from memsvc.model.records import DEFAULT_IMPORTANCE, MemoryKind, StoredMessage


@dataclass
class Candidate:
    kind: MemoryKind
    text: str
    source_message_ids: list[str]
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    subject: str | None = None
    predicate: str | None = None
    object: str | None = None
    entities: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    importance: float = DEFAULT_IMPORTANCE
    # Words that help find this memory but are not part of it (for an episode, the question
    # it answers): they shape its vector (`memsvc.write.index_vectors`), never its stored
    # text. Empty for most candidates.
    context: str = ""


class Extractor(Protocol):
    name: str
    version: str

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]: ...
