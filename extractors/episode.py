"""Every stored turn becomes an `episode` memory: the verbatim record of what was said.

The speaker's name is written into the text ("Caroline: ...") so both BM25 and the vector
channel can match questions that name who said it; the time is the turn's own timestamp.

Each episode also carries the turn before it (in the same `add`) as its `context`: indexed
with it, not stored as it. A reply ("Yes, last Saturday, with my kids") often holds the
answer to a question worded like the turn it answers ("Did you go to the pottery class?").

The concepts of that turn are recorded too (`metadata["context_concepts"]`): the entity graph
links the episode to them, for the same reason.

A turn with few content words ("Agreed!", "Thanks, Melanie!") gets a lower importance, which
lowers its rank (`retrievers.importance`): it says nothing, yet being short it matches any
question naming the person it addresses. The speakers' names do not count as content.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from memsvc.extractors.base import Candidate
from memsvc.model.records import DEFAULT_IMPORTANCE, MemoryKind, StoredMessage
from memsvc.text.concepts import CONTEXT_CONCEPTS, concepts_of
from memsvc.text.stopwords import STOPWORDS

# Turns with fewer content words than this get proportionally less than the default
# importance (0.5): 0 words 0.1, 1 word 0.2, ... (LoCoMo dev, raw R@10 0.707 → 0.711,
# adversarial 0.845 → 0.873; 2 or 3 words lift the same questions but adversarial less).
SUBSTANCE_WORDS = 4
_WORD = re.compile(r"[^\W_][\w']*", re.UNICODE)


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
        names = {n.casefold() for m in messages for n in (m.name or "").split()}
        return [
            Candidate(
                kind=MemoryKind.EPISODE,
                text=said(m),
                source_message_ids=[m.id],
                valid_from=m.timestamp,
                metadata={**m.metadata, "speaker": speaker_of(m), "role": m.role,
                          **self._context_concepts(messages, i)},
                entities=[m.name] if m.name else [],
                context=self._context(messages, i),
                importance=importance_of(m.content, names),
            )
            for i, m in enumerate(messages)
        ]

    def _context_concepts(self, messages: Sequence[StoredMessage], i: int) -> dict[str, Any]:
        """The concepts of the turns before (`memsvc.text.concepts`), for the entity graph:
        a reply ("It was Matt Patterson!") is about what it answers ("Who played at the
        concert?") without naming it, as its context vector says for the vector channel."""
        names = [m.name for m in messages if m.name]
        found = list(dict.fromkeys(
            c for m in messages[max(0, i - self.before):i] for c in concepts_of(m.content, names)))
        return {CONTEXT_CONCEPTS: found} if found else {}

    def _context(self, messages: Sequence[StoredMessage], i: int) -> str:
        near = [*messages[max(0, i - self.before):i], *messages[i + 1:i + 1 + self.after]]
        return "\n".join(said(m) for m in near)


def content_word_count(text: str, names: Collection[str] = ()) -> int:
    """Words of `text` that carry content: not stopwords, not `names` (casefolded), longer
    than two letters."""
    return sum(1 for w in _WORD.findall(text.casefold())
               if len(w) > 2 and w not in STOPWORDS and w not in names)


def importance_of(text: str, names: Collection[str] = ()) -> float:
    """An episode's importance: the default, less for a turn with few content words."""
    count = content_word_count(text, names)
    return DEFAULT_IMPORTANCE * min(1.0, (count + 1) / (SUBSTANCE_WORDS + 1))
