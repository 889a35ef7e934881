"""Concepts: the content words of a text, reduced to a crude stem, for the entity graph.

Named entities alone leave the graph nearly empty on chat: in a conversation between two
people the names are mostly the speakers (hubs, which name no particular memory), so the graph
channel had nothing to say about "What did Melanie paint recently?". Concepts are the other
things a memory is about ("paint", "camp", "pottery"): linking every memory to its concepts
connects the memories about the same thing across sessions, and a question naming the thing
reaches them, and through the concepts they share, their neighbours.

No tagger or stemmer is installed, so this is a heuristic that errs towards recall: every word
that is not a function word, a chat filler or a word of very general meaning counts, reduced
by a few suffix rules ("paintings", "painting", "painted" → "paint"; "activities" →
"activity"), the same rules on the write and the read side. Frequent concepts need no list:
the graph treats an entity on a large share of the memories as a hub and seeds nothing from
it. A memory keeps at most `MAX_CONCEPTS` (the longest words first: length is a cheap proxy for
specificity), so its links and the graph's co-occurrence edges stay bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memsvc.text.stopwords import STOPWORDS

MAX_CONCEPTS = 8  # of a text
MAX_MEMORY_CONCEPTS = 10  # linked to a memory: its text's, then its context's
# metadata key of an episode's context concepts (`extractors.episode`)
CONTEXT_CONCEPTS = "context_concepts"
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W\d_]")
# Words of chat and of questions that say how, not what: too general to connect two memories,
# yet not frequent enough in every conversation to be dropped as hubs.
_GENERAL = frozenset(
    """able absolutely actually again ago ah almost already also always amazing anyone anything
    anyway appreciate aw awesome away back bad beautiful best better big bit bye can't cause
    certainly come comes coming cool could couldn't day days definitely did didn't doesn't done
    don't else especially even ever every everyone everything exactly feel feeling felt find
    finally first found fun gave get gets getting give glad go goes going gone gonna good got gotta
    great guess guys had hadn't happen happened happy hard has hasn't haven't hear heard hello
    help hey hi hmm honestly hope hopefully how huge i'd i'll i'm i've idea isn't it's kind
    kinda know knew last lately later let let's life like likely little lol long look looked
    looking looks lot lots love loved lovely made make makes making many may maybe mean means
    might mine moment more much must need needs never new next nice nothing now oh okay ok
    old one ones others overall own part pretty probably put quite rather real really recent
    recently right said same saw say says see seems seen should shouldn't since so some
    someone something sometimes soon sorry sounds sound special start started still stuff
    such super sure take taken takes taking talk talked talking tell thank thanks that's
    there's thing things think thinking though thought time times today together told tomorrow
    tonight took totally tried true try trying two type usually very wanna want wanted wants
    wasn't way ways week weeks well went what's whatever who's whole will won't wonderful
    work wow wouldn't year years yeah yes yesterday yet you'd you'll you're you've""".split()
)


def stem(word: str) -> str:
    """A crude, consistent stem of a lower-case word: plural, -ing and -ed off, a doubled
    final consonant and a final e dropped ("running" → "run", "loved" → "lov" = "love")."""
    w = word
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("ing") and len(w) >= 6:
        w = w[:-3]
    elif w.endswith("ed") and len(w) >= 5:
        w = w[:-2]
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


_GENERAL_STEMS = frozenset(stem(w) for w in _GENERAL)


def concept_of(word: str) -> str | None:
    """The concept one word names (its stem), or None for a function or general word."""
    return _concept(_plain(_folded(word)))


def concepts_of(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """The concepts of `text`, at most `MAX_CONCEPTS`, longest word first; words of
    `exclude` (names already linked as entities, case-insensitive) are not concepts."""
    skip = {part.casefold() for name in exclude for part in name.split()}
    found: dict[str, int] = {}
    for word in map(_plain, _WORD.findall(_folded(text))):
        if word in skip:
            continue
        concept = _concept(word)
        if concept is not None:
            found[concept] = max(found.get(concept, 0), len(word))
    ranked = sorted(found, key=lambda c: -found[c])  # stable: ties keep text order
    return ranked[:MAX_CONCEPTS]


def _folded(text: str) -> str:
    """Case-folded, with typographic apostrophes made plain (before words are cut, so
    "don’t" stays one word)."""
    return text.casefold().replace("’", "'")


def _plain(word: str) -> str:
    """A folded word without a possessive 's ("melanie's" → "melanie")."""
    return word[:-2] if word.endswith("'s") else word


def _concept(word: str) -> str | None:
    """`concept_of` for a word already folded and plain."""
    if len(word) < 3 or word in STOPWORDS or word in _GENERAL or "'" in word:
        return None
    s = stem(word.replace("-", ""))  # "de-stress" and "destress" are one concept
    if len(s) < 3 or s in _GENERAL_STEMS:
        return None
    return s


def memory_concepts(text: str, exclude: Iterable[str], context: object = None) -> list[str]:
    """The concepts a memory is linked to: its text's, then those of its context
    (`CONTEXT_CONCEPTS`, a list the extractor recorded; anything else is ignored), at most
    `MAX_MEMORY_CONCEPTS`."""
    found = concepts_of(text, exclude)
    if isinstance(context, list):
        found += [c for c in context if isinstance(c, str) and c and c not in found]
    return found[:MAX_MEMORY_CONCEPTS]
