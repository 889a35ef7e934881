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
_SUBJECT_SLOT = frozenset({"", "that", "and", "if", "when", "because", "as", "since", "but",
                           "while", "where", "how", "what"})
_NOT_VERBS = frozenset(
    "so too all guys both for and again there here very really just also always never still "
    "two three all the a an to".split()
)
_IRREGULAR_S = {"have": "has", "do": "does", "go": "goes", "be": "is", "am": "is"}
_ADVERB_RE = "|".join(re.escape(a) for a in sorted(set(_ADVERBS), key=len, reverse=True))
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


# Present-tense verbs that end in "ed" like a past tense ("I feed the dog").
_PRESENT_ED = frozenset(
    "feed need bleed breed heed speed succeed proceed exceed weed seed shred".split()
)


def third_person(verb: str) -> str:
    """'love' → 'loves', 'watch' → 'watches', 'try' → 'tries'; past tenses stay as they are."""
    low = verb.lower()
    if low in _IRREGULAR_S:
        return _IRREGULAR_S[low]
    if low in _PRESENT_ED:
        return verb + "s"
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


_A = r"['’]"
# one alternation, scanned left to right, so the first mention can be told from the rest
_PERSON = re.compile(
    rf"(?P<im>\bI{_A}m\b|\bI am\b)|(?P<ive>\bI{_A}ve\b)|(?P<id>\bI{_A}d\b)|(?P<ill>\bI{_A}ll\b)"
    rf"|(?P<idont>\bI\s+(?:don{_A}t|dont)\b)|(?P<idonot>\bI\s+do\s+not\b)|(?P<iwas>\bI\s+was\b)"
    rf"|(?P<iverb>\bI\s+(?P<adv>(?:(?:{_ADVERB_RE})\s+){{0,2}})(?P<verb>[a-z][a-z']*)\b)"
    rf"|(?P<i>\bI\b)|(?P<myself>\b[Mm]yself\b)|(?P<ourselves>\b[Oo]urselves\b)"
    rf"|(?P<my>\b[Mm]y\b)|(?P<mine>\b[Mm]ine\b)|(?P<me>\b[Mm]e\b)"
    rf"|(?P<were>\b[Ww]e{_A}re\b)|(?P<weve>\b[Ww]e{_A}ve\b)|(?P<well>\b[Ww]e{_A}ll\b)"
    rf"|(?P<wed>\b[Ww]e{_A}d\b)|(?P<our>\b(?:[Oo]ur|[Oo]urs)\b)|(?P<we>\b[Ww]e\b)|(?P<us>\bus\b)"
)


def resolve_persons(sentence: str, speaker: str, addressee: str | None = None) -> str:
    """Rewrite a sentence so it stands alone: first person → speaker, 'you' → addressee.

    The first mention carries the name ("Caroline loves ..."); later ones become "they",
    "their", "them", so the name does not drown the rest of the sentence (a memory that
    says "Caroline" five times embeds as "Caroline" more than as what it is about).
    """
    sp = speaker
    named = False

    def _sub(match: re.Match[str]) -> str:
        nonlocal named
        kind = match.lastgroup
        first = not named
        if kind == "iverb":
            verb, adverbs = match.group("verb"), match.group("adv") or ""
            named = True
            return f"{sp} {adverbs}{third_person(verb)}" if first else f"they {adverbs}{verb}"
        if kind in ("myself", "ourselves"):
            return "themselves" if kind == "ourselves" and named else (
                "themself" if named else sp)
        plural = kind in ("were", "weve", "well", "wed", "we", "us", "our")
        who = f"{sp} and others" if plural else sp
        forms = {
            "im": (f"{sp} is", "they are"), "ive": (f"{sp} has", "they have"),
            "id": (f"{sp} would", "they would"), "ill": (f"{sp} will", "they will"),
            "idont": (f"{sp} doesn't", "they don't"), "idonot": (f"{sp} does not", "they do not"),
            "iwas": (f"{sp} was", "they were"), "i": (sp, "they"),
            "my": (f"{sp}'s", "their"), "mine": (f"{sp}'s", "theirs"), "me": (sp, "them"),
            "were": (f"{who} are", "they are"), "weve": (f"{who} have", "they have"),
            "well": (f"{who} will", "they will"), "wed": (f"{who} would", "they would"),
            "our": (f"{sp}'s", "their"), "we": (who, "they"), "us": (who, "them"),
        }
        named_form, later_form = forms[kind or "i"]
        named = True
        if kind in ("i", "me") and re.search(r"\band\s+$", sentence[: match.start()]):
            return sp  # "my dog and I": "they" would read as the dog
        return named_form if first else later_form

    s = _PERSON.sub(_sub, sentence)
    if addressee:
        ad = addressee
        s = _replace(r"\byou['’]re\b|\byou are\b", f"{ad} is", s, re.IGNORECASE)
        s = _replace(r"\byou were\b", f"{ad} was", s, re.IGNORECASE)
        # after an auxiliary the verb stays bare: "do you have" → "does Melanie have"
        s = _replace(r"\b([Dd])o you\b", rf"\1oes {ad}", s)
        s = _replace(
            r"\byou['’]ve\b|(?<![Dd]id )(?<![Cc]an )(?<![Ww]ill )(?<![Ww]ould )\byou have\b",
            f"{ad} has", s, re.IGNORECASE,
        )
        s = _replace(r"\byou['’]ll\b", f"{ad} will", s, re.IGNORECASE)
        s = _replace(r"\byou['’]d\b", f"{ad} would", s, re.IGNORECASE)
        s = _replace(r"\byour(?:s)?\b", f"{ad}'s", s, re.IGNORECASE)
        s = _replace(r"\byourself\b", ad, s, re.IGNORECASE)
        s = re.sub(r"\b([Aa])re you\b", lambda m: ("Is" if m.group(1) == "A" else "is") + f" {ad}",
                   s)
        s = re.sub(r"\b([Hh])ave you\b", lambda m: m.group(1) + f"as {ad}", s)

        def _you_verb(match: re.Match[str]) -> str:
            # only where "you" is the subject ("that you prefer") is the verb agreed;
            # "thank you so much", "can you help" keep their words
            before, verb = match.group(1) or "", match.group(2)
            subject = before.strip().lower() in _SUBJECT_SLOT and verb not in _NOT_VERBS
            return f"{before}{ad} {third_person(verb) if subject else verb}"

        s = re.sub(r"(\b\w+\s+)?\b[Yy]ou\s+([a-z]+)\b", _you_verb, s)
        s = _replace(r"\byou\b", ad, s, re.IGNORECASE)
    return s[:1].upper() + s[1:]
