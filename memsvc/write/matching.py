"""When two statements say the same thing, and when a new one retires an old one.

Pure rules over predicates, objects and wording, shared by the write manager's decisions; no
store access here.
"""

from __future__ import annotations

import re

from memsvc.extractors.base import Candidate
from memsvc.extractors.triples import normalize_object
from memsvc.model.records import MemoryRecord

FUNCTIONAL_PREDICATES = frozenset({"lives_in", "works_at", "job_title", "relationship_status"})
FUNCTIONAL_PREFIXES = ("favorite_",)
# predicate of a new statement → predicates of old statements it retires (matching object)
RETIRES: dict[str, tuple[str, ...]] = {
    "dislikes": ("likes",),
    "likes": ("dislikes",),
    "cancelled": ("plans",),
    "left_job": ("works_at",),
}
_WORD = re.compile(r"[a-z0-9]+")
_DIGITS = re.compile(r"\d+")
_MINOR = frozenset(
    "a an the my our to of in on at for and or with is are was were be go going trip".split()
)


def is_functional(predicate: str) -> bool:
    """A predicate that holds one value at a time: a new value retires the old one."""
    return predicate in FUNCTIONAL_PREDICATES or predicate.startswith(FUNCTIONAL_PREFIXES)


def words(text: str) -> set[str]:
    """Lower-cased alphanumeric words (for overlap scores and object matching)."""
    return set(_WORD.findall(text.lower()))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def objects_match(a: str, b: str) -> bool:
    """Whether two objects name the same thing: equal, or sharing a content word
    ("the Paris trip" / "go on a trip to Paris", "sushi" / "sushi rolls")."""
    na, nb = normalize_object(a), normalize_object(b)
    if na == nb:
        return True
    wa = {_stem(w) for w in words(na) - _MINOR}
    wb = {_stem(w) for w in words(nb) - _MINOR}
    return bool(wa & wb)


def _time_labels(record: MemoryRecord | Candidate) -> set[str]:
    return {t.get("label", "") for t in record.metadata.get("time", []) if isinstance(t, dict)}


_NEGATION = re.compile(r"\b(?:not|no|never|n't|no\s+longer|cancel\w*|anymore|stopped)\b|n't\b",
                       re.IGNORECASE)


def same_meaning_allowed(candidate: Candidate, other: MemoryRecord) -> bool:
    """Near-identical sentences about different days or numbers, or one negating the other,
    are different memories."""
    if _time_labels(candidate) != _time_labels(other):
        return False
    if bool(_NEGATION.search(candidate.text)) != bool(_NEGATION.search(other.text)):
        return False
    return set(_DIGITS.findall(candidate.text)) == set(_DIGITS.findall(other.text))
