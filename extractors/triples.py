"""Subject / predicate / object for the statements whose value can change over time.

The manager needs these to notice that "I moved to Denver" retires "Alice lives in Boston",
that "I'm not into sushi anymore" retires "Alice likes sushi", and that "we cancelled the
Paris trip" retires "Alice plans a trip to Paris". Only a small, fixed vocabulary of
predicates is recognised; what is not recognised simply has no triple and is kept as it is.

Predicates, and how the manager treats them (see `memsvc.write.manager`):
- functional (one value at a time; a new value supersedes the old): ``lives_in``,
  ``works_at``, ``job_title``, ``relationship_status``, ``favorite_<thing>``.
- opposites (the new statement retires an old one with a matching object): ``dislikes`` ↔
  ``likes``, ``cancelled`` → ``plans``, ``left_job`` → ``works_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STOP_AT = (
    r"(?=\s*(?:[.,!;:?)]|$|\s+-\s|\s+(?:and|but|because|with|since|so|last|next|this|these|"
    r"yesterday|today|tomorrow|recently|now|anymore|any\s+more|after|before|when|while|which|"
    r"who|where|on|at|in|for|from|until|till|a\s+few|two|three|ago|though|too|as\s+well|"
    r"either|again|lately)\b))"
)
_PROPER = r"(?:the\s+)?[A-Z][\w'’.&-]*(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][\w'’.&-]*)*"
_PHRASE = r"[\w'’-]+(?:\s+[\w'’-]+){0,5}?"
_OBJ = rf"(?P<o>{_PROPER}|{_PHRASE}){_STOP_AT}"
_SUBJ = r"(?P<s>\bI\b|\b[Ww]e\b|\b[Mm]y\s+(?!favou?rite)[a-z]+(?:\s+[a-z]+)?)"
_ADV = r"(?:(?:now|currently|still|just|recently|finally|also|really|actually|officially)\s+)*"
_BE = r"(?:\s*['’]m|\s*['’]re|\s+am|\s+are|\s+is)"


@dataclass(frozen=True)
class Triple:
    subject: str
    predicate: str
    object: str


_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "lives_in",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:live|lives|lived|am\s+living|['’]m\s+living|are\s+living|"
            rf"reside|resides|['’]re\s+living)\s+in\s+{_OBJ}"
        ),
    ),
    (
        "lives_in",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:have\s+|['’]ve\s+|had\s+|has\s+)?{_ADV}(?:moved|relocated)"
            rf"\s+(?:back\s+|over\s+|out\s+)?to\s+{_OBJ}"
        ),
    ),
    (
        "left_job",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:quit|left|resigned\s+from)\s+(?:my\s+|our\s+)?(?:job\s+at\s+)?"
            rf"(?P<o>{_PROPER}){_STOP_AT}"
        ),
    ),
    (
        "works_at",
        re.compile(
            rf"{_SUBJ}(?:\s+|{_BE}\s+){_ADV}(?:work|works|working)\s+(?:at|for)\s+{_OBJ}"
        ),
    ),
    (
        "works_at",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:got|started|accepted|took|landed|have|['’]ve\s+got)\s+"
            rf"(?:a\s+|the\s+|my\s+)?(?:new\s+)?(?:job|position|role|internship)\s+"
            rf"(?:as\s+an?\s+[\w\s]+?\s+)?(?:at|with)\s+{_OBJ}"
        ),
    ),
    (
        "works_at",
        re.compile(rf"{_SUBJ}\s+{_ADV}(?:joined|switched\s+to)\s+(?P<o>{_PROPER}){_STOP_AT}"),
    ),
    (
        "job_title",
        re.compile(rf"{_SUBJ}(?:\s+|{_BE}\s+){_ADV}(?:work|works|working)\s+as\s+an?\s+{_OBJ}"),
    ),
    (
        "relationship_status",
        re.compile(
            rf"{_SUBJ}{_BE}\s+{_ADV}(?P<o>single|married|engaged|divorced|widowed|separated)\b"
        ),
    ),
    (
        "relationship_status",
        re.compile(rf"{_SUBJ}\s+{_ADV}got\s+(?P<o>married|engaged|divorced)\b"),
    ),
    (
        "favorite",
        re.compile(
            r"(?P<s>\b[Mm]y|\b[Oo]ur)\s+(?:new\s+|all-time\s+|absolute\s+)?favou?rite\s+"
            r"(?P<what>[a-z]+(?:\s+[a-z]+)?)\s+(?:is|are|has\s+to\s+be|would\s+be)\s+"
            rf"(?:definitely\s+|probably\s+|still\s+|now\s+)?{_OBJ}"
        ),
    ),
    (
        "dislikes",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:hate|dislike|can['’]t\s+stand|cannot\s+stand|don['’]t\s+like|"
            rf"do\s+not\s+like|don['’]t\s+enjoy|no\s+longer\s+(?:like|enjoy|love)|"
            rf"stopped\s+(?:liking|enjoying|eating|drinking|doing)|don['’]t\s+love)\s+{_OBJ}"
        ),
    ),
    (
        "dislikes",
        re.compile(rf"{_SUBJ}{_BE}\s+(?:not|no\s+longer)\s+(?:into|a\s+fan\s+of)\s+{_OBJ}"),
    ),
    (
        "likes",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:totally\s+|absolutely\s+)?(?:love|like|enjoy|adore)\s+"
            rf"(?!to\s+(?:see|hear|know|help|support|say|think)\b)(?:to\s+)?{_OBJ}"
        ),
    ),
    (
        "likes",
        re.compile(rf"{_SUBJ}{_BE}\s+{_ADV}(?:really\s+|so\s+)?(?:into|a\s+(?:big\s+)?fan\s+of)\s+"
                   rf"{_OBJ}"),
    ),
    (
        "cancelled",
        re.compile(
            rf"{_SUBJ}\s+{_ADV}(?:had\s+to\s+|have\s+to\s+|decided\s+to\s+)?"
            rf"(?:cancel(?:l?ed)?|call(?:ed)?\s+off|scrapped|dropped)\s+(?:my|our|the)\s+{_OBJ}"
        ),
    ),
    (
        "cancelled",
        re.compile(
            r"\b(?P<s>[Mm]y|[Oo]ur|[Tt]he)\s+(?P<o>[\w'’-]+(?:\s+[\w'’-]+){0,4}?)\s+"
            r"(?:is|was|got|has\s+been|had\s+to\s+be)\s+(?:cancel(?:l?ed)?|called\s+off)\b"
        ),
    ),
    (
        "cancelled",
        re.compile(
            rf"{_SUBJ}{_BE}\s+(?:not|no\s+longer)\s+(?:going|planning)\s+(?:to\s+|on\s+)?{_OBJ}"
        ),
    ),
    (
        "plans",
        re.compile(
            rf"{_SUBJ}{_BE}\s+{_ADV}(?:planning|going|gonna|hoping)\s+(?:on\s+|to\s+)?{_OBJ}"
        ),
    ),
    (
        "plans",
        re.compile(rf"{_SUBJ}\s+{_ADV}(?:plan|plans|intend|intends)\s+(?:on\s+|to\s+)?{_OBJ}"),
    ),
]
_ARTICLE = re.compile(r"^(?:the|a|an|my|our|some)\s+", re.IGNORECASE)


def normalize_object(value: str) -> str:
    """The comparable form of an object: lower case, no leading article, no punctuation."""
    value = _ARTICLE.sub("", value.strip(" .,!?;:'\"’").lower())
    return re.sub(r"\s+", " ", value)


def _subject(raw: str, speaker: str) -> str:
    low = raw.lower()
    if low in ("i", "we", "my", "our"):
        return speaker
    if low.startswith(("my ", "our ")):
        return f"{speaker}'s {raw.split(None, 1)[1]}"
    if low == "the":
        return speaker
    return raw


def find_triples(sentence: str, speaker: str) -> list[Triple]:
    """The recognised (subject, predicate, object) statements of one original sentence."""
    found: list[Triple] = []
    taken: list[tuple[int, int]] = []
    for predicate, pattern in _RULES:
        for match in pattern.finditer(sentence):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            obj = match.group("o").strip(" .,'’")
            if not obj or normalize_object(obj) in ("it", "that", "this", "them", "there", ""):
                continue
            name = predicate
            if predicate == "favorite":
                name = "favorite_" + re.sub(r"\s+", "_", match.group("what").lower())
            found.append(Triple(_subject(match.group("s"), speaker), name, obj))
            taken.append((match.start(), match.end()))
    return found
