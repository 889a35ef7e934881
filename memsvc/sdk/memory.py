"""`Memory`: the embedded SDK, and the one place the three pipelines are wired together.

Every other interface (CLI, REST, MCP, the async twin, the remote clients) is a thin call of
these methods with the same names and arguments, so validation and behaviour are defined
once, here. The methods live in one part per job (sdk/writes.py, sdk/search.py, sdk/io.py);
their signatures are declared in sdk/operations.py and checked against it by a test.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, overload

from memsvc.consolidate import (
    STEPS,
    ConsolidationConfig,
    ConsolidationReport,
    Consolidator,
    Progress,
)
from memsvc.embedding.embedder import (
    Embedder,
    SentenceTransformerEmbedder,
    queries_embedding,
    query_embedding,
)
from memsvc.extractors.base import Extractor
from memsvc.extractors.episode import EpisodeExtractor
from memsvc.llm.client import LLMClient
from memsvc.model.chat import ChatEvent, ChatRequest, ChatResponse, ChatUnavailableError
from memsvc.model.errors import InvalidInputError
from memsvc.model.settings import Settings, cache_root, default_embedder_path
from memsvc.model.trust import LOCAL
from memsvc.model.validation import make_scope, parse_timestamp
from memsvc.retrievers.base import Channel
from memsvc.retrievers.bm25 import BM25Channel
from memsvc.retrievers.graph import GraphChannel
from memsvc.retrievers.hybrid import HybridRetriever
from memsvc.retrievers.plan import recipe
from memsvc.retrievers.temporal import TemporalChannel
from memsvc.retrievers.topic import TopicChannel
from memsvc.retrievers.vector import VectorChannel
from memsvc.sdk.access_log import AccessLog
from memsvc.sdk.chat_engine import ChatEngine
from memsvc.sdk.io import ImportExport
from memsvc.sdk.operations import MessagesInput
from memsvc.sdk.parts import _now
from memsvc.sdk.writes import ROLES, Writes
from memsvc.storage.base import MemoryStore
from memsvc.storage.factory import open_store
from memsvc.write.factory import build_decider, build_extractor, build_llm_client
from memsvc.write.manager import Decider, WriteManager

__all__ = ["ROLES", "Memory", "MessagesInput"]


class Memory(Writes, ImportExport):
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
        decider: Decider | None = None,
        chat_engine: ChatEngine | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env(db_path=db_path, tenant=tenant)
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            self.settings.embedder_path or default_embedder_path(),
            threads=self.settings.embed_threads,
            cache_size=self.settings.query_cache_size,
            cache_dir=cache_root(self.settings),
            precision=self.settings.embed_precision,
            freeze_gc=self.settings.gc_freeze,
        )
        self.store: MemoryStore = store or open_store(
            self.settings.db_path, tenant=self.settings.tenant, embedding_dim=self.embedder.dim
        )
        # One LLM client for whatever this Memory builds from settings (the LLM extractor
        # and decider share it); closed with it. Given parts bring their own and keep them.
        self._llm: LLMClient | None = None
        if (extractor is None and self.settings.extractor == "llm") or (
                decider is None and self.settings.decider == "llm"):
            self._llm = build_llm_client(self.settings)
        # runs on add(infer=True); unless given, settings.extractor's (rules, or llm)
        self.extractor: Extractor | None = (
            extractor if extractor is not None else build_extractor(self.settings, self._llm))
        # answers `chat` (memsvc.serving.chat.ChatService); None: no LLM, chat is refused
        self.chat_engine = chat_engine
        self._writer = LOCAL  # the server's per-request views act as their key (acting_as)
        self._episodes = EpisodeExtractor()
        self._manager = WriteManager(
            self.store,
            decider=decider if decider is not None else build_decider(self.settings, self._llm),
            consult_above=self.settings.decider_consult_above)
        graph = GraphChannel(self.store)
        channels: dict[str, Channel] = {
            "vector": VectorChannel(self.store),
            "bm25": BM25Channel(self.store),
            "graph": graph,
            "temporal": TemporalChannel(self.store),
            "topic": TopicChannel(self.store, graph),
        }
        # a query cache per tenant: one tenant cannot time another's searches
        embed_query = query_embedding(self.embedder, self.store.tenant)
        self.retriever = HybridRetriever(
            channels, embed_query,
            embed_queries=queries_embedding(self.embedder, self.store.tenant))
        # searches' hits are counted here and written in batches, off the read path
        self._access = AccessLog(self.store)
        self.default_plan = recipe("balanced", self.settings)

    @property
    def decider(self) -> Decider | None:
        """The write manager's delegate (None: the rules decide alone); a server's tenants
        share the base's."""
        return self._manager.decider

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.retriever.close()
        self._access.close()
        self.store.close()
        if self._llm is not None:
            self._llm.close()

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
        if user_id is None:
            self._forbid_bound("consolidate without a user_id")
        scope = make_scope(self._own_user(user_id), agent_id, None, required=False)
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

