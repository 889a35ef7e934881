"""Where a write's content came from: the provenance stamped on every memory it produces.

A candidate memory is backed by source messages; each message lends it the channel of its
role and the trust its writer may give (memsvc.model.trust), and the candidate takes the
least trusted of its sources. When a message's episode is already stored (a background
add's extraction, consolidation's retry), the episode's stamp caps it too: it was written
with the original key, so extracting later, by any process, never raises the trust.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memsvc.model.records import MemoryRecord, StoredMessage
from memsvc.model.trust import LOCAL, ROLE_CHANNEL, Channel, Writer, least_trusted


class Origin:
    """The provenance of what one write derives from `messages`, written by `writer`."""

    def __init__(
        self,
        writer: Writer = LOCAL,
        messages: Iterable[StoredMessage] = (),
        episodes: Mapping[str, MemoryRecord] | None = None,
    ) -> None:
        self.writer = writer
        self._by_message: dict[str, dict[str, Any]] = {}
        for m in messages:
            stamp = writer.stamp(ROLE_CHANNEL.get(m.role, Channel.TOOL))
            episode = (episodes or {}).get(m.id)
            if episode is not None and episode.trust < stamp["trust"]:
                stamp = {"writer": episode.writer, "channel": episode.channel,
                         "trust": episode.trust}
            elif episode is not None:
                stamp["writer"] = episode.writer
            self._by_message[m.id] = stamp

    def stamp(self, source_message_ids: Sequence[str]) -> dict[str, Any]:
        """{writer, channel, trust} for content backed by these messages (the least trusted
        of them; of every message of the write when none of them is known)."""
        known = [self._by_message[i] for i in source_message_ids if i in self._by_message]
        weakest = least_trusted(known or self._by_message.values())
        return dict(weakest) if weakest is not None else self.writer.stamp(Channel.USER)
