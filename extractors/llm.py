"""LLM extraction over any OpenAI-compatible endpoint, with the rules as the safety net.

The model sees a batch of numbered turns (several per call, to amortise the prompt) and must
answer with JSON that matches `EXTRACTION_SCHEMA`, requested through ``response_format``
(json_schema, strict) so a guided-decoding server such as vLLM cannot produce anything else.
The reply is still validated here with pydantic, because not every server honours the
schema: a turn number that was not shown, an unknown kind, an unparseable date or broken
JSON fails validation, and the batch is asked once more with the error quoted. If the retry
fails too, or the endpoint is down, that batch goes to the fallback extractor (the rules) and
each candidate records why (``metadata.fallback``). A malformed reply therefore never
reaches the store. Every candidate carries the extractor that produced it
(``metadata.extractor`` = "llm/<version>:<model>" or "rules/1").

The model is called through memsvc's one client, ``memsvc.llm.client.LLMClient.chat_json``;
`Memory` builds this extractor when ``MEMSVC_EXTRACTOR=llm`` (``memsvc.write.factory``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memsvc.extractors.base import Candidate, Extractor
from memsvc.extractors.rules import RuleExtractor, speaker_name
from memsvc.llm.client import LLMClient
from memsvc.llm.errors import LLMResponseError
from memsvc.model.records import MemoryKind, StoredMessage
from memsvc.text.timeparse import format_day

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You extract long-term memories from a conversation.
For each numbered turn, list the facts worth remembering months later:
- kind: "fact", "preference" (likes, dislikes, favourites), "event" (something that happened
  or will happen) or "procedure" (how to do something, a lesson learnt).
- text: one self-contained sentence. Use people's names, never "I", "you", "he" or "she".
- date: for events, the ISO date (YYYY-MM-DD) it happened or will happen, resolved against
  the turn's date ("yesterday" on 2023-05-08 is 2023-05-07); otherwise null.
- subject/predicate/object when the statement has them, with predicates such as lives_in,
  works_at, job_title, relationship_status, favorite_<thing>, likes, dislikes, plans,
  cancelled; otherwise null.
- entities: the people, pets, places, organisations and titles named; aliases maps a short
  or role name to the canonical name ("Mel" -> "Melanie", "Caroline's dog" -> "Oscar").
Greetings, questions and small talk produce nothing. Answer with JSON only."""

EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["memories"],
    "properties": {
        "memories": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["turn", "kind", "text", "date", "subject", "predicate", "object",
                             "entities", "aliases"],
                "properties": {
                    "turn": {"type": "integer"},
                    "kind": {"type": "string",
                             "enum": ["fact", "preference", "event", "procedure"]},
                    "text": {"type": "string"},
                    "date": {"type": ["string", "null"]},
                    "subject": {"type": ["string", "null"]},
                    "predicate": {"type": ["string", "null"]},
                    "object": {"type": ["string", "null"]},
                    "entities": {"type": "array", "items": {"type": "string"}},
                    "aliases": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["alias", "name"],
                            "properties": {"alias": {"type": "string"},
                                           "name": {"type": "string"}},
                        },
                    },
                },
            },
        }
    },
}


class _Alias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)


class ExtractedMemory(BaseModel):
    """One item of the model's answer, checked field by field."""

    model_config = ConfigDict(extra="forbid")
    turn: int
    kind: Literal["fact", "preference", "event", "procedure"]
    text: str = Field(min_length=3, max_length=2000)
    date: str | None = None
    subject: str | None = Field(default=None, max_length=200)
    predicate: str | None = Field(default=None, max_length=100)
    object: str | None = Field(default=None, max_length=500)
    entities: list[str] = Field(default_factory=list, max_length=50)
    aliases: list[_Alias] = Field(default_factory=list, max_length=50)

    @field_validator("text")
    @classmethod
    def _stands_alone(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value.strip()

    @field_validator("date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        datetime.fromisoformat(value)  # raises ValueError: a date the model made up badly
        return value


class ExtractionReply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memories: list[ExtractedMemory]


class InvalidReplyError(ValueError):
    """The model's reply does not satisfy the schema or names turns it was not shown."""


def parse_reply(content: Any, turns: int) -> ExtractionReply:
    """Validate a reply (raw text, or JSON the client already parsed); turn numbers must be
    among the 1..`turns` shown."""
    try:
        if isinstance(content, str):
            text = content.strip()
            if text.startswith("```"):
                text = text.strip("`").removeprefix("json").strip()
            content = json.loads(text)
        reply = ExtractionReply.model_validate(content)
    except (ValueError, ValidationError) as exc:
        raise InvalidReplyError(f"reply is not valid extraction JSON: {exc}"[:800]) from exc
    bad = sorted({m.turn for m in reply.memories if not 1 <= m.turn <= turns})
    if bad:
        raise InvalidReplyError(f"reply names turns {bad}, only 1..{turns} were shown")
    return reply


class LLMExtractor:
    """Extraction by an LLM through `LLMClient`, falling back to `fallback` per batch.

    `model` names the model in the extractor's version ("1:<model>"); by default the client's
    model, or the server's first one, looked up on the first call.
    """

    name = "llm"

    def __init__(
        self,
        client: LLMClient,
        *,
        model: str | None = None,
        batch_size: int = 8,
        max_tokens: int = 2048,
        fallback: Extractor | None = None,
    ) -> None:
        self.client = client
        self.model = model or client.model or "unknown"
        self.version = f"1:{self.model}"
        self.batch_size = max(1, batch_size)
        self.max_tokens = max_tokens
        self.fallback: Extractor = fallback or RuleExtractor()
        self.stats = {"calls": 0, "retries": 0, "fallbacks": 0}

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        out: list[Candidate] = []
        for start in range(0, len(messages), self.batch_size):
            out += self._extract_batch(messages[start : start + self.batch_size])
        return out

    def _extract_batch(self, batch: Sequence[StoredMessage]) -> list[Candidate]:
        prompt = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": render_turns(batch)},
        ]
        error: str | None = None
        for attempt in range(2):  # the first try and one retry
            messages = prompt if error is None else [
                *prompt,
                {"role": "user", "content": f"Your previous answer was rejected: {error}. "
                                            "Answer again with valid JSON for the schema."},
            ]
            try:
                self.stats["calls"] += 1
                if attempt:
                    self.stats["retries"] += 1
                self._resolve_model()
                value, _ = self.client.chat_json(messages, EXTRACTION_SCHEMA, name="memories",
                                                 max_tokens=self.max_tokens, temperature=0.0)
                parsed = parse_reply(value, len(batch))
                return self._candidates(parsed, batch)
            except (InvalidReplyError, LLMResponseError) as exc:  # cut off, not JSON, bad fields
                error = str(exc)
                log.info("llm extraction reply rejected (attempt %d): %s", attempt + 1, error)
            except Exception as exc:  # endpoint down, HTTP error: no point retrying now
                error = f"{type(exc).__name__}: {exc}"
                break
        return self._fall_back(batch, error or "unknown error")

    def _resolve_model(self) -> None:
        """Name the model in the version once the server has told which one it serves."""
        if self.model == "unknown":
            self.model = self.client.resolve_model()
            self.version = f"1:{self.model}"

    def _fall_back(self, batch: Sequence[StoredMessage], reason: str) -> list[Candidate]:
        self.stats["fallbacks"] += 1
        log.warning("llm extraction fell back to %s: %s", self.fallback.name, reason)
        candidates = self.fallback.extract(batch)
        for c in candidates:
            c.metadata["extractor"] = f"{self.fallback.name}/{self.fallback.version}"
            c.metadata["fallback"] = {"from": f"{self.name}/{self.version}",
                                      "reason": reason[:300]}
        return candidates

    def _candidates(self, reply: ExtractionReply, batch: Sequence[StoredMessage]
                    ) -> list[Candidate]:
        out: list[Candidate] = []
        for item in reply.memories:
            message = batch[item.turn - 1]
            valid_from = message.timestamp
            metadata: dict[str, Any] = {
                "speaker": speaker_name(message), "role": message.role,
                "extractor": f"{self.name}/{self.version}",
            }
            text = item.text
            if item.date:
                day = datetime.fromisoformat(item.date)
                day = datetime.combine(day.date(), time(), tzinfo=message.timestamp.tzinfo or UTC)
                label = format_day(day)
                metadata["time"] = [{"expression": item.date, "label": label,
                                     "start": day.isoformat(), "granularity": "day"}]
                if label not in text:
                    text = f"{text} ({label})"
                if day <= message.timestamp:
                    valid_from = day
            if item.aliases:
                metadata["aliases"] = {a.alias: a.name for a in item.aliases}
            out.append(
                Candidate(
                    kind=MemoryKind(item.kind),
                    text=text,
                    source_message_ids=[message.id],
                    valid_from=valid_from,
                    subject=item.subject or None,
                    predicate=item.predicate or None,
                    object=item.object or None,
                    entities=list(dict.fromkeys(e.strip() for e in item.entities if e.strip())),
                    metadata=metadata,
                    confidence=0.8,
                    importance=0.6,
                )
            )
        return out


def render_turns(batch: Sequence[StoredMessage]) -> str:
    """The turns as the model sees them: numbered, dated, with the speaker's name."""
    lines = [
        f"[{i}] ({m.timestamp.date().isoformat()}) {speaker_name(m)}: {m.content}"
        for i, m in enumerate(batch, start=1)
    ]
    return "Turns:\n" + "\n".join(lines)
