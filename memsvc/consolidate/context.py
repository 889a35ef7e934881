"""What every consolidation step shares: the run's knobs, its report, and one typed context.

A step is a function ``(StepContext, partition) -> None``. A partition is one exact
(user, agent) pair, "none" included, so a step only ever merges, summarises or retries a
memory beside memories of its own owner. The context carries the store, the models, the
run's clock and the report the step adds to, and reads the partition for the step. The
config and the report live here, not in the runner, so that steps do not import the module
that imports them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Extractor
from memsvc.model.errors import InvalidInputError
from memsvc.model.filters import AllOf, Condition, FilterNode
from memsvc.model.records import (
    MemoryChange,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Scope,
    StoredMessage,
)
from memsvc.storage.base import MemoryStore, VisibilityQuery
from memsvc.write.manager import WriteManager

ACTOR = "consolidate"
# knob -> (lowest, highest, whole number?) that a run accepts
_CONFIG_RANGES: dict[str, tuple[float, float, bool]] = {
    "merge_threshold": (0.0, 1.0, False),
    "half_life_days": (1e-6, 1e6, False),
    "archive_below": (0.0, 1.0, False),
    "summary_sentences": (1, 1000, True),
    "profile_lines": (1, 10_000, True),
    "max_retry_attempts": (0, 1000, True),
}
# The memories extracted from turns: what merge folds and decay archives.
DERIVED_KINDS = (
    MemoryKind.FACT.value,
    MemoryKind.PREFERENCE.value,
    MemoryKind.EVENT.value,
    MemoryKind.PROCEDURE.value,
)


@dataclass(frozen=True)
class ConsolidationConfig:
    """The knobs of a run; the defaults are conservative (merge only near-identical text)."""

    merge_threshold: float = 0.9  # cosine of two memories' vectors (and the word checks below)
    half_life_days: float = 30.0  # an unused memory of importance 0.5 halves its strength
    archive_below: float = 0.05  # strength under which an active memory is archived
    summary_sentences: int = 5
    profile_lines: int = 30  # per section
    max_retry_attempts: int = 5

    def __post_init__(self) -> None:
        """Refuse what no run can use (a zero half-life divides by zero, NaN compares false
        with everything), as a typed error naming the knob; whole floats become ints (a
        JSON body carries every number as a float)."""
        for name, (low, high, whole) in _CONFIG_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and low <= value <= high
            ) or (whole and value != int(value)):
                kind = "a whole number" if whole else "a number"
                raise InvalidInputError(f"config.{name} must be {kind} from {low} to {high}",
                                        field=f"config.{name}")
            object.__setattr__(self, name, int(value) if whole else float(value))


class ConsolidationReport(BaseModel):
    """What one run changed, step by step, and every memory it wrote."""

    steps: list[str] = Field(default_factory=list)
    scopes: int = 0
    retried: int = 0
    retry_failures: int = 0
    merged: int = 0
    summaries_added: int = 0
    summaries_updated: int = 0
    archived: int = 0
    restored: int = 0
    profiles_added: int = 0
    profiles_updated: int = 0
    changes: list[MemoryChange] = Field(default_factory=list)

    @property
    def changed(self) -> int:
        """How many memories this run wrote (0 on a run that found nothing to do)."""
        return len(self.changes)


@dataclass
class StepContext:
    """One run's shared state; `report` is the only part a step changes."""

    store: MemoryStore
    embedder: Embedder
    extractor: Extractor | None
    config: ConsolidationConfig
    manager: WriteManager
    now: datetime
    report: ConsolidationReport

    def load(
        self, part: Scope, *, kinds: Iterable[str] | None = None,
        statuses: tuple[str, ...] = (MemoryStatus.ACTIVE.value,),
    ) -> list[MemoryRecord]:
        """The memories of exactly this (user, agent) owner pair, across its sessions."""
        query = VisibilityQuery(
            scope=part, kinds=tuple(kinds) if kinds else None, statuses=statuses,
            filters=exact_pair(part),
        )
        out: list[MemoryRecord] = []
        cursor = None
        while True:
            items, _ = self.store.list_memories(query, limit=500, after_id=cursor)
            out.extend(items)
            if len(items) < 500:
                return out
            cursor = items[-1].id

    def messages(self, part: Scope) -> list[StoredMessage]:
        """The turns of exactly this (user, agent) owner pair, in time order."""
        return [
            m for m in self.store.messages(part, limit=1_000_000)
            if (m.scope.user_id, m.scope.agent_id) == (part.user_id, part.agent_id)
        ]


def exact_pair(part: Scope) -> FilterNode | None:
    """The filter that makes a read of a partition exact.

    A store reads a scope's missing user or agent as "any": the partition (None, "bot") would
    see every user of the bot, and ("alice", None) every agent of Alice. A partition is one
    (user, agent) pair, "none" included, so that no step ever mixes two owners' memories.
    """
    missing = tuple(
        Condition(name, "eq", None)
        for name in ("user_id", "agent_id") if getattr(part, name) is None
    )
    if not missing:
        return None
    return missing[0] if len(missing) == 1 else AllOf(missing)
