"""Named things in a statement, with the aliases the conversation gives them.

No NER model can be fetched at run time, so this is pattern work that holds up on chat text:
runs of capitalised words that do not open the sentence (or do, when they are not ordinary
sentence starters), quoted titles ("Charlotte's Web"), and names introduced by a role ("my dog
Oscar", "my sister named Ana"). Aliases come from two places: a short form of a known person's
name ("Mel" for Melanie) and a role phrase ("Caroline's dog" → "Oscar"). The canonical names go
to `Candidate.entities`; the aliases to `metadata["aliases"]` as {alias: canonical}, which the
graph consumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STOP_CAPS = frozenset(
    """I I'm I've I'd I'll A An The This That These Those It It's Its He She They We You Your
    My Our His Her Their Me Us Them Hey Hi Hello Wow Oh Ah Yeah Yes No Nope Ok Okay Thanks
    Thank Sure Well So And But Or If When What Why How Who Where Which Whoa Aww Aw Haha Lol
    Omg Great Good Nice Cool Awesome Amazing Totally Definitely Absolutely Really Also Just
    Anyway Btw Congrats Congratulations Sorry Please Let Have Has Had Do Does Did Is Are Was
    Were Be Been Can Could Would Should Will May Might Must Not There Here Then Now Today
    Yesterday Tomorrow Last Next Every Some Any All Both Each Such Very Much Many Most More
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April
    June July August September October November December Gonna Wanna Hope Love Glad Happy
    Seeing Being Going Getting Making Taking Doing Having Trying Looking Keep Take Make Go
    Bye Goodbye See Mom Dad Mum Grandma Grandpa God Haven't Hasn't Didn't Don't Doesn't Can't
    Won't Wouldn't Couldn't Shouldn't Isn't Aren't Wasn't Weren't That's It's What's Let's
    There's Here's Who's Agreed Exactly Right True Totally Indeed Speaking Talking Remember
    Same Honestly Actually Plus Even Still Yep Hmm Hm Um Uh Whoa Ooh Yay Woah Gosh Dear""".split()
)
_ROLES = (
    r"(?:dog|cat|puppy|kitten|pet|guinea\s+pig|hamster|rabbit|bunny|bird|parrot|horse|fish|"
    r"turtle|snake|sister|brother|mom|mother|dad|father|son|daughter|husband|wife|partner|"
    r"boyfriend|girlfriend|fiance|fiancee|friend|best\s+friend|cousin|aunt|uncle|grandma|"
    r"grandmother|grandpa|grandfather|niece|nephew|boss|coworker|colleague|roommate|kid|"
    r"child|baby|teacher|mentor|neighbor|neighbour|band|team|company|book|song|album|"
    r"car|boat)"
)
_ROLE_NAME = re.compile(
    rf"\b(?:[Mm]y|[Oo]ur|[A-Z][a-z]+'s)\s+(?:new\s+|little\s+|older\s+|younger\s+|old\s+)?"
    rf"({_ROLES})\s*,?\s+(?:(?:who\s+is\s+)?(?:named|called)\s+)?([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)\b"
)
_CAP_RUN = re.compile(
    r"\b([A-Z][\w'’&.-]*[A-Za-z0-9](?:\s+(?:of|the|de|and|&|on|for)?\s*[A-Z][\w'’&-]*[A-Za-z0-9])*)"
)
_QUOTED = re.compile(r"[\"“]([^\"”]{2,60})[\"”]")


def _clean(name: str) -> str:
    name = re.sub(r"['’]s$", "", name.strip(" .,'’-"))
    return name


def _is_stop(word: str) -> bool:
    base = re.split(r"['’]", word, maxsplit=1)[0]
    return word in _STOP_CAPS or base in _STOP_CAPS


def find_entities(
    sentence: str, known_people: Iterable[str] = ()
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Canonical entity names, aliases {alias: canonical}, and role aliases found in `sentence`.

    `known_people` (the speakers of the conversation) resolve short forms: "Mel" → "Melanie".
    The third value maps role phrases of the *original* sentence ("my dog") to the name, so the
    caller can qualify them with the speaker ("Caroline's dog").
    """
    people = [p for p in known_people if p]
    entities: list[str] = []
    aliases: dict[str, str] = {}
    roles: dict[str, str] = {}

    def add(name: str) -> None:
        name = _clean(name)
        if not name or name in entities or len(name) < 2:
            return
        for person in people:
            if name != person and len(name) >= 3 and person.lower().startswith(name.lower()):
                aliases[name] = person
                name = person
                break
        if name not in entities:
            entities.append(name)

    for match in _ROLE_NAME.finditer(sentence):
        role, name = re.sub(r"\s+", " ", match.group(1)), match.group(2)
        add(name)
        roles[role] = name
    for match in _QUOTED.finditer(sentence):
        add(match.group(1))
    opening = re.match(r"\W*", sentence)
    first_at = opening.end() if opening else 0
    for match in _CAP_RUN.finditer(sentence):
        words = match.group(1).split()
        while words and _is_stop(words[0]):
            words = words[1:]
        if (
            match.start() == first_at and len(words) == 1 and words[0] == match.group(1)
            and not any(p.lower().startswith(words[0].lower()) for p in people)
        ):
            continue  # a lone capitalised opener is usually just an ordinary word
        while words and words[-1] in ("of", "the", "and", "&", "on", "for", "de"):
            words = words[:-1]
        if not words:
            continue
        phrase = " ".join(words)
        if phrase in _STOP_CAPS:
            continue
        add(phrase)
    return entities, aliases, roles
