"""`Memory`: the embedded SDK, and the one place the three pipelines are wired together.

Every other interface (CLI, REST, MCP, the async twin) is a thin call of these methods with
the same names and arguments, so validation and behaviour are defined once, here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, overload

from memsvc.consolidate import (
    STEPS,
    ConsolidationConfig,
    ConsolidationReport,
    Consolidator,
    Progress,
)
from memsvc.embedding.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.extractors.base import Candidate, Extractor
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.model.chat import ChatEngine, ChatEvent, ChatRequest, ChatResponse, ChatUnavailableError
from memsvc.model.errors import InvalidInputError, NotFoundError
from memsvc.model.filters import parse_filters
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    AddResult,
    HistoryEntry,
    HistoryEvent,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Page,
    Scope,
    ScoredMemory,
    SearchResponse,
    StoredMessage,
    StoreStats,
)
from memsvc.model.settings import Settings, default_embedder_path
from memsvc.model.validation import (
    clean_id,
    clean_limit,
    clean_metadata,
    clean_text,
    make_scope,
    parse_timestamp,
)
from memsvc.retrievers.base import Channel, ChannelQuery
from memsvc.retrievers.bm25 import BM25Channel
from memsvc.retrievers.context import ContextBlock, pack_context
from memsvc.retrievers.graph import GraphChannel
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import RECIPES, SearchPlan, recipe
from memsvc.retrievers.temporal import TemporalChannel
from memsvc.retrievers.vector import VectorChannel
from memsvc.sdk.access_log import AccessLog
from memsvc.storage.base import HistoryDraft, MemoryStore, VisibilityQuery, WriteBatch
from memsvc.storage.factory import open_store
from memsvc.write.extraction import (
    ExtractionOutcome,
    failure_mark,
    mark_messages,
    mark_stored_episodes,
    record_failures,
    run_extractor,
)
from memsvc.write.factory import build_decider, build_extractor
from memsvc.write.manager import Decider, WriteManager, snapshot

ROLES = frozenset({"user", "assistant", "system", "tool"})
MessagesInput = str | bytes | dict[str, Any] | Sequence[dict[str, Any] | str]


def _now() -> datetime:
    return datetime.now(UTC)


class Memory:
    """An embedded memory store: one SQLite file, the local embedder, no server."""

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        tenant: str | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        store: MemoryStore | None = None,
        extractor: Extractor | None = None,
        chat_engine: ChatEngine | None = None,
        decider: Decider | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env(db_path=db_path, tenant=tenant)
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            self.settings.embedder_path or default_embedder_path(),
            threads=self.settings.embed_threads,
            cache_size=self.settings.query_cache_size,
            precision=self.settings.embed_precision,
        )
        self.store: MemoryStore = store or open_store(
            self.settings.db_path, tenant=self.settings.tenant, embedding_dim=self.embedder.dim
        )
        # runs on add(infer=True); unless given, settings.extractor's (rules, or llm)
        self.extractor: Extractor | None = (
            extractor if extractor is not None else build_extractor(self.settings))
        # answers `chat` (memsvc.serving.chat.ChatService); None: no LLM, chat is refused
        self.chat_engine = chat_engine
        self._episodes = EpisodeExtractor()
        self._manager = WriteManager(
            self.store, decider=decider if decider is not None else build_decider(self.settings),
            consult_above=self.settings.decider_consult_above)
        channels: dict[str, Channel] = {
            "vector": VectorChannel(self.store),
            "bm25": BM25Channel(self.store),
            "graph": GraphChannel(self.store),
            "temporal": TemporalChannel(self.store),
        }
        from memsvc.embedding.embedder import query_embedding  # a query cache per tenant

        embed_query = query_embedding(self.embedder, self.store.tenant)
        self.retriever = HybridRetriever(channels, embed_query)
        # searches' hits are counted here and written in batches, off the read path
        self._access = AccessLog(self.store)
        self.default_plan = recipe("balanced", self.settings)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.retriever.close()
        self._access.close()
        self.store.close()

    # -- write ----------------------------------------------------------------------------

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
        scope = make_scope(user_id, agent_id, session_id)
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
        embeddings = self.embedder.embed_documents([c.text for c, _, _ in candidates])
        batch = WriteBatch(messages=stored)
        changes = self._manager.plan(
            candidates, embeddings, scope, now=now, actor="add", batch=batch
        )
        if self.extractor is not None:
            record_failures(batch, extracted, self.extractor.name, "add", now)
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
        scope = make_scope(user_id, agent_id, session_id)
        wanted = {clean_id(m, field="message_ids") for m in message_ids}
        stored = [m for m in self.store.messages(scope, limit=100_000) if m.id in wanted]
        if self.extractor is None or not stored:
            return AddResult(message_ids=[m.id for m in stored])
        extracted = run_extractor(self.extractor, stored)
        embeddings = self.embedder.embed_documents([c.text for c, _, _ in extracted.candidates])
        batch = WriteBatch()
        now = _now()
        changes = self._manager.plan(
            extracted.candidates, embeddings, scope, now=now, actor="add", batch=batch
        )
        # what failed is marked on the episodes, for consolidation's retry step, as add() does
        troubled = [m for m in stored if failure_mark(m.id, extracted, self.extractor.name)]
        mark_stored_episodes(
            batch, self._episodes_of(scope, troubled), extracted, self.extractor.name, "add", now
        )
        self.store.apply(batch)
        return AddResult(message_ids=[m.id for m in stored], results=changes)

    def _episodes_of(
        self, scope: Scope, messages: Sequence[StoredMessage]
    ) -> dict[str, MemoryRecord]:
        """The stored episode of each message (found by its content hash), by message id."""
        found: dict[str, MemoryRecord] = {}
        visibility = VisibilityQuery(scope=scope, kinds=(MemoryKind.EPISODE.value,))
        for message, candidate in zip(messages, self._episodes.extract(messages), strict=True):
            episode = self.store.find_by_hash(
                visibility, content_hash(candidate.kind.value, candidate.text)
            )
            if episode is not None:
                found[message.id] = episode
        return found

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
            if role not in ROLES:
                raise InvalidInputError(
                    f"{where}.role must be one of {sorted(ROLES)}", field=f"{where}.role"
                )
            out.append(
                {
                    "role": role,
                    "content": clean_text(
                        raw.get("content"), max_bytes=self.settings.max_text_bytes,
                        field=f"{where}.content",
                    ),
                    "name": clean_id(raw.get("name"), field=f"{where}.name"),
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
        """Write a new version of a memory; the old one is kept in its history."""
        old = self.get(memory_id)
        if old.status is MemoryStatus.DELETED:
            raise InvalidInputError(f"memory {memory_id} is deleted", field="id")
        if text is None and metadata is None and importance is None:
            raise InvalidInputError("nothing to update: give text, metadata or importance")
        changes: dict[str, Any] = {"updated_at": _now(), "version": old.version + 1}
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
        scope = make_scope(user_id, agent_id, session_id)
        return self.store.delete_scope(scope, hard=hard, at=_now(), actor="delete_all")

    def reset(self) -> None:
        """Erase everything this tenant has stored."""
        self.store.reset()

    # -- manage ---------------------------------------------------------------------------

    def consolidate(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        now: datetime | str | float | None = None,
        steps: Sequence[str] | None = None,
        config: ConsolidationConfig | None = None,
        progress: Progress | None = None,
    ) -> ConsolidationReport:
        """Offline upkeep of a scope (the whole tenant when none is named): retry failed
        extractions, merge near-duplicates, summarise sessions → days → months, archive what
        has faded, refresh each user's profile. Idempotent and safe to rerun after a crash;
        the report lists every memory it wrote."""
        scope = make_scope(user_id, agent_id, None, required=False)
        when = parse_timestamp(now, field="now") or _now()
        chosen = list(STEPS if steps is None else ([steps] if isinstance(steps, str) else steps))
        unknown = [s for s in chosen if s not in STEPS]
        if unknown or not chosen:
            raise InvalidInputError(f"steps must be among {list(STEPS)}", field="steps")
        if config is not None and not isinstance(config, ConsolidationConfig):
            raise InvalidInputError("config must be a ConsolidationConfig", field="config")
        self._access.flush()  # decay reads the access counts
        consolidator = Consolidator(
            self.store, self.embedder, extractor=self.extractor, config=config
        )
        return consolidator.run(scope, now=when, steps=chosen, progress=progress)

    # -- read -----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 10,
        as_of: datetime | str | float | None = None,
        plan: SearchPlan | str | None = None,
        now: datetime | str | float | None = None,
        include_archived: bool = False,
    ) -> SearchResponse:
        """The few memories of a scope that best answer `query`, with per-channel scores.

        `now` is the question's own date, against which "last May" or "yesterday" in the
        query are resolved (default: `as_of`, else the current time); `include_archived`
        also searches memories that consolidation archived as faded.
        """
        started = time.perf_counter()
        text = clean_text(query, max_bytes=self.settings.max_text_bytes, field="query")
        visibility = self._visibility(
            user_id, agent_id, session_id, filters, kinds, as_of,
            include_archived=include_archived,
        )
        reference = parse_timestamp(now, field="now") or visibility.as_of
        search_plan = self._resolve_plan(plan).with_limit(clean_limit(limit))
        retrieval = self.retriever.retrieve(
            ChannelQuery(text, visibility, now=reference), search_plan
        )
        fetch_started = time.perf_counter()
        top = retrieval.hits[: search_plan.limit]
        top_ids = [h.memory_id for h in top]
        records = self.store.get_many(top_ids)
        results = [
            ScoredMemory(
                memory=records[h.memory_id],
                score=h.score,
                channel_scores=h.channel_scores,
                channel_ranks=h.channel_ranks,
            )
            for h in top
            if h.memory_id in records
        ]
        if search_plan.track_access and results:
            self._access.record([r.memory.id for r in results], _now())
        timing = dict(retrieval.timing_ms)
        timing["fetch"] = (time.perf_counter() - fetch_started) * 1000
        timing["total"] = (time.perf_counter() - started) * 1000
        return SearchResponse(
            query=text, results=results, plan=search_plan.describe(), timing_ms=timing
        )

    def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 50,
        max_tokens: int = 1000,
        as_of: datetime | str | float | None = None,
        plan: SearchPlan | str | None = None,
        now: datetime | str | float | None = None,
        include_archived: bool = False,
    ) -> ContextBlock:
        """`search`, then the best hits packed into one prompt block of at most `max_tokens`."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not (
            16 <= max_tokens <= 100_000
        ):
            raise InvalidInputError("max_tokens must be an integer from 16 to 100000",
                                    field="max_tokens")
        response = self.search(
            query, user_id=user_id, agent_id=agent_id, session_id=session_id, filters=filters,
            kinds=kinds, limit=limit, as_of=as_of, plan=plan, now=now,
            include_archived=include_archived,
        )
        return pack_context(response.results, max_tokens=max_tokens)

    @overload
    def chat(self, message: str, *, user_id: str | None = ..., agent_id: str | None = ...,
             session_id: str | None = ..., limit: int = ..., max_tokens: int = ...,
             temperature: float = ..., infer: bool = ...,
             stream: Literal[False] = ...) -> ChatResponse: ...

    @overload
    def chat(self, message: str, *, user_id: str | None = ..., agent_id: str | None = ...,
             session_id: str | None = ..., limit: int = ..., max_tokens: int = ...,
             temperature: float = ..., infer: bool = ...,
             stream: Literal[True]) -> Iterator[ChatEvent]: ...

    def chat(
        self,
        message: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 8,
        max_tokens: int = 256,
        temperature: float = 0.0,
        infer: bool = True,
        stream: bool = False,
    ) -> ChatResponse | Iterator[ChatEvent]:
        """Answer `message` with memory through the configured LLM (`chat_engine`): retrieve,
        store the message first, stream the answer, store the reply in the session.

        Returns a `ChatResponse`, or with `stream` an iterator of `ChatEvent` (deltas, then
        `done`). Raises `ChatUnavailableError` when no engine is configured or the model
        fails; the message is stored by then (except when no engine is configured).
        """
        request = ChatRequest.build(
            message, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
            max_tokens=max_tokens, temperature=temperature, infer=infer,
            max_text_bytes=self.settings.max_text_bytes,
        )
        if self.chat_engine is None:
            raise ChatUnavailableError(
                "no LLM configured: pass Memory(chat_engine=ChatService.from_settings(...)) "
                "from memsvc.serving.chat (start a local one with `memsvc llm start`)")
        if stream:
            return self.chat_engine.stream(self, request)
        return self.chat_engine.chat(self, request)

    def _resolve_plan(self, plan: SearchPlan | str | None) -> SearchPlan:
        if plan is None:
            return self.default_plan
        if isinstance(plan, str):
            if plan not in RECIPES:
                raise InvalidInputError(f"unknown plan {plan!r}; use one of {sorted(RECIPES)}",
                                        field="plan")
            return recipe(plan, self.settings)
        if isinstance(plan, SearchPlan):
            unknown = set(plan.channels) - set(self.retriever.channels)
            if unknown or not plan.channels:
                raise InvalidInputError(
                    f"plan channels must be among {sorted(self.retriever.channels)}", field="plan"
                )
            return plan
        raise InvalidInputError("plan must be a SearchPlan or a recipe name", field="plan")

    def _visibility(
        self,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        filters: dict[str, Any] | None,
        kinds: Sequence[str] | None,
        as_of: datetime | str | float | None,
        include_inactive: bool = False,
        *,
        include_archived: bool = False,
    ) -> VisibilityQuery:
        scope = make_scope(user_id, agent_id, session_id)
        when = parse_timestamp(as_of, field="as_of")
        if include_inactive:
            statuses: tuple[str, ...] = ()
        elif when is not None:
            statuses = (MemoryStatus.ACTIVE.value, MemoryStatus.SUPERSEDED.value)
        else:
            statuses = (MemoryStatus.ACTIVE.value,)
        if not isinstance(include_archived, bool):
            raise InvalidInputError("include_archived must be true or false",
                                    field="include_archived")
        if include_archived and statuses:
            statuses = (*statuses, MemoryStatus.ARCHIVED.value)
        return VisibilityQuery(
            scope=scope,
            kinds=self._clean_kinds(kinds),
            statuses=statuses,
            filters=parse_filters(filters),
            as_of=when,
        )

    @staticmethod
    def _clean_kinds(kinds: Sequence[str] | None) -> tuple[str, ...] | None:
        if kinds is None:
            return None
        if isinstance(kinds, str):
            kinds = [kinds]
        allowed = {k.value for k in MemoryKind}
        bad = [k for k in kinds if k not in allowed]
        if bad or not kinds:
            raise InvalidInputError(f"kinds must be among {sorted(allowed)}", field="kinds")
        return tuple(kinds)

    def get(self, memory_id: str) -> MemoryRecord:
        if not isinstance(memory_id, str) or not memory_id.strip():
            raise InvalidInputError("memory id must be a non-empty string", field="id")
        self._access.flush()
        record = self.store.get(memory_id.strip())
        if record is None:
            raise NotFoundError(f"no memory with id {memory_id!r}", field="id")
        return record

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        include_inactive: bool = False,
        include_archived: bool = False,
    ) -> Page:
        """One page of a scope's memories, oldest first; pass `next_cursor` for the next."""
        visibility = self._visibility(
            user_id, agent_id, session_id, filters, kinds, None, include_inactive,
            include_archived=include_archived,
        )
        self._access.flush()
        items, total = self.store.list_memories(
            visibility, limit=clean_limit(limit), after_id=clean_id(cursor, field="cursor")
        )
        next_cursor = items[-1].id if len(items) == limit else None
        return Page(items=items, next_cursor=next_cursor, total=total)

    def history(self, memory_id: str) -> list[HistoryEntry]:
        """Every change of a memory, oldest first."""
        if not isinstance(memory_id, str) or not memory_id.strip():
            raise InvalidInputError("memory id must be a non-empty string", field="id")
        entries = self.store.history(memory_id.strip())
        if not entries and self.store.get(memory_id.strip()) is None:
            raise NotFoundError(f"no memory with id {memory_id!r}", field="id")
        return entries

    def messages(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 1000,
    ) -> list[StoredMessage]:
        """The raw messages of a scope, in time order (the source of truth)."""
        return self.store.messages(
            make_scope(user_id, agent_id, session_id), limit=clean_limit(limit, maximum=100_000)
        )

    def stats(self) -> StoreStats:
        return self.store.stats()

    # -- import / export ------------------------------------------------------------------

    def export(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        include_inactive: bool = True,
    ) -> Iterator[MemoryRecord]:
        """Every memory of a scope (or of the whole tenant when no scope is named)."""
        scope = make_scope(user_id, agent_id, session_id, required=False)
        visibility = VisibilityQuery(
            scope=scope, statuses=() if include_inactive else (MemoryStatus.ACTIVE.value,)
        )
        self._access.flush()
        cursor = None
        while True:
            items, _ = self.store.list_memories(visibility, limit=500, after_id=cursor)
            yield from items
            if len(items) < 500:
                return
            cursor = items[-1].id

    def import_records(self, records: Iterable[dict[str, Any] | MemoryRecord]) -> dict[str, int]:
        """Load exported memories; ids already present are skipped, vectors are recomputed."""
        parsed: list[MemoryRecord] = []
        for i, raw in enumerate(records):
            try:
                record = raw if isinstance(raw, MemoryRecord) else MemoryRecord.model_validate(raw)
            except ValueError as exc:
                raise InvalidInputError(
                    f"record {i} is not a memory: {exc}", field=f"[{i}]"
                ) from exc
            if record.scope.is_empty():
                raise InvalidInputError(f"record {i} has no scope", field=f"[{i}].scope")
            clean_text(record.text, max_bytes=self.settings.max_text_bytes, field=f"[{i}].text")
            parsed.append(record)
        existing = self.store.get_many([r.id for r in parsed])
        fresh = [r for r in parsed if r.id not in existing]
        fresh = list({r.id: r for r in fresh}.values())
        embeddings = self.embedder.embed_documents([r.text for r in fresh])
        now = _now()
        self.store.apply(
            WriteBatch(
                inserts=list(zip(fresh, embeddings, strict=True)),
                history=[
                    HistoryDraft(r.id, HistoryEvent.ADD, None, snapshot(r), "import",
                                 "imported", now)
                    for r in fresh
                ],
            )
        )
        return {"imported": len(fresh), "skipped": len(parsed) - len(fresh)}


