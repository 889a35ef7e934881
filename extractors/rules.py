"""The default extractor: typed, stand-alone memories from turns, with no LLM.

For each turn: split it into sentences, drop what carries nothing to remember (questions,
greetings, bare reactions), rewrite the rest so it stands alone ("I" → the speaker), resolve
its time expressions against the turn's own timestamp (and write the date into the text), and
type it: `procedure` (how-to, lessons; tool output that failed or was fixed), `preference`
(likes, dislikes, favourites), `event` (happened or will happen), else `fact`. Entities and
their aliases, and a subject/predicate/object for the statements the manager can update,
come along.

Every rule here is a pattern on the surface text, so it is fast, deterministic and testable,
and it misses what a paraphrase hides; the LLM extractor covers that when one is configured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memsvc.extractors.base import Candidate
from memsvc.extractors.entities import find_entities
from memsvc.extractors.statements import (
    add_missing_subject,
    has_first_person,
    resolve_persons,
    split_sentences,
)
from memsvc.extractors.triples import find_triples
from memsvc.model.records import MemoryKind, StoredMessage
from memsvc.text.timeparse import TimeSpan, find_times, is_future

_PROCEDURE = re.compile(
    r"\b(?:how\s+to|the\s+(?:trick|key|secret|fix|solution|workaround)\s+(?:is|was)|"
    r"make\s+sure|remember\s+to|don['’]t\s+forget|pro\s+tip|tip\s*:|step\s+\d|"
    r"lesson(?:s)?\s+(?:learned|learnt)|(?:learned|learnt)\s+(?:that|to|how)|next\s+time|"
    r"should\s+(?:always|never)|always\s+(?:use|check|make|start|remember)|"
    r"never\s+(?:use|forget|skip)|works\s+best|to\s+fix\s+(?:it|this|that)|"
    r"(?:fixed|solved|resolved)\s+(?:it|this|that|the)\s+by|instead\s+of)\b",
    re.IGNORECASE,
)
_TOOL_SIGNAL = re.compile(
    r"\b(?:error|failed|failure|exception|timeout|timed\s+out|denied|not\s+found|invalid|"
    r"fixed|succeeded|success|worked|retry|retried)\b",
    re.IGNORECASE,
)
_TOOL_FAILURE = re.compile(
    r"\b(?:error|failed|failure|exception|traceback|timeout|timed\s+out|denied|not\s+found|"
    r"invalid|refused|unauthori[sz]ed|forbidden|status\s*[45]\d\d)\b",
    re.IGNORECASE,
)
_PREFERENCE = re.compile(
    r"\b(?:(?:I|we|I['’]d|we['’]d|really|also|totally|just|still|always|truly|absolutely|"
    r"don['’]t|do\s+not|never|kinda|so|no\s+longer|stopped)\s+(?:love|like|enjoy|adore|"
    r"prefer|hate|dislike|detest|liking|enjoying)|can['’]t\s+stand|favou?rite|fan\s+of|"
    r"passionate\s+about|obsessed\s+with|(?:I['’]m|I\s+am|we['’]re)\s+(?:really\s+|so\s+|not\s+)?"
    r"into|allergic\s+to|vegetarian|vegan)\b",
    re.IGNORECASE,
)
_EVENT_VERB = re.compile(
    r"\b(?:went|visited|started|finished|adopted|got|bought|ran|joined|took|attended|met|"
    r"moved|graduated|married|won|lost|travel(?:l)?ed|celebrated|began|completed|signed\s+up|"
    r"volunteered|participated|hosted|organi[sz]ed|made|painted|wrote|saw|watched|gave|"
    r"received|launched|quit|left|retired|cancel(?:l)?ed|called\s+off|had\s+a|was\s+at|"
    r"performed|played|visited|hiked|camped|learned|learnt|created|built|found|tried|"
    r"applied|passed|failed|broke|injured|bought|sold|opened|closed|returned|came\s+back|"
    r"going\s+to|gonna|planning|plan\s+to|will|scheduled)\b",
    re.IGNORECASE,
)
_FILLER_START = re.compile(
    r"^(?:hey|hi|hello|wow|oh|aww?|yeah|yes|no|ok(?:ay)?|thanks|thank\s+you|sure|cool|great|"
    r"awesome|amazing|congrats|congratulations|haha|lol|bye|take\s+care|see\s+you|good\s+luck|"
    r"that['’]s|sounds|glad|so\s+(?:happy|glad)|i['’]m\s+(?:so\s+)?(?:happy|glad)\s+(?:for|to\s+hear))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9']+")
_STOPWORDS = frozenset(
    """a an the and or but so to of in on at for with from by about as is are was were be been
    being am it its it's this that these those there here i me my we us our you your he she
    they them his her their what which who whom how why when where do does did doing have has
    had having not no yes just really very too also so much many more most some any all can
    could would should will shall may might must oh wow hey hi yeah okay ok thanks thank
    great good nice cool awesome amazing that's it's i'm you're glad happy love like know
    think sure totally definitely""".split()
)

_SPAN_WORDS = re.compile(r"\b(?:from|between|since)\b.*\b(?:to|until|till|and)\b", re.I)


def speaker_name(message: StoredMessage) -> str:
    """Who said it, as a name a memory can use ("Caroline"; "User" for a bare user turn)."""
    if message.name:
        return message.name
    return {"user": "User", "assistant": "Assistant", "tool": "Tool"}.get(
        message.role, message.role.title()
    )


def _addressees(messages: Sequence[StoredMessage]) -> list[str | None]:
    """For each turn, who it is most likely spoken to: the nearest other speaker."""
    names = [speaker_name(m) for m in messages]
    out: list[str | None] = []
    for i, name in enumerate(names):
        other = next((n for n in reversed(names[:i]) if n != name), None)
        if other is None:
            other = next((n for n in names[i + 1:] if n != name), None)
        out.append(other)
    return out


def _is_worth_keeping(sentence: str, role: str, entities: list[str], times: list[TimeSpan],
                      people: Sequence[str] = ()) -> bool:
    if sentence.rstrip().endswith("?"):
        return False
    words = _WORD.findall(sentence)
    content = [w for w in words if w.lower() not in _STOPWORDS]
    if len(words) < 4 or len(content) < 2:
        return False
    if role == "tool":
        return True
    if _FILLER_START.match(sentence) and not has_first_person(sentence.split(",", 1)[-1]):
        return False
    # naming only the people talking ("Thanks, Caroline!") is conversation, not memory
    named = [e for e in entities if e not in people]
    return has_first_person(sentence) or bool(named) or bool(times) or bool(
        _PROCEDURE.search(sentence)
    )


def _is_substantive(sentence: str) -> bool:
    if sentence.rstrip().endswith("?"):
        return False
    words = _WORD.findall(sentence)
    return len(words) >= 4 and len([w for w in words if w.lower() not in _STOPWORDS]) >= 2


_SHORT_ANSWER = re.compile(r"^(?:yes|yeah|yep|no|nope|not\s+really|definitely|of\s+course)\b",
                           re.IGNORECASE)


def _is_short_answer(sentence: str) -> bool:
    if sentence.rstrip().endswith("?"):
        return False
    if _SHORT_ANSWER.match(sentence):
        return True
    words = _WORD.findall(sentence)
    return 0 < len(words) <= 4 and not _FILLER_START.match(sentence) and any(
        w.lower() not in _STOPWORDS for w in words
    )


def _question_answered(
    previous: StoredMessage | None, message: StoredMessage
) -> tuple[str, str] | None:
    """(asker, resolved question) when `message` replies to another speaker's question."""
    if previous is None or speaker_name(previous) == speaker_name(message):
        return None
    sentences = split_sentences(previous.content)
    asked = next((s for s in reversed(sentences) if s.rstrip().endswith("?")), None)
    if asked is None or len(_WORD.findall(asked)) < 3:
        return None
    asker = speaker_name(previous)
    return asker, resolve_persons(asked, asker, speaker_name(message))


def classify(sentence: str, role: str, has_time: bool) -> MemoryKind:
    """The kind of one statement; the order encodes which reading wins when several fit."""
    if _PROCEDURE.search(sentence) or (role == "tool" and _TOOL_SIGNAL.search(sentence)):
        return MemoryKind.PROCEDURE
    if _PREFERENCE.search(sentence):
        return MemoryKind.PREFERENCE
    if has_time or (has_first_person(sentence) and _EVENT_VERB.search(sentence)):
        return MemoryKind.EVENT
    return MemoryKind.FACT


def annotate(text: str, times: list[TimeSpan]) -> str:
    """Write each resolved date into the text, after its expression: 'yesterday (7 May 2023)'."""
    for span in times:
        if span.label.lower() in span.expression.lower():
            continue
        text = text.replace(span.expression, f"{span.expression} ({span.label})", 1)
    return text


class RuleExtractor:
    """Pattern-based extraction; the embedded default when no LLM is configured."""

    name = "rules"
    version = "1"

    def __init__(self, *, merge: bool = True) -> None:
        # merge: one memory per turn and kind (statements with a triple stay apart), so a
        # turn does not fill a result page with its own sentences
        self.merge = merge

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        people = sorted({m.name for m in messages if m.name})
        out: list[Candidate] = []
        previous: StoredMessage | None = None
        for message, addressee in zip(messages, _addressees(messages), strict=True):
            question = _question_answered(previous, message)
            out.extend(self.extract_message(message, addressee, people, question))
            previous = message
        out.extend(trajectory_lessons(messages))
        return out

    def extract_message(
        self, message: StoredMessage, addressee: str | None = None,
        people: Sequence[str] = (), question: tuple[str, str] | None = None,
    ) -> list[Candidate]:
        """Candidates of one turn; `question` is (asker, question) when it answers one."""
        speaker = speaker_name(message)
        known = [*people, speaker] + ([addressee] if addressee else [])
        pieces: list[Candidate] = []
        for position, sentence in enumerate(split_sentences(message.content)):
            times = find_times(sentence, message.timestamp)
            entities, aliases, roles = find_entities(sentence, known)
            if not _is_worth_keeping(sentence, message.role, entities, times, known) and not (
                # an answer carries its meaning even without "I": "It was a poetry reading.",
                # and a short first reply ("Kyoto.", "Yes!") means something next to the question
                question and (_is_substantive(sentence) or (
                    position == 0 and _is_short_answer(sentence)))
            ):
                continue
            kind = classify(sentence, message.role, bool(times))
            text = annotate(
                resolve_persons(add_missing_subject(sentence, speaker), speaker, addressee), times
            )
            triples = find_triples(sentence, speaker)
            metadata: dict[str, Any] = {"speaker": speaker, "role": message.role}
            for role, name in roles.items():
                aliases[f"{speaker}'s {role}"] = name
            if aliases:
                metadata["aliases"] = aliases
            valid_from, valid_to = self._validity(sentence, kind, times, message.timestamp)
            if times:
                metadata["time"] = [
                    {"expression": t.expression, "label": t.label, "start": t.start.isoformat(),
                     "end": t.end.isoformat(), "granularity": t.granularity}
                    for t in times
                ]
            people_named = [speaker] if message.role != "tool" else []
            names = list(dict.fromkeys([*people_named, *entities]))
            if triples:
                metadata["triples"] = [[t.subject, t.predicate, t.object] for t in triples]
            first = triples[0] if triples else None
            pieces.append(
                Candidate(
                    kind=kind,
                    text=text,
                    source_message_ids=[message.id],
                    valid_from=valid_from,
                    valid_to=valid_to,
                    subject=first.subject if first else None,
                    predicate=first.predicate if first else None,
                    object=first.object if first else None,
                    entities=names,
                    metadata=metadata,
                    confidence=0.6,
                    importance=_IMPORTANCE[kind],
                )
            )
        out = merge_turn(pieces) if self.merge else pieces
        if question and out:
            # the answer alone ("Becoming Nicole, for sure!") needs what was asked
            asker, asked = question
            out[0].text = f"{out[0].text} (answering {asker}: \"{asked}\")"
            out[0].metadata["answers"] = asked
        return out

    @staticmethod
    def _validity(
        sentence: str, kind: MemoryKind, times: list[TimeSpan], said_at: datetime
    ) -> tuple[datetime, datetime | None]:
        """When the statement holds in the world.

        A past event starts when it happened and stays true afterwards (valid_to stays open:
        that Caroline went to the group on 7 May remains so); an explicit span ("from 2019 to
        2021") closes it. Plans and facts hold from when they were said, unless a past date
        says since when.
        """
        if not times:
            return said_at, None
        first = times[0]
        if len(times) >= 2 and _SPAN_WORDS.search(sentence):
            return first.start, times[-1].end
        for span in times:  # "until next Friday": holds from now to the end of that day
            if re.search(rf"\b(?:until|till|through)\s+{re.escape(span.expression)}", sentence,
                         re.IGNORECASE) and span.end > said_at:
                return said_at, span.end
        if first.start <= said_at and not is_future(sentence):
            return first.start, None
        return said_at, None


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def trajectory_lessons(messages: Sequence[StoredMessage]) -> list[Candidate]:
    """Lessons from an agent's tool use: a tool call that failed, what the assistant did
    next, and the same tool succeeding afterwards become one `procedure`:
    "When weather_api failed with '...', what worked: ...". All three turns are its source."""
    lessons: list[Candidate] = []
    for i, failed in enumerate(messages):
        if failed.role != "tool" or not _TOOL_FAILURE.search(failed.content):
            continue
        tool = failed.name or "the tool"
        fix = next((m for m in messages[i + 1:] if m.role == "assistant"), None)
        if fix is None:
            continue
        after = messages[messages.index(fix) + 1:]
        success = next(
            (m for m in after if m.role == "tool" and (m.name or "the tool") == tool), None
        )
        if success is None or _TOOL_FAILURE.search(success.content):
            continue
        text = (f"When {tool} failed with \"{_first_line(failed.content)}\", what worked: "
                f"{_first_line(fix.content, 240)}")
        lessons.append(
            Candidate(
                kind=MemoryKind.PROCEDURE,
                text=text,
                source_message_ids=[failed.id, fix.id, success.id],
                valid_from=success.timestamp,
                entities=[tool] if failed.name else [],
                metadata={"speaker": speaker_name(fix), "role": "trajectory", "tool": tool,
                          "lesson": True},
                confidence=0.6,
                importance=0.8,
            )
        )
    return lessons


def merge_turn(pieces: list[Candidate]) -> list[Candidate]:
    """Join a turn's statements of the same kind into one candidate; a statement with a
    subject/predicate/object stays on its own so the manager can retire exactly it."""
    out: list[Candidate] = []
    by_kind: dict[MemoryKind, Candidate] = {}
    for piece in pieces:
        if piece.predicate:
            out.append(piece)
            continue
        into = by_kind.get(piece.kind)
        if into is None:
            by_kind[piece.kind] = piece
            out.append(piece)
            continue
        into.text = f"{into.text} {piece.text}"
        into.entities = list(dict.fromkeys([*into.entities, *piece.entities]))
        for key in ("aliases",):
            if key in piece.metadata:
                into.metadata[key] = {**into.metadata.get(key, {}), **piece.metadata[key]}
        if "time" in piece.metadata:
            into.metadata["time"] = [*into.metadata.get("time", []), *piece.metadata["time"]]
        if piece.valid_from and into.valid_from and piece.valid_from < into.valid_from:
            into.valid_from = piece.valid_from
    return out


_IMPORTANCE = {
    MemoryKind.FACT: 0.5,
    MemoryKind.PREFERENCE: 0.6,
    MemoryKind.EVENT: 0.6,
    MemoryKind.PROCEDURE: 0.7,
}
