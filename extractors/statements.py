"""Turning one chat turn into stand-alone statements: sentence split and person resolution.

A memory is read months later, out of its conversation, so "I adopted a guinea pig" must
become "Caroline adopted a guinea pig" and "my sister" must become "Caroline's sister". This
module does that rewrite with plain patterns (no parser model can be downloaded here): first
person → the speaker, second person → the addressee when the batch tells us who that is, and
the verb right after "I" is put in the third person ("I love" → "Caroline loves").
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ADVERBS = (
    "really", "also", "just", "still", "usually", "always", "never", "often", "actually",
    "totally", "definitely", "absolutely", "truly", "now", "finally", "recently", "sometimes",
    "even", "only", "already", "kinda", "kind of", "sort of", "honestly", "literally",
    "personally", "currently", "mostly", "recently", "then", "too", "all", "both",
)
# Words after "I" that must not take a third-person -s: modals, past tenses, and so on.
_NO_S = frozenset(
    {
        "can", "could", "would", "should", "might", "must", "may", "shall", "will", "went",
        "got", "made", "took", "saw", "had", "did", "ran", "met", "found", "felt", "thought",
        "bought", "began", "came", "gave", "knew", "left", "lost", "paid", "said", "sent",
        "told", "won", "wrote", "ate", "drove", "flew", "grew", "heard", "kept", "let", "put",
        "set", "sold", "spent", "taught", "threw", "understood", "was", "were", "built",
        "caught", "chose", "drew", "fell", "forgot", "held", "hurt", "led", "meant", "read",
        "rode", "sang", "sat", "slept", "spoke", "stood", "swam", "brought", "became", "broke",
        "used", "cannot", "wanna", "gotta", "gonna", "hit", "cut", "quit",
    }
)
_IRREGULAR_S = {"have": "has", "do": "does", "go": "goes", "be": "is", "am": "is"}
_ADVERB_RE = "|".join(re.escape(a) for a in sorted(set(_ADVERBS), key=len, reverse=True))
_I_VERB = re.compile(rf"\bI\s+((?:(?:{_ADVERB_RE})\s+){{0,2}})([a-z][a-z']*)\b")
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|me|my|mine|myself|we|we're|we've|"
                           r"we'll|we'd|us|our|ours)\b", re.IGNORECASE)


_SUBJECTLESS = re.compile(
    r"^(?:(?P<gonna>Gonna|Going\s+to|About\s+to)|(?P<been>Been)|(?P<just>Just|Finally|Recently)"
    r"\s+(?=[a-z]+ed\b|got\b|went\b|had\b|made\b|finished\b|started\b)|"
    r"(?P<ing>Researching|Planning|Hoping|Thinking|Heading|Getting|Starting|Learning|"
    r"Looking|Trying|Loving|Enjoying|Preparing|Volunteering|Studying|Working\s+on|Reading|"
    r"Checking|Saving|Practicing|Practising|Training|Writing)\s+(?!is\b|was\b|['’]s\b|"
    r"looks\b|seems\b|makes\b|helps\b|can\b|"
    r"has\b|gives\b|sounds\b|must\b|will\b|would\b|and\b|or\b|really\b))"
)


def add_missing_subject(sentence: str, speaker: str) -> str:
    """Chat drops the subject ("Gonna check out career options", "Researching adoption
    agencies"); the speaker is the one doing it."""
    match = _SUBJECTLESS.match(sentence)
    if not match:
        return sentence
    rest = sentence[match.start():]
    if match.group("gonna") or match.group("ing"):
        return f"{speaker} is {rest[:1].lower()}{rest[1:]}"
    if match.group("been"):
        return f"{speaker} has {rest[:1].lower()}{rest[1:]}"
    return f"{speaker} {rest[:1].lower()}{rest[1:]}"


def split_sentences(text: str) -> list[str]:
    """Sentences of a turn; newlines and " - " asides also end a statement."""
    parts: list[str] = []
    for block in re.split(r"\n+|\s+-\s+(?=[A-Z])", text):
        parts.extend(p.strip() for p in _SENTENCE_END.split(block.strip()))
    return [p for p in parts if p]


def has_first_person(text: str) -> bool:
    return bool(_FIRST_PERSON.search(text))


def third_person(verb: str) -> str:
    """'love' → 'loves', 'watch' → 'watches', 'try' → 'tries'; past tenses stay as they are."""
    low = verb.lower()
    if low in _IRREGULAR_S:
        return _IRREGULAR_S[low]
    if (
        low in _NO_S
        or "'" in low
        or low.endswith(("ed", "ing"))
        or (low.endswith("s") and not low.endswith("ss"))
        or len(low) < 2
    ):
        return verb
    if low.endswith(("ss", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _replace(pattern: str, repl: str, text: str, flags: int = 0) -> str:
    return re.sub(pattern, repl, text, flags=flags)


def resolve_persons(sentence: str, speaker: str, addressee: str | None = None) -> str:
    """Rewrite a sentence so it stands alone: first person → speaker, 'you' → addressee."""
    s = sentence
    sp = speaker
    # contractions and auxiliaries first, so the generic "I <verb>" rule sees no "I'm".
    s = _replace(r"\bI['’]m\b|\bI am\b", f"{sp} is", s)
    s = _replace(r"\bI['’]ve\b", f"{sp} has", s)
    s = _replace(r"\bI['’]d\b", f"{sp} would", s)
    s = _replace(r"\bI['’]ll\b", f"{sp} will", s)
    s = _replace(r"\bI\s+don['’]t\b|\bI\s+dont\b", f"{sp} doesn't", s)
    s = _replace(r"\bI\s+do not\b", f"{sp} does not", s)

    def _verb(match: re.Match[str]) -> str:
        adverbs, verb = match.group(1), match.group(2)
        return f"{sp} {adverbs}{third_person(verb)}"

    s = _I_VERB.sub(_verb, s)
    s = _replace(r"\bI\b", sp, s)
    s = _replace(r"\bmyself\b", sp, s, re.IGNORECASE)
    s = _replace(r"\bourselves\b", f"{sp} and others", s, re.IGNORECASE)
    s = _replace(r"\b(?:my|mine)\b", f"{sp}'s", s, re.IGNORECASE)
    s = _replace(r"\bme\b", sp, s, re.IGNORECASE)
    others = f"{sp} and others"
    s = _replace(r"\bwe['’]re\b", f"{others} are", s, re.IGNORECASE)
    s = _replace(r"\bwe['’]ve\b", f"{others} have", s, re.IGNORECASE)
    s = _replace(r"\bwe['’]ll\b", f"{others} will", s, re.IGNORECASE)
    s = _replace(r"\bwe['’]d\b", f"{others} would", s, re.IGNORECASE)
    s = _replace(r"\b(?:our|ours)\b", f"{sp}'s", s, re.IGNORECASE)
    s = _replace(r"\b(?:we|us)\b", others, s, re.IGNORECASE)
    if addressee:
        ad = addressee
        s = _replace(r"\byou['’]re\b|\byou are\b", f"{ad} is", s, re.IGNORECASE)
        s = _replace(r"\byou were\b", f"{ad} was", s, re.IGNORECASE)
        s = _replace(r"\byou['’]ve\b|\byou have\b", f"{ad} has", s, re.IGNORECASE)
        s = _replace(r"\byou['’]ll\b", f"{ad} will", s, re.IGNORECASE)
        s = _replace(r"\byou['’]d\b", f"{ad} would", s, re.IGNORECASE)
        s = _replace(r"\byour(?:s)?\b", f"{ad}'s", s, re.IGNORECASE)
        s = _replace(r"\byourself\b", ad, s, re.IGNORECASE)
        s = _replace(r"\byou\b", ad, s, re.IGNORECASE)
    return s[:1].upper() + s[1:]
