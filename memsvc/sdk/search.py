"""Reading a store: `search`, `context` and the listings (one part of `Memory`).

Every read goes through `_visibility`, the one place that turns scope, kinds, filters, time
and status flags into the query the storage layer runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from memsvc.model.errors import InvalidInputError, NotFoundError
from memsvc.model.filters import parse_filters
from memsvc.model.records import (
    HistoryEntry,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Page,
    ScoredMemory,
    SearchResponse,
    StoredMessage,
    StoreStats,
)
from memsvc.model.trust import DEFAULT_MIN_TRUST, parse_trust
from memsvc.model.validation import clean_id, clean_limit, clean_text, make_scope, parse_timestamp
from memsvc.retrievers.base import ChannelQuery
from memsvc.retrievers.context import ContextBlock, pack_context
from memsvc.retrievers.fusion import FusedHit
from memsvc.retrievers.grouping import SourceGroups
from memsvc.retrievers.importance import by_importance
from memsvc.retrievers.plan import RECIPES, SearchPlan, recipe
from memsvc.retrievers.validity import ended, expired
from memsvc.sdk.parts import MemoryParts, _now
from memsvc.storage.base import SourceKey, VisibilityQuery

# A grouped search first reads this many candidates per requested hit (some fold into others).
GROUP_FETCH_FACTOR = 2


class Reads(MemoryParts):
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
        group: bool = True,
        min_trust: str | int = "agent",
    ) -> SearchResponse:
        """The few memories of a scope that best answer `query`, with per-channel scores.

        `now` is the question's own date, against which "last May" or "yesterday" in the
        query are resolved (default: `as_of`, else the current time); `include_archived`
        also searches memories that consolidation archived as faded. With `group` (the
        default) memories derived from the same source messages are one hit, the best of
        them leading and the others in its `related`; `limit` counts those hits. `min_trust`
        ("user", "agent", "external") leaves out less trusted memories, inside every channel:
        by default what came from tools and documents is not served unless asked for.
        """
        started = time.perf_counter()
        text = clean_text(query, max_bytes=self.settings.max_text_bytes, field="query")
        visibility = self._visibility(
            user_id, agent_id, session_id, filters, kinds, as_of,
            include_archived=include_archived, min_trust=min_trust,
        )
        reference = parse_timestamp(now, field="now") or visibility.as_of
        search_plan = self._resolve_plan(plan).with_limit(clean_limit(limit))
        retrieval = self.retriever.retrieve(
            ChannelQuery(text, visibility, now=reference), search_plan
        )
        fetch_started = time.perf_counter()
        # Without `as_of` a search answers about the present (or the question's `now`):
        # facts whose validity has ended are not current any more.
        current_at = None if visibility.as_of is not None else (reference or _now())
        results = self._select(retrieval.hits, search_plan.limit, group=_flag(group, "group"),
                               current_at=current_at)
        if search_plan.track_access and results:
            self._access.record([m.memory.id for r in results for m in (r, *r.related)],
                                _now())
        timing = dict(retrieval.timing_ms)
        timing["fetch"] = (time.perf_counter() - fetch_started) * 1000
        timing["total"] = (time.perf_counter() - started) * 1000
        return SearchResponse(
            query=text, results=results, plan=search_plan.describe(), timing_ms=timing
        )

    def _select(self, hits: Sequence[FusedHit], limit: int, *, group: bool,
                current_at: datetime | None) -> list[ScoredMemory]:
        """The first `limit` hits (groups, with `group`) as records, fetched in batches: a
        grouped search reads a little past `limit`, since some hits fold into others. With
        `current_at`, memories expired by then are passed over (`retrievers.validity`).
        Within each batch, hits are re-ranked by importance (`retrievers.importance`): a
        low-importance memory moves down its batch, never past it.

        The hits are placed first on their `SourceKey`s (four unchecked columns), and only
        the records served are fetched and checked: a grouped search would otherwise check
        and build twice the records it returns. Should a served record fail its check, or
        differ from its key (changed in between), the selection is made again on checked
        records alone (`_select_checked`), which is what it always returns."""
        chunks = _chunks(hits, limit, group)
        groups = SourceGroups(limit, enabled=group)
        keys: dict[str, SourceKey] = {}
        placed: list[tuple[FusedHit, list[FusedHit]]] = []
        for chunk in chunks:
            if groups.full:
                break
            keys.update(self.store.source_keys([h.memory_id for h in chunk]))
            importance = {h.memory_id: keys[h.memory_id].importance
                          for h in chunk if h.memory_id in keys}
            for h in by_importance(chunk, importance):
                key = keys.get(h.memory_id)
                if key is None or (current_at and ended(key.kind, key.valid_to, current_at)):
                    continue
                index = groups.place(key.source_message_ids, key.kind)
                if index is None:
                    continue
                if index < len(placed):
                    placed[index][1].append(h)
                else:
                    placed.append((h, []))
        served = [h.memory_id for lead, related in placed for h in (lead, *related)]
        records = self.store.get_many(served) if served else {}
        if any(_key_of(records.get(i)) != keys[i] for i in served):
            return self._select_checked(hits, limit, group=group, current_at=current_at)

        def scored(h: FusedHit) -> ScoredMemory:
            return ScoredMemory(memory=records[h.memory_id], score=h.score,
                                channel_scores=h.channel_scores,
                                channel_ranks=h.channel_ranks)

        results = []
        for lead, related in placed:
            hit = scored(lead)
            hit.related.extend(scored(h) for h in related)
            results.append(hit)
        return results

    def _select_checked(self, hits: Sequence[FusedHit], limit: int, *, group: bool,
                        current_at: datetime | None) -> list[ScoredMemory]:
        """`_select` on checked records alone: every batch fetched whole."""
        groups = SourceGroups(limit, enabled=group)
        for chunk in _chunks(hits, limit, group):
            if groups.full:
                break
            records = self.store.get_many([h.memory_id for h in chunk])
            importance = {i: record.importance for i, record in records.items()}
            for h in by_importance(chunk, importance):
                record = records.get(h.memory_id)
                if record is not None and not (current_at and expired(record, current_at)):
                    groups.offer(ScoredMemory(memory=record, score=h.score,
                                              channel_scores=h.channel_scores,
                                              channel_ranks=h.channel_ranks))
        return groups.results()

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
        group: bool = True,
        min_trust: str | int = "agent",
    ) -> ContextBlock:
        """`search`, then the best hits packed into one prompt block of at most `max_tokens`.

        Grouped (the default), each hit is packed once, by its leading memory: a fact and
        the episode it was extracted from never both take up the budget."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not (
            16 <= max_tokens <= 100_000
        ):
            raise InvalidInputError("max_tokens must be an integer from 16 to 100000",
                                    field="max_tokens")
        response = self.search(
            query, user_id=user_id, agent_id=agent_id, session_id=session_id, filters=filters,
            kinds=kinds, limit=limit, as_of=as_of, plan=plan, now=now,
            include_archived=include_archived, group=group, min_trust=min_trust,
        )
        return pack_context(response.results, max_tokens=max_tokens)

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
            _check_plan(plan)
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
        min_trust: str | int = DEFAULT_MIN_TRUST.name.lower(),
    ) -> VisibilityQuery:
        scope = make_scope(self._own_user(user_id), agent_id, session_id)
        when = parse_timestamp(as_of, field="as_of")
        if include_inactive:
            statuses: tuple[str, ...] = ()
        elif when is not None:
            statuses = (MemoryStatus.ACTIVE.value, MemoryStatus.SUPERSEDED.value)
        else:
            statuses = (MemoryStatus.ACTIVE.value,)
        if _flag(include_archived, "include_archived") and statuses:
            statuses = (*statuses, MemoryStatus.ARCHIVED.value)
        return VisibilityQuery(
            scope=scope,
            kinds=self._clean_kinds(kinds),
            statuses=statuses,
            filters=parse_filters(filters),
            as_of=when,
            min_trust=int(parse_trust(min_trust)),
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
        """One memory by id, whatever its status (raises `NotFoundError`)."""
        ident = _memory_id(memory_id)
        self._access.flush()
        record = self.store.get(ident)
        if record is None:
            raise NotFoundError(f"no memory with id {memory_id!r}", field="id")
        return self._check_owner(record)

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
        status: str | None = None,
        min_trust: str | int = "agent",
    ) -> Page:
        """One page of a scope's memories, oldest first; pass `next_cursor` for the next.

        `status` lists only the memories of that status (e.g. ``"quarantined"``, for review);
        it overrides `include_inactive` and `include_archived`. `min_trust` as for `search`
        ("external" lists everything)."""
        visibility = self._visibility(
            user_id, agent_id, session_id, filters, kinds, None, include_inactive,
            include_archived=include_archived, min_trust=min_trust,
        )
        if status is not None:
            visibility = replace(visibility, statuses=(_status(status),))
        self._access.flush()
        items, total = self.store.list_memories(
            visibility, limit=clean_limit(limit), after_id=clean_id(cursor, field="cursor")
        )
        next_cursor = items[-1].id if len(items) == limit else None
        return Page(items=items, next_cursor=next_cursor, total=total)

    def history(self, memory_id: str) -> list[HistoryEntry]:
        """Every change of a memory, oldest first."""
        ident = _memory_id(memory_id)
        if self._writer.user_id is not None:
            self.get(ident)  # a bound key: its own user's memories only
        entries = self.store.history(ident)
        if not entries and self.store.get(ident) is None:
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
            make_scope(self._own_user(user_id), agent_id, session_id),
            limit=clean_limit(limit, maximum=100_000),
        )

    def stats(self) -> StoreStats:
        """Counts by kind and status, index sizes, and the store's file and size.

        Tenant-wide, so not for a key bound to one user: the counts would tell it how much
        the other users of its tenant have stored."""
        self._forbid_bound("stats")
        return self.store.stats()


def _chunks(hits: Sequence[FusedHit], limit: int, group: bool) -> Iterator[Sequence[FusedHit]]:
    """The batches a selection reads hits in: `limit` of them, the first `GROUP_FETCH_FACTOR`
    times that when grouping (some hits fold into others)."""
    batch = limit * GROUP_FETCH_FACTOR if group else limit
    position = 0
    while position < len(hits):
        yield hits[position: position + batch]
        position += batch
        batch = limit


def _key_of(record: MemoryRecord | None) -> SourceKey | None:
    """A checked record's `SourceKey`, to compare with the unchecked one."""
    if record is None:
        return None
    return SourceKey(record.kind, record.valid_to, tuple(record.provenance.source_message_ids),
                     record.importance)


def _memory_id(memory_id: object) -> str:
    """A memory id as the store may be asked for it: a non-empty, valid-Unicode string
    without control characters (a lone surrogate used to reach the driver and become a 500)."""
    if not isinstance(memory_id, str) or not memory_id.strip():
        raise InvalidInputError("memory id must be a non-empty string", field="id")
    ident = clean_id(memory_id.strip(), field="id")
    assert ident is not None
    return ident


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{field} must be true or false", field=field)
    return value


def _check_plan(plan: SearchPlan) -> None:
    """Numbers fusion can use: a NaN or infinite weight would rank every hit NaN."""
    for name, spec in plan.channels.items():
        weight, k = spec.weight, spec.k
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            math.isfinite(weight)
        ):
            raise InvalidInputError(f"plan channel {name}: weight must be a finite number",
                                    field="plan")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise InvalidInputError(f"plan channel {name}: k must be an integer from 1 to 1000",
                                    field="plan")
    if isinstance(plan.rrf_k, bool) or not isinstance(plan.rrf_k, int) or not (
        1 <= plan.rrf_k <= 1000
    ):
        raise InvalidInputError("plan rrf_k must be an integer from 1 to 1000", field="plan")


def _status(value: Any) -> str:
    """A memory status named by a caller, checked against `MemoryStatus`."""
    allowed = [s.value for s in MemoryStatus]
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"status must be one of {allowed}", field="status")
    return value
