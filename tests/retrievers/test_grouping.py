"""Grouping hits by source: a restatement folds into the earlier hit it restates."""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc import Memory
from memsvc.model.records import MemoryKind, MemoryRecord, Provenance, Scope, ScoredMemory
from memsvc.retrievers.grouping import MAX_GROUP_SOURCES, SourceGroups

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _hit(i: int, sources: list[str], kind: MemoryKind = MemoryKind.FACT) -> ScoredMemory:
    record = MemoryRecord(
        id=f"01M{i:023d}", scope=Scope(user_id="u"), kind=kind, text=f"memory {i}",
        created_at=T0, updated_at=T0, content_hash=str(i),
        provenance=Provenance(source_message_ids=sources),
    )
    return ScoredMemory(memory=record, score=1.0 - i / 100)


def _grouped(hits: list[ScoredMemory], limit: int = 10, **kw: object) -> list[list[int]]:
    groups = SourceGroups(limit, **kw)  # type: ignore[arg-type]
    for hit in hits:
        groups.offer(hit)
    return [[int(m.memory.id[3:]) for m in (g, *g.related)] for g in groups.results()]


def test_same_or_fewer_sources_fold_into_the_earlier_hit() -> None:
    hits = [_hit(1, ["a", "b"]), _hit(2, ["c"]), _hit(3, ["a"]), _hit(4, ["b", "a"]),
            _hit(5, ["a", "c"]), _hit(6, [])]
    # 5 spans two groups' sources, so it restates neither; 6 has no source to share
    assert _grouped(hits) == [[1, 3, 4], [2], [5], [6]]


def test_flat_keeps_every_hit() -> None:
    hits = [_hit(1, ["a"]), _hit(2, ["a"]), _hit(3, ["a"])]
    assert _grouped(hits, enabled=False) == [[1], [2], [3]]


def test_limit_counts_groups_and_late_hits_still_join() -> None:
    hits = [_hit(1, ["a"]), _hit(2, ["a"]), _hit(3, ["b"]), _hit(4, ["c"]), _hit(5, ["b"])]
    assert _grouped(hits, limit=2) == [[1, 2], [3, 5]]


def test_a_leader_with_many_sources_absorbs_nothing() -> None:
    many = [f"s{i}" for i in range(MAX_GROUP_SOURCES + 1)]
    hits = [_hit(1, many, MemoryKind.EPISODE), _hit(2, ["s0"]), _hit(3, many[:MAX_GROUP_SOURCES])]
    assert _grouped(hits) == [[1], [2], [3]]


def test_summaries_and_the_profile_stand_alone() -> None:
    hits = [_hit(1, ["a"]), _hit(2, ["a"], MemoryKind.SUMMARY), _hit(3, ["a"], MemoryKind.PROFILE),
            _hit(4, ["b"], MemoryKind.SUMMARY), _hit(5, ["b"])]
    assert _grouped(hits) == [[1], [2], [3], [4], [5]]


def _teach(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "I moved to Lisbon last year and I love it."},
                {"role": "user", "content": "My sister Ana is a nurse in Porto."}],
               user_id="u", infer=True)


def test_search_returns_distinct_sources_unless_asked_flat(memory: Memory) -> None:
    _teach(memory)
    grouped = memory.search("Where does the user live?", user_id="u", limit=10)
    flat = memory.search("Where does the user live?", user_id="u", limit=10, group=False)
    assert len(flat.results) > len(grouped.results)  # the extracted facts were folded
    assert all(not hit.related for hit in flat.results)
    leaders = [frozenset(h.memory.provenance.source_message_ids) for h in grouped.results]
    assert len(set(leaders)) == len(leaders)
    for hit in grouped.results:
        for related in hit.related:
            assert set(related.memory.provenance.source_message_ids) <= set(
                hit.memory.provenance.source_message_ids)
            assert related.score <= hit.score
    ids = {m.memory.id for h in grouped.results for m in (h, *h.related)}
    assert ids == {h.memory.id for h in flat.results}


def test_context_packs_each_source_once(memory: Memory) -> None:
    _teach(memory)
    grouped = memory.context("Where does the user live?", user_id="u", max_tokens=1000)
    flat = memory.context("Where does the user live?", user_id="u", max_tokens=1000,
                          group=False)
    records = {i: memory.get(i) for i in grouped.memory_ids}
    sources = [frozenset(r.provenance.source_message_ids) for r in records.values()]
    assert len(set(sources)) == len(sources) == 2
    assert len(flat.memory_ids) > len(grouped.memory_ids)
