"""Offline consolidation: retry failed extractions, merge near-duplicates, summarise over
time, let unused memories fade, and keep each user's profile current.

This module runs the steps; each step is its own module (retry, merge, summaries, decay,
profile) and is found through `STEP_REGISTRY`, in the order the steps run.

Each step works on what the store holds now and writes one small transaction per unit (one
message retried, one cluster merged, one summary node, one chunk of archived memories, one
profile), so a crash loses at most the unit in flight. Every unit is written so that redoing
it on its own result changes nothing: merged duplicates are no longer active, a summary
whose inputs have the same fingerprint is left alone, an archived memory is not active, an
unchanged profile is not rewritten. That is what makes a run idempotent (a second run
reports no change) and resumable (a rerun after a crash finishes the remaining units),
without a checkpoint that could disagree with the data.

Without an LLM everything here is heuristic: summaries are extractive (the sentences that
carry the most frequent content words and names), and the profile is a deterministic
rendering of the user's preferences and facts, byte-identical while they do not change, so
the serving layer can keep it at the start of prompts for KV-cache reuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from memsvc.consolidate.context import ConsolidationConfig, ConsolidationReport, StepContext
from memsvc.consolidate.decay import decay
from memsvc.consolidate.merge import merge_duplicates
from memsvc.consolidate.profile import refresh_profile
from memsvc.consolidate.retry import retry_failed
from memsvc.consolidate.summaries import summarise
from memsvc.embedding.embedder import Embedder
from memsvc.extractors.base import Extractor
from memsvc.model.records import Scope
from memsvc.storage.base import MemoryStore, VisibilityQuery
from memsvc.write.manager import WriteManager

__all__ = [
    "STEPS",
    "STEP_REGISTRY",
    "ConsolidationConfig",
    "ConsolidationReport",
    "Consolidator",
    "Progress",
    "Step",
]

Progress = Callable[[str, int, int], None]  # (step, partitions done, partitions in all)
Step = Callable[[StepContext, Scope], None]  # one step over one (user, agent) partition

# name -> step, in the order a run applies them
STEP_REGISTRY: Mapping[str, Step] = MappingProxyType({
    "retry": retry_failed,
    "merge": merge_duplicates,
    "summaries": summarise,
    "decay": decay,
    "profile": refresh_profile,
})
STEPS: tuple[str, ...] = tuple(STEP_REGISTRY)


class Consolidator:
    """Runs the steps over every (user, agent) partition of a scope."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        *,
        extractor: Extractor | None = None,
        config: ConsolidationConfig | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.extractor = extractor
        self.config = config or ConsolidationConfig()
        self._manager = WriteManager(store)

    def run(
        self,
        scope: Scope,
        *,
        now: datetime,
        steps: Sequence[str] = STEPS,
        progress: Progress | None = None,
    ) -> ConsolidationReport:
        """Apply the chosen steps (in registry order, whatever order they are named in),
        each over every partition before the next step starts."""
        report = ConsolidationReport(steps=list(steps))
        partitions = self._partitions(scope)
        report.scopes = len(partitions)
        ctx = StepContext(
            store=self.store, embedder=self.embedder, extractor=self.extractor,
            config=self.config, manager=self._manager, now=now, report=report,
        )
        for name, step in STEP_REGISTRY.items():
            if name not in steps:
                continue
            for i, part in enumerate(partitions):
                step(ctx, part)
                if progress is not None:
                    progress(name, i + 1, len(partitions))
        return report

    def _partitions(self, scope: Scope) -> list[Scope]:
        """The (user, agent) pairs the scope holds memories for, in a stable order."""
        query = VisibilityQuery(scope=scope, statuses=())
        seen: set[tuple[str | None, str | None]] = set()
        cursor = None
        while True:
            items, _ = self.store.list_memories(query, limit=500, after_id=cursor)
            seen.update((r.scope.user_id, r.scope.agent_id) for r in items)
            if len(items) < 500:
                break
            cursor = items[-1].id
        if scope.agent_id is not None:
            seen = {p for p in seen if p[1] == scope.agent_id}
        ordered = sorted(seen, key=lambda p: (p[0] or "", p[1] or ""))
        return [Scope(user_id=u, agent_id=a) for u, a in ordered]
