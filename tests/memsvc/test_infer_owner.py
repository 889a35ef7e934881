"""`Memory.infer` (the second half of a background add) stays within the caller's owner.

Found in review of issue 11: with a scope that names no user, `infer` picked the messages
by id from every user's messages of the scope, so a user's message id extracted that user's
words into a memory with no user; and it found a message's episode by content hash with no
owner (or message) check, so a failure mark could land on another user's identical episode,
or on an earlier identical turn of the same user.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.extractors.base import Candidate
from memsvc.extractors.rules import RuleExtractor
from memsvc.model.records import StoredMessage
from memsvc.model.settings import Settings


class BrokenExtractor:
    name = "broken"
    version = "1"

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        raise RuntimeError("extractor down")


def _episode_of(memory: Memory, message_id: str) -> dict[str, object]:
    for record in memory.export():
        if record.kind.value == "episode" and record.provenance.source_message_ids == [
            message_id
        ]:
            return record.metadata
    raise AssertionError(f"no episode for {message_id}")


def test_a_userless_infer_cannot_extract_a_users_message(memory: Memory) -> None:
    alice = memory.add("I live in Boston.", user_id="alice", agent_id="bot",
                       session_id="s1").message_ids
    result = memory.infer(alice, agent_id="bot", session_id="s1")
    assert result.message_ids == [] and result.results == []
    assert [m.text for m in memory.export() if m.scope.user_id is None] == []
    # the owner's own call extracts it
    own = memory.infer(alice, user_id="alice", agent_id="bot", session_id="s1")
    assert [c.text for c in own.results] == ["User lives in Boston."]
    assert all(m.scope.user_id == "alice" for m in memory.export())


def test_a_failure_mark_lands_on_the_inferred_messages_own_episode(
    embedder: SentenceTransformerEmbedder, db_path: Path
) -> None:
    settings = Settings(db_path=db_path)
    with Memory(settings=settings, embedder=embedder, extractor=BrokenExtractor()) as memory:
        alice = memory.add("I live in Paris.", user_id="alice", agent_id="bot").message_ids
        note = memory.add("I live in Paris.", agent_id="bot").message_ids
        first = memory.add("I moved again.", user_id="bob").message_ids
        second = memory.add("I moved again.", user_id="bob").message_ids
        memory.infer(note, agent_id="bot")
        memory.infer(second, user_id="bob")
        assert "extraction" not in _episode_of(memory, alice[0])  # another owner's episode
        assert "extraction" not in _episode_of(memory, first[0])  # an earlier identical turn
        assert _episode_of(memory, note[0])["extraction"]["status"] == "failed"  # type: ignore[index]
        assert _episode_of(memory, second[0])["extraction"]["status"] == "failed"  # type: ignore[index]
    # and the rules extract them later, each in its own owner's scope
    with Memory(settings=settings, embedder=embedder, extractor=RuleExtractor()) as memory:
        memory.consolidate(steps=["retry"])
        owners = {(m.scope.user_id, m.text) for m in memory.export()
                  if m.kind.value != "episode"}
        assert (None, "User lives in Paris.") in owners
        assert ("alice", "User lives in Paris.") not in owners  # alice's turn was never tried
