"""The parts every retrieval eval shares: a fresh store, timed writes, timed searches.

Each eval loader only knows its file format and its gold units; opening a throw-away store,
warming the embedder (so the first timed call does not pay for loading the model) and turning
a search into "what does each returned memory cover" is done the same way for all of them,
through the public API only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memsvc import RECIPES, Memory, SearchPlan, SearchResponse
from memsvc.evals.metrics import units_of

MemoryFactory = Callable[[Path], Memory]


def default_memory(db_path: Path) -> Memory:
    """The embedded default (settings from the environment) on a throw-away database file."""
    return Memory(db_path=db_path)


def warm_up(memory: Memory) -> None:
    """Load the model and touch both embedding paths before anything is timed."""
    memory.embedder.embed_documents(["warm-up sentence for the document path"])
    memory.embedder.embed_query("warm-up sentence for the query path")


def build_plan(
    base: SearchPlan | str | None,
    *,
    memory: Memory,
    weights: Mapping[str, float] | None = None,
    depths: Mapping[str, int] | None = None,
    rrf_k: int | None = None,
) -> SearchPlan:
    """A search plan from a recipe (or the store's default) with optional overrides.

    Lets an experiment change one knob from the command line without editing retrieval code.
    """
    if base is None:
        plan = memory.default_plan
    elif isinstance(base, str):
        if base not in RECIPES:
            raise ValueError(f"unknown plan {base!r}; use one of {sorted(RECIPES)}")
        plan = RECIPES[base]
    else:
        plan = base
    if weights:
        plan = plan.with_weights(**weights)
    if depths:
        channels = {
            name: replace(spec, k=depths.get(name, spec.k)) for name, spec in plan.channels.items()
        }
        plan = replace(plan, channels=channels)
    if rrf_k is not None:
        plan = replace(plan, rrf_k=rrf_k)
    return plan


@dataclass
class Timings:
    """Wall-clock samples, in milliseconds, of the calls an eval made."""

    add_ms: list[float] = field(default_factory=list)
    add_items: int = 0
    search_ms: list[float] = field(default_factory=list)
    channel_ms: dict[str, list[float]] = field(default_factory=dict)

    def ingest_rate(self) -> float:
        """Items (turns) stored per second of `add` wall-clock time."""
        total_s = sum(self.add_ms) / 1000
        return round(self.add_items / total_s, 2) if total_s > 0 else float("nan")


def timed_add(memory: Memory, messages: Sequence[dict[str, Any]], timings: Timings,
              **kwargs: Any) -> list[str]:
    """`Memory.add` timed; returns the stored message ids in the order of `messages`."""
    start = time.perf_counter()
    result = memory.add(list(messages), **kwargs)
    timings.add_ms.append((time.perf_counter() - start) * 1000)
    timings.add_items += len(messages)
    if len(result.message_ids) != len(messages):
        raise RuntimeError(
            f"add returned {len(result.message_ids)} message ids for {len(messages)} messages"
        )
    return list(result.message_ids)


def timed_search(
    memory: Memory,
    query: str,
    timings: Timings,
    unit_of_source: Mapping[str, str | Collection[str]],
    **kwargs: Any,
) -> tuple[list[set[str]], SearchResponse]:
    """Search, time it, and return for each hit (in rank order) the gold units it covers:
    those of its memory and of the memories grouped under it (`related`), so a grouped
    search is scored on the distinct evidence it returns."""
    start = time.perf_counter()
    response = memory.search(query, **kwargs)
    timings.search_ms.append((time.perf_counter() - start) * 1000)
    for channel, ms in response.timing_ms.items():
        timings.channel_ms.setdefault(channel, []).append(ms)
    covered = [
        units_of([source for member in (hit, *hit.related)
                  for source in member.memory.provenance.source_message_ids], unit_of_source)
        for hit in response.results
    ]
    return covered, response
