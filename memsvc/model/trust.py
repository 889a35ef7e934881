"""Who wrote a memory, through which channel, and how far it may be trusted.

A memory service is an attack surface: whoever can write a memory (a web page the agent
read, a tool result, another caller with a key) can steer the agent later. So every memory
carries provenance the caller cannot set:

- `writer`: the id of the API key that wrote it ("local" for the embedded SDK and a
  key-less server);
- `channel`: how its content arrived, from the role of its source messages: `user` (the
  user said it), `agent` (the assistant said it), `tool` (a tool result, a document, a web
  page), `imported` (loaded from an export);
- `trust`: user 3 > agent 2 > external 1, the lower of what the channel earns and the
  writing key's ceiling (`memsvc keys create --trust`), so a key for a tool pipeline can
  never write user-level memories whatever role it claims.

Reads default to `min_trust="agent"`: externally derived memories are kept but must be
asked for (`min_trust="external"`). A lower-trust write never supersedes a higher one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from memsvc.model.errors import InvalidInputError


class Trust(IntEnum):
    EXTERNAL = 1
    AGENT = 2
    USER = 3


class Channel(StrEnum):
    USER = "user"
    AGENT = "agent"
    TOOL = "tool"
    IMPORTED = "imported"


# what each channel earns at most: tool results and documents are external content
CHANNEL_TRUST: dict[Channel, Trust] = {
    Channel.USER: Trust.USER,
    Channel.AGENT: Trust.AGENT,
    Channel.TOOL: Trust.EXTERNAL,
    Channel.IMPORTED: Trust.USER,  # an export's own trust, capped by the importing key
}
ROLE_CHANNEL: dict[str, Channel] = {
    "user": Channel.USER,
    "assistant": Channel.AGENT,
    "system": Channel.AGENT,
    "tool": Channel.TOOL,
}
LOCAL_WRITER = "local"
DEFAULT_MIN_TRUST = Trust.AGENT


def parse_trust(value: Any, *, field: str = "min_trust") -> Trust:
    """A trust level from its name ("user", "agent", "external") or number (1-3)."""
    if isinstance(value, Trust):
        return value
    if isinstance(value, str) and value.strip().upper() in Trust.__members__:
        return Trust[value.strip().upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
        return Trust(value)
    raise InvalidInputError(f"{field} must be one of 'user', 'agent', 'external'", field=field)


def channel_of_roles(roles: Iterable[str]) -> Channel:
    """The channel of content drawn from messages with these roles: the least trusted of
    them (one tool turn among user turns makes the whole candidate tool-derived)."""
    channels = [ROLE_CHANNEL.get(role, Channel.TOOL) for role in roles]
    if not channels:
        return Channel.USER
    return min(channels, key=lambda c: CHANNEL_TRUST[c])


@dataclass(frozen=True)
class Writer:
    """The identity a write is made with: resolved from the request's API key by the server
    (never from the request body), "local" with the user ceiling for the embedded SDK.
    `user_id`: the one user a bound key may act for (None: any user of its tenant)."""

    id: str = LOCAL_WRITER
    ceiling: Trust = Trust.USER
    user_id: str | None = None

    def trust_for(self, channel: Channel, claimed: int | None = None) -> Trust:
        """min(what the channel earns, `claimed` if given, the key's ceiling)."""
        level = min(CHANNEL_TRUST[channel], self.ceiling)
        if claimed is not None:
            level = min(level, parse_trust(claimed, field="trust"))
        return Trust(level)

    def stamp(self, channel: Channel, claimed: int | None = None) -> dict[str, Any]:
        """The provenance fields of a record this writer writes through `channel`."""
        return {"writer": self.id, "channel": channel.value,
                "trust": int(self.trust_for(channel, claimed))}


LOCAL = Writer()


def least_trusted(stamps: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Of several provenance stamps ({writer, channel, trust}), the least trusted (first of
    equals): what content drawn from all of them may claim."""
    found: dict[str, Any] | None = None
    for stamp in stamps:
        if found is None or stamp["trust"] < found["trust"]:
            found = stamp
    return found


def derived_from(records: Iterable[Any], writer: str = "consolidation") -> dict[str, Any]:
    """The provenance of a memory built from other memories (a summary, a profile): never
    more trusted than the least trusted of them."""
    weakest = least_trusted({"writer": r.writer, "channel": r.channel, "trust": r.trust}
                            for r in records)
    if weakest is None:
        return {"writer": writer, "channel": Channel.USER.value, "trust": int(Trust.USER)}
    return {**weakest, "writer": writer}
