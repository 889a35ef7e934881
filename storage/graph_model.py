"""The entity graph as plain values, shared by every backend and the graph channel.

A backend stores entities, memory→entity links and relations however it likes; what it hands
the read path is a `GraphData`, and entity names are always matched by `normalize_entity`, so
the graph channel (retrievers/graph.py) never imports a backend and a memory written through
one backend is linked to the same entities another would find.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\"'`.,;:!?()[]{}<>"
MAX_NAME = 256  # longest stored entity name, alias or predicate
# Concept entities (memsvc.text.concepts) are stored beside the named ones under this mark
# ("~paint"), so a concept never merges with a name spelled alike (the word "hope" and a
# person called Hope) and the graph tells the two kinds apart without a schema change.
CONCEPT_MARK = "~"


def concept_entity(concept: str) -> str:
    """The stored name (and key) of a concept entity."""
    return CONCEPT_MARK + concept


def concept_name(node: str) -> str | None:
    """The concept a stored entity key stands for, or None for a named entity."""
    return node[len(CONCEPT_MARK):] if node.startswith(CONCEPT_MARK) else None


def normalize_entity(name: str) -> str:
    """The key an entity is matched by: case-folded, accents kept, possessive and edge
    punctuation dropped, whitespace collapsed ("Caroline's " → "caroline")."""
    text = unicodedata.normalize("NFKC", name).casefold().replace("’", "'")
    text = _SPACES.sub(" ", text).strip(_EDGE_PUNCT)
    if text.endswith("'s"):
        text = text[:-2]
    elif text.endswith("s'"):
        text = text[:-1]
    return text.strip(_EDGE_PUNCT)[:MAX_NAME]


@dataclass
class GraphData:
    """Everything a scope's graph is built from, as plain values."""

    # entity pk -> (display name, aliases)
    entities: dict[int, tuple[str, list[str]]] = field(default_factory=dict)
    # (memory id, entity pk)
    links: list[tuple[str, int]] = field(default_factory=list)
    # (subject entity pk, object entity pk, predicate)
    relations: list[tuple[int, int, str]] = field(default_factory=list)
