"""Writing to a store: `add`, `infer`, `update`, the deletes and `reset` (one part of `Memory`).

Everything is validated before anything is written, and each call is one `WriteBatch`, so a
refused call leaves no trace and an accepted one lands whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memsvc.extractors.base import Candidate
from memsvc.model.chat import CHAT_METADATA_KEY
from memsvc.model.errors import ForbiddenError, InvalidInputError, RoleNotAllowedError
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    AddResult,
    HistoryEvent,
    MemoryRecord,
    MemoryStatus,
    StoredMessage,
)
from memsvc.model.trust import Trust
from memsvc.model.validation import (
    clean_id,
    clean_metadata,
    clean_text,
    make_scope,
    parse_timestamp,
)
from memsvc.sdk.operations import MessagesInput
from memsvc.sdk.parts import _now
from memsvc.sdk.search import Reads
from memsvc.storage.base import HistoryDraft, WriteBatch
from memsvc.write.extraction import (
    ExtractionOutcome,
    failure_mark,
    mark_messages,
    mark_stored_episodes,
    record_failures,
    run_extractor,
)
from memsvc.write.index_vectors import candidate_vectors
from memsvc.write.manager import snapshot
from memsvc.write.origin import Origin
from memsvc.write.pending import clear_pending, episodes_of, mark_pending, owned_messages
from memsvc.write.quarantine import QUARANTINE_KEY, flagged_messages, screened

ROLES = frozenset({"user", "assistant", "tool"})
#: Speaker names refused because they mimic a role: an episode reads "<speaker>: <content>",
#: and "SYSTEM: ..." in a prompt reads as the deployment's own voice.
ROLE_NAMES = frozenset({"system", "assistant", "user", "developer", "tool", "model", "admin",
                        "administrator", "root", "operator"})
#: `review` actions and the status each leaves a quarantined memory in.
REVIEW_ACTIONS = {"release": MemoryStatus.ACTIVE, "delete": MemoryStatus.DELETED}


class Writes(Reads):
    def add(
        self,
        messages: MessagesInput,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        timestamp: datetime | str | float | None = None,
        infer: bool = False,
    ) -> AddResult:
        """Store the messages verbatim, each as an episode; with `infer`, extract more.

        Everything is validated before anything is written, and the whole call is one
        transaction: messages, memories, vectors, FTS entries and history land together.
        """
        return self._add(messages, user_id=user_id, agent_id=agent_id, session_id=session_id,
                         metadata=metadata, timestamp=timestamp, infer=infer)

    def _add(
        self,
        messages: MessagesInput,
        *,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        metadata: dict[str, Any] | None,
        timestamp: datetime | str | float | None,
        infer: bool,
        pending: bool = False,
        chat: bool = False,
    ) -> AddResult:
        """`add`; with `pending` (a background add: `memsvc.sdk.background`), each episode is
        stored marked "extraction pending" in the same transaction (memsvc.write.pending).
        Only `chat` (memsvc's own chat, `serving/chat.py`) may write `metadata.chat`: a chat
        turn's memory block is replayed into later prompts, so a caller must not forge one."""
        if not chat and isinstance(metadata, dict) and CHAT_METADATA_KEY in metadata:
            raise InvalidInputError(
                f"metadata.{CHAT_METADATA_KEY} is reserved for memsvc's chat (it holds the "
                f"memory block a chat turn was sent with)", field=f"metadata.{CHAT_METADATA_KEY}")
        scope = make_scope(self._own_user(user_id), agent_id, session_id)
        meta = clean_metadata(metadata)
        default_time = parse_timestamp(timestamp) or _now()
        now = _now()
        stored = [
            StoredMessage(
                id=new_id(),
                scope=scope,
                role=m["role"],
                name=m["name"],
                content=m["content"],
                timestamp=m["timestamp"] or default_time,
                created_at=now,
                metadata=meta,
            )
            for m in self._clean_messages(messages)
        ]
        extracted = ExtractionOutcome()
        if infer and self.extractor is not None:
            # a failing extractor never costs the message: it is kept as an episode, marked
            extracted = run_extractor(self.extractor, stored)
            mark_messages(stored, extracted, self.extractor.name)
        candidates: list[tuple[Candidate, str, str]] = [
            (c, self._episodes.name, self._episodes.version)
            for c in self._episodes.extract(stored)
        ]
        candidates += extracted.candidates
        embeddings = candidate_vectors(self.embedder, [c for c, _, _ in candidates],
                                       context_weight=self.settings.episode_context_weight)
        batch = WriteBatch(messages=stored)
        changes = self._manager.plan(
            candidates, embeddings, scope, now=now, actor="add", batch=batch,
            flagged=flagged_messages(stored),
            origin=Origin(self._writer, stored),
        )
        if self.extractor is not None:
            record_failures(batch, extracted, self.extractor.name, "add", now)
            if pending and not infer:
                mark_pending(batch, self.extractor.name, now)
        self.store.apply(batch)
        return AddResult(message_ids=[m.id for m in stored], results=changes)

    def infer(
        self,
        message_ids: Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> AddResult:
        """Run the extractor over messages already stored by `add(infer=False)`.

        The second half of a background write (REST `background: true`): the raw messages
        are durable first, extraction follows; a crash in between loses no message.
        """
        scope = make_scope(self._own_user(user_id), agent_id, session_id)
        wanted = {clean_id(m, field="message_ids") for m in message_ids}
        # only this owner's messages: a scope without a user must not reach a user's turns
        stored = [m for m in owned_messages(self.store.messages(scope, limit=100_000), scope)
                  if m.id in wanted]
        if self.extractor is None or not stored:
            return AddResult(message_ids=[m.id for m in stored])
        extracted = run_extractor(self.extractor, stored)
        embeddings = candidate_vectors(
            self.embedder, [c for c, _, _ in extracted.candidates],
            context_weight=self.settings.episode_context_weight)
        batch = WriteBatch()
        now = _now()
        # the episodes were stamped by the key that wrote the messages: they cap the trust
        episodes = episodes_of(self.store, scope, stored)
        changes = self._manager.plan(
            extracted.candidates, embeddings, scope, now=now, actor="add", batch=batch,
            flagged=flagged_messages(stored),
            origin=Origin(self._writer, stored, episodes),
        )
        # what failed is marked on the episodes, for consolidation's retry step, as add() does;
        # a background add's "pending" mark comes off the others in the same transaction
        name = self.extractor.name
        mark_stored_episodes(batch, episodes, extracted, name, "add", now)
        clear_pending(batch, [e for mid, e in episodes.items()
                              if failure_mark(mid, extracted, name) is None], name, "add", now)
        self.store.apply(batch)
        return AddResult(message_ids=[m.id for m in stored], results=changes)

    def _clean_messages(self, messages: MessagesInput) -> list[dict[str, Any]]:
        if isinstance(messages, str | bytes | bytearray):
            messages = [{"role": "user", "content": messages}]
        elif isinstance(messages, dict):
            messages = [messages]
        if not isinstance(messages, Sequence) or not messages:
            raise InvalidInputError("messages must be text or a non-empty list of messages",
                                    field="messages")
        out = []
        for i, raw in enumerate(messages):
            where = f"messages[{i}]"
            if isinstance(raw, str | bytes):
                raw = {"role": "user", "content": raw}
            if not isinstance(raw, dict):
                raise InvalidInputError(f"{where} must be an object", field=where)
            unknown = set(raw) - {"role", "content", "name", "timestamp"}
            if unknown:
                raise InvalidInputError(
                    f"{where} has unknown fields {sorted(unknown)}", field=where
                )
            role = raw.get("role", "user")
            if isinstance(role, str) and role.strip().casefold() == "system":
                raise RoleNotAllowedError(
                    f"{where}.role 'system' is not stored: system prompts are the "
                    f"deployment's, not memories (leave them out, or send them as 'user')",
                    field=f"{where}.role")
            if role not in ROLES:
                raise InvalidInputError(
                    f"{where}.role must be one of {sorted(ROLES)}", field=f"{where}.role"
                )
            name = clean_id(raw.get("name"), field=f"{where}.name")
            if name is not None and _role_like(name, role):
                raise RoleNotAllowedError(
                    f"{where}.name {name!r} mimics a role; use the speaker's own name",
                    field=f"{where}.name")
            out.append(
                {
                    "role": role,
                    "content": clean_text(
                        raw.get("content"), max_bytes=self.settings.max_text_bytes,
                        field=f"{where}.content",
                    ),
                    "name": name,
                    "timestamp": parse_timestamp(raw.get("timestamp"), field=f"{where}.timestamp"),
                }
            )
        return out

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryRecord:
        """Write a new version of a memory; the old one is kept in its history.

        New text is screened as an added message is: instruction-shaped or stuffed text
        leaves the memory quarantined (`review` decides). The new version is this writer's:
        its trust never exceeds the writing key's ceiling."""
        old = self.get(memory_id)
        if old.status is MemoryStatus.DELETED:
            raise InvalidInputError(f"memory {memory_id} is deleted", field="id")
        if text is None and metadata is None and importance is None:
            raise InvalidInputError("nothing to update: give text, metadata or importance")
        changes: dict[str, Any] = {
            "updated_at": _now(), "version": old.version + 1, "writer": self._writer.id,
            "trust": min(old.trust, int(self._writer.ceiling)),
        }
        embedding = None
        if text is not None:
            changes["text"] = clean_text(text, max_bytes=self.settings.max_text_bytes)
            changes["content_hash"] = content_hash(old.kind.value, changes["text"])
            embedding = self.embedder.embed_documents([changes["text"]])[0]
        if metadata is not None:
            changes["metadata"] = clean_metadata(metadata)
        if importance is not None:
            if isinstance(importance, bool) or not isinstance(importance, int | float) or not (
                0.0 <= importance <= 1.0
            ):
                raise InvalidInputError("importance must be a number from 0 to 1",
                                        field="importance")
            changes["importance"] = float(importance)
        new = old.model_copy(update=changes)
        if text is not None:
            new = screened(new)  # a caller's new text is screened like an added message
        self.store.apply(
            WriteBatch(
                updates=[(new, embedding)],
                history=[
                    HistoryDraft(memory_id, HistoryEvent.UPDATE, snapshot(old), snapshot(new),
                                 "update", "updated by caller", new.updated_at)
                ],
            )
        )
        return new

    def review(self, memory_id: str, action: str) -> MemoryRecord:
        """Decide on a quarantined memory: `release` it (active again) or `delete` it.

        Quarantine (``memsvc.write.quarantine``) keeps memories from instruction-shaped or
        stuffed text out of every default read until someone looks at them. The decision goes
        to the memory's history and to ``metadata.quarantine.reviewed``; asking again for the
        decision already taken returns the memory unchanged."""
        if action not in REVIEW_ACTIONS:
            raise InvalidInputError(f"action must be one of {sorted(REVIEW_ACTIONS)}",
                                    field="action")
        if self._writer.ceiling < Trust.USER:
            # a key that may only write agent- or tool-level memories must not be able to
            # release what its own writes had quarantined
            raise ForbiddenError("reviewing quarantined memories needs a user-level API key",
                                 field="action")
        old = self.get(memory_id)
        target = REVIEW_ACTIONS[action]
        mark = old.metadata.get(QUARANTINE_KEY)
        if isinstance(mark, dict) and mark.get("reviewed") == action and old.status is target:
            return old
        if old.status is not MemoryStatus.QUARANTINED:
            raise InvalidInputError(f"memory {memory_id} is not quarantined", field="id")
        now = _now()
        metadata = {**old.metadata, QUARANTINE_KEY: {**(mark if isinstance(mark, dict) else {}),
                                                    "reviewed": action}}
        update: dict[str, Any] = {"status": target, "metadata": metadata, "updated_at": now,
                                  "version": old.version + 1}
        if target is MemoryStatus.DELETED:
            update["invalidated_at"] = now
        new = old.model_copy(update=update)
        event = HistoryEvent.RESTORE if target is MemoryStatus.ACTIVE else HistoryEvent.DELETE
        self.store.apply(WriteBatch(updates=[(new, None)], history=[
            HistoryDraft(memory_id, event, snapshot(old), snapshot(new), "review",
                         f"quarantine reviewed: {action}", now)]))
        return new

    def delete(self, memory_id: str, *, hard: bool = False) -> None:
        """Soft delete (status `deleted`, kept in history) or, with `hard`, erase everywhere."""
        old = self.get(memory_id)
        now = _now()
        if hard:
            self.store.apply(
                WriteBatch(
                    hard_deletes=[memory_id],
                    history=[HistoryDraft(memory_id, HistoryEvent.DELETE, None, None, "delete",
                                          "hard delete: content erased", now)],
                )
            )
            return
        if old.status is MemoryStatus.DELETED:
            return
        new = old.model_copy(
            update={"status": MemoryStatus.DELETED, "invalidated_at": now, "updated_at": now}
        )
        self.store.apply(
            WriteBatch(
                updates=[(new, None)],
                history=[HistoryDraft(memory_id, HistoryEvent.DELETE, snapshot(old),
                                      snapshot(new), "delete", "soft delete", now)],
            )
        )

    def delete_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        hard: bool = False,
    ) -> int:
        """Delete every memory of a scope; returns how many. `hard` also erases messages."""
        scope = make_scope(self._own_user(user_id), agent_id, session_id)
        return self.store.delete_scope(scope, hard=hard, at=_now(), actor="delete_all")

    def reset(self) -> None:
        """Erase everything this tenant has stored."""
        self._forbid_bound("reset")
        self.store.reset()


def _role_like(name: str, role: str) -> bool:
    """Whether a speaker name reads as another role than the message's own ("SYSTEM",
    "System Admin", "[assistant]" on a user message; an assistant message may be called
    "Assistant")."""
    words = "".join(c if c.isalnum() else " " for c in name.casefold()).split()
    if not words or words == [role]:
        return False
    return (" ".join(words) in ROLE_NAMES or "".join(words) in ROLE_NAMES
            or words[0] in ("system", "assistant", "developer"))
