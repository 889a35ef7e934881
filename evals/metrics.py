"""Retrieval metrics shared by every benchmark loader: recall@k, hit@k, MRR, percentiles.

A benchmark names its gold units differently (LoCoMo: dialogue ids; LongMemEval: session ids
and turns), so the metrics take, for each returned memory in rank order, the set of gold-unit
ids it covers. A memory built from several turns covers all of them, which is how an
extracted fact gets credit for the evidence it was drawn from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


@dataclass(frozen=True)
class QueryScore:
    """How one ranking did against one question's gold units."""

    recall: dict[int, float]  # share of gold units covered by the top k
    hit: dict[int, float]  # 1.0 when at least one gold unit is in the top k
    complete: dict[int, float]  # 1.0 when every gold unit is in the top k
    reciprocal_rank: float  # 1 / rank of the first memory covering any gold unit; 0 if none
    first_rank: int | None


def score_ranking(
    covered: Sequence[Collection[str]], gold: Collection[str], ks: Sequence[int] = DEFAULT_KS
) -> QueryScore:
    """Score one ranking: `covered[i]` is what the memory at rank i+1 covers.

    `gold` must be non-empty: a question without evidence cannot be scored, and silently
    counting it as 0 or 1 would bias the mean either way, so callers exclude it.
    """
    gold_set = set(gold)
    if not gold_set:
        raise ValueError("a question without gold units cannot be scored")
    if any(k < 1 for k in ks):
        raise ValueError("k must be at least 1")
    first_rank = next(
        (rank for rank, units in enumerate(covered, start=1) if gold_set.intersection(units)),
        None,
    )
    recall: dict[int, float] = {}
    hit: dict[int, float] = {}
    complete: dict[int, float] = {}
    for k in ks:
        found: set[str] = set()
        for units in covered[:k]:
            found.update(gold_set.intersection(units))
        recall[k] = len(found) / len(gold_set)
        hit[k] = 1.0 if found else 0.0
        complete[k] = 1.0 if found == gold_set else 0.0
    return QueryScore(
        recall=recall,
        hit=hit,
        complete=complete,
        reciprocal_rank=1.0 / first_rank if first_rank else 0.0,
        first_rank=first_rank,
    )


@dataclass
class Aggregate:
    """Running means of `QueryScore`s for one group of questions (a category, or all)."""

    ks: tuple[int, ...] = DEFAULT_KS
    scores: list[QueryScore] = field(default_factory=list)

    def add(self, score: QueryScore) -> None:
        self.scores.append(score)

    def summary(self) -> dict[str, float | int]:
        """`n`, `recall@k`, `hit@k`, `all@k` for every k, and `mrr` (question-level means)."""
        n = len(self.scores)
        out: dict[str, float | int] = {"n": n}

        def mean(values: Iterable[float]) -> float:
            values = list(values)
            return round(float(np.mean(values)), 4) if values else float("nan")

        for k in self.ks:
            out[f"recall@{k}"] = mean(s.recall[k] for s in self.scores)
        for k in self.ks:
            out[f"hit@{k}"] = mean(s.hit[k] for s in self.scores)
        for k in self.ks:
            out[f"all@{k}"] = mean(s.complete[k] for s in self.scores)
        out["mrr"] = mean(s.reciprocal_rank for s in self.scores)
        return out


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """p50 / p95 / mean / max of a list of latencies in milliseconds."""
    if not samples_ms:
        return {"n": 0}
    values = np.asarray(samples_ms, dtype=float)
    return {
        "n": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def units_of(
    source_ids: Iterable[str], unit_of_source: Mapping[str, str | Collection[str]]
) -> set[str]:
    """The gold units behind a memory's source message ids (unknown ids are ignored)."""
    units: set[str] = set()
    for source in source_ids:
        unit = unit_of_source.get(source)
        if unit is None:
            continue
        if isinstance(unit, str):
            units.add(unit)
        else:
            units.update(unit)
    return units
