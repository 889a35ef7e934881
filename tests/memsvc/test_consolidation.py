"""Consolidation: merge, time-tree summaries, decay, profile, retry — idempotent, resumable.

Real stores in temp dirs and the real embedder; "now" is always passed explicitly so a run's
outcome does not depend on the wall clock. The extractor that fails is a small local class
behind the real `Extractor` interface (no LLM is involved).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from memsvc import InvalidInputError, Memory
from memsvc.consolidate import (
    ConsolidationConfig,
    extractive_summary,
    render_profile,
    strength,
)
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.extractors.base import Candidate
from memsvc.extractors.rules import RuleExtractor
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import (
    HistoryEvent,
    MemoryKind,
    MemoryRecord,
    MemoryStatus,
    Scope,
    StoredMessage,
)
from memsvc.model.settings import Settings
from memsvc.storage.base import WriteBatch

NOW = datetime(2023, 7, 1, tzinfo=UTC)


def turn(name: str, text: str, when: str) -> dict[str, Any]:
    return {"role": "user", "name": name, "content": text, "timestamp": when}


def chat(memory: Memory) -> None:
    """Four sessions: two on one day, one more that month, one the next month."""
    memory.add([turn("Caroline", "I adopted a guinea pig named Oscar last Saturday!",
                     "2023-05-08T10:00:00Z"),
                turn("Melanie", "That is wonderful news, I love guinea pigs.",
                     "2023-05-08T10:01:00Z")],
               user_id="u1", session_id="s1", infer=True)
    memory.add([turn("Caroline", "I prefer hiking in the mountains on weekends.",
                     "2023-05-08T18:00:00Z"),
                turn("Melanie", "My favourite painter is Claude Monet.",
                     "2023-05-08T18:05:00Z")],
               user_id="u1", session_id="s2", infer=True)
    memory.add([turn("Caroline", "I started a pottery class at the community centre.",
                     "2023-05-20T09:00:00Z"),
                turn("Melanie", "I ran a charity race for mental health.",
                     "2023-05-20T09:02:00Z")],
               user_id="u1", session_id="s3", infer=True)
    memory.add([turn("Caroline", "I am reading a book about the history of Spain.",
                     "2023-06-02T09:00:00Z")],
               user_id="u1", session_id="s4", infer=True)


def state(memory: Memory) -> list[tuple[Any, ...]]:
    """What a caller can observe of every memory (ids, text, status, version)."""
    return sorted(
        (r.id, r.kind.value, r.text, r.status.value, r.version, r.superseded_by)
        for r in memory.export(user_id="u1")
    )


def summaries(memory: Memory) -> dict[tuple[str, str], MemoryRecord]:
    return {
        (r.metadata["summary_level"], r.metadata["summary_key"]): r
        for r in memory.get_all(user_id="u1", kinds=["summary"], limit=1000).items
    }


def insert(memory: Memory, text: str, kind: MemoryKind = MemoryKind.FACT,
           **extra: Any) -> MemoryRecord:
    rec = MemoryRecord(
        id=new_id(), scope=Scope(user_id="u1"), kind=kind, text=text,
        created_at=extra.pop("created_at", NOW), updated_at=NOW,
        content_hash=content_hash(kind.value, text), **extra,
    )
    memory.store.apply(
        WriteBatch(inserts=[(rec, memory.embedder.embed_documents([text])[0])])
    )
    return rec


# -- summaries: the time tree ----------------------------------------------------------------


def test_summaries_form_a_session_day_month_tree(memory: Memory) -> None:
    chat(memory)
    report = memory.consolidate(user_id="u1", now=NOW, steps=["summaries"])
    nodes = summaries(memory)
    assert set(nodes) == {
        ("session", "s1"), ("session", "s2"), ("session", "s3"), ("session", "s4"),
        ("day", "2023-05-08"), ("month", "2023-05"),
    }  # a day or month with a single session would only repeat it
    assert report.summaries_added == 6
    day = nodes[("day", "2023-05-08")]
    assert day.metadata["children"] == [nodes[("session", "s1")].id, nodes[("session", "s2")].id]
    month = nodes[("month", "2023-05")]
    assert month.metadata["children"] == [day.id, nodes[("session", "s3")].id]
    assert "pottery" in month.text or "race" in month.text or "guinea" in month.text
    s1 = nodes[("session", "s1")]
    assert s1.scope.session_id == "s1" and "guinea pig" in s1.text
    assert "Caroline adopted" in s1.text  # picked from the extracted, self-contained statement
    assert s1.text.startswith("Session s1 (8 May 2023):")
    in_s1 = {m.id for m in memory.messages(user_id="u1", session_id="s1")}
    assert s1.provenance.source_message_ids  # the turns behind the lines it says
    assert set(s1.provenance.source_message_ids) <= in_s1
    month_sources = set(nodes[("month", "2023-05")].provenance.source_message_ids)
    assert month_sources and month_sources <= {
        m.id for m in memory.messages(user_id="u1") if m.timestamp.month == 5
    }
    assert day.valid_from == datetime(2023, 5, 8, tzinfo=UTC)
    assert day.valid_to == datetime(2023, 5, 9, tzinfo=UTC)


def test_new_turns_update_only_their_path(memory: Memory) -> None:
    chat(memory)
    memory.consolidate(user_id="u1", now=NOW, steps=["summaries"])
    before = summaries(memory)
    memory.add([turn("Caroline", "Oscar learned to squeak when I open the fridge.",
                     "2023-05-08T18:10:00Z")], user_id="u1", session_id="s2")
    report = memory.consolidate(user_id="u1", now=NOW + timedelta(hours=1), steps=["summaries"])
    after = summaries(memory)
    changed = {key for key in after if after[key].version != before[key].version}
    assert changed == {("session", "s2"), ("day", "2023-05-08"), ("month", "2023-05")}
    assert report.summaries_updated == 3 and report.summaries_added == 0
    assert "squeak" in after[("session", "s2")].text or after[("session", "s2")].metadata[
        "fingerprint"] != before[("session", "s2")].metadata["fingerprint"]
    assert after[("session", "s1")] == before[("session", "s1")]
    assert after[("session", "s3")] == before[("session", "s3")]
    assert after[("session", "s4")] == before[("session", "s4")]


def test_extractive_summary_keeps_order_and_limit() -> None:
    texts = [
        "Caroline: I adopted a guinea pig named Oscar today.",
        "Melanie: Oh nice.",
        "Caroline: Oscar the guinea pig loves hay and carrots.",
        "Melanie: I am painting a lake at sunrise this week.",
    ]
    picked = extractive_summary(texts, 2)
    assert len(picked) == 2
    assert all(p.startswith(("Caroline: ", "Melanie: ")) for p in picked)
    assert picked == sorted(picked, key=lambda p: next(i for i, t in enumerate(texts)
                                                      if p.split(": ", 1)[1] in t))
    assert "Melanie: Oh nice." not in picked  # too short to say anything
    assert extractive_summary(texts, 2) == picked  # deterministic


# -- merge ----------------------------------------------------------------------------------


def test_near_duplicates_merge_into_the_oldest(memory: Memory) -> None:
    a = insert(memory, "Caroline likes hiking in the mountains.", MemoryKind.PREFERENCE,
               access_count=2, importance=0.4)
    b = insert(memory, "Caroline likes hiking in the mountains!", MemoryKind.PREFERENCE,
               access_count=3, importance=0.7)
    c = insert(memory, "Caroline ran 5 km.", MemoryKind.EVENT)
    d = insert(memory, "Caroline ran 10 km.", MemoryKind.EVENT)  # numbers differ: two facts
    e = insert(memory, "Caroline dislikes hiking in the mountains.", MemoryKind.PREFERENCE)
    report = memory.consolidate(user_id="u1", now=NOW, steps=["merge"])
    assert report.merged == 1
    kept, gone = memory.get(a.id), memory.get(b.id)
    assert gone.status is MemoryStatus.SUPERSEDED and gone.superseded_by == a.id
    assert kept.status is MemoryStatus.ACTIVE and kept.metadata["merged_from"] == [b.id]
    assert kept.access_count == 5 and kept.importance == 0.7
    assert memory.get(c.id).status is MemoryStatus.ACTIVE
    assert memory.get(d.id).status is MemoryStatus.ACTIVE
    assert memory.get(e.id).status is MemoryStatus.ACTIVE  # the opposite is not a duplicate
    assert [h.event for h in memory.history(b.id)][-1] is HistoryEvent.UPDATE
    hits = memory.search("Does Caroline like hiking?", user_id="u1").results
    assert [h.memory.id for h in hits].count(b.id) == 0  # the duplicate no longer shows


def test_opposite_orders_of_the_same_words_are_not_merged(memory: Memory) -> None:
    tea = insert(memory, "Caroline prefers tea over coffee.", MemoryKind.PREFERENCE)
    coffee = insert(memory, "Caroline prefers coffee over tea.", MemoryKind.PREFERENCE)
    report = memory.consolidate(user_id="u1", now=NOW, steps=["merge"])
    assert report.merged == 0
    assert memory.get(tea.id).status is MemoryStatus.ACTIVE
    assert memory.get(coffee.id).status is MemoryStatus.ACTIVE


# -- decay ----------------------------------------------------------------------------------


def test_strength_falls_with_age_and_rises_with_use_and_importance() -> None:
    base = MemoryRecord(id=new_id(), scope=Scope(user_id="u"), kind=MemoryKind.FACT, text="x",
                        created_at=NOW, updated_at=NOW, content_hash="h")
    later = NOW + timedelta(days=60)
    assert strength(base, NOW, 30) == pytest.approx(1.0)
    assert strength(base, later, 30) == pytest.approx(0.25)
    used = base.model_copy(update={"access_count": 5, "last_accessed_at": NOW})
    important = base.model_copy(update={"importance": 1.0})
    assert strength(used, later, 30) > strength(base, later, 30)
    assert strength(important, later, 30) > strength(base, later, 30)
    recent = base.model_copy(update={"last_accessed_at": later})
    assert strength(recent, later, 30) == pytest.approx(1.0)


def test_faded_memories_are_archived_not_deleted(memory: Memory) -> None:
    old = insert(memory, "Caroline once owned a red bicycle.",
                 created_at=NOW - timedelta(days=400))
    fresh = insert(memory, "Caroline owns a blue kayak.")
    episode = insert(memory, "Caroline: I once owned a red bicycle.", MemoryKind.EPISODE,
                     created_at=NOW - timedelta(days=400))
    report = memory.consolidate(user_id="u1", now=NOW, steps=["decay"])
    assert report.archived == 1
    assert memory.get(old.id).status is MemoryStatus.ARCHIVED
    assert memory.get(fresh.id).status is MemoryStatus.ACTIVE
    assert memory.get(episode.id).status is MemoryStatus.ACTIVE  # the record never fades
    assert memory.history(old.id)[-1].event is HistoryEvent.ARCHIVE
    default = memory.search("red bicycle", user_id="u1").results
    assert old.id not in [h.memory.id for h in default]
    flagged = memory.search("red bicycle", user_id="u1", include_archived=True).results
    assert old.id in [h.memory.id for h in flagged]
    listed = memory.get_all(user_id="u1", include_archived=True).items
    assert old.id in [r.id for r in listed]


def test_an_archived_memory_used_again_is_restored(memory: Memory) -> None:
    old = insert(memory, "Caroline once owned a red bicycle.",
                 created_at=NOW - timedelta(days=400))
    memory.consolidate(user_id="u1", now=NOW, steps=["decay"])
    assert memory.get(old.id).status is MemoryStatus.ARCHIVED
    again = memory.consolidate(user_id="u1", now=NOW, steps=["decay"])
    assert again.changed == 0  # still faded: stays archived, no flapping
    found = memory.search("red bicycle", user_id="u1", include_archived=True)
    assert old.id in [h.memory.id for h in found.results]  # this use is counted
    touched = memory.get(old.id)
    assert touched.access_count == 1 and touched.last_accessed_at is not None
    report = memory.consolidate(user_id="u1", now=touched.last_accessed_at, steps=["decay"])
    assert report.restored == 1 and report.archived == 0
    assert memory.get(old.id).status is MemoryStatus.ACTIVE
    assert memory.history(old.id)[-1].event is HistoryEvent.RESTORE


# -- profile --------------------------------------------------------------------------------


def test_profile_is_deterministic_and_kept_current(memory: Memory) -> None:
    insert(memory, "Caroline likes hiking.", MemoryKind.PREFERENCE)
    insert(memory, "Caroline lives in Boston.", MemoryKind.FACT)
    insert(memory, "Caroline went to Rome.", MemoryKind.EVENT)  # events are not profile lines
    memory.consolidate(user_id="u1", now=NOW, steps=["profile"])
    profile = memory.get_all(user_id="u1", kinds=["profile"]).items
    assert len(profile) == 1
    assert profile[0].text == (
        "Profile of the user\nPreferences:\n- Caroline likes hiking.\nFacts:\n"
        "- Caroline lives in Boston."
    )
    memory.search("hiking", user_id="u1")  # use counts change; the profile must not
    again = memory.consolidate(user_id="u1", now=NOW, steps=["profile"])
    assert again.changed == 0
    insert(memory, "Caroline likes chess.", MemoryKind.PREFERENCE)
    report = memory.consolidate(user_id="u1", now=NOW, steps=["profile"])
    assert report.profiles_updated == 1
    refreshed = memory.get(profile[0].id)
    assert refreshed.text.index("chess") < refreshed.text.index("hiking")  # alphabetical
    assert refreshed.version == 2


def test_render_profile_order_does_not_depend_on_input_order() -> None:
    def rec(text: str, kind: MemoryKind) -> MemoryRecord:
        return MemoryRecord(id=new_id(), scope=Scope(user_id="u"), kind=kind, text=text,
                            created_at=NOW, updated_at=NOW, content_hash=text)

    items = [rec("Bo likes tea.", MemoryKind.PREFERENCE), rec("Al likes jam.",
                                                             MemoryKind.PREFERENCE),
             rec("Bo is a nurse.", MemoryKind.FACT)]
    one = render_profile(Scope(user_id="u"), items, 10)
    two = render_profile(Scope(user_id="u"), list(reversed(items)), 10)
    assert one == two and one is not None and "01" not in one  # no ids in it
    assert render_profile(Scope(user_id="u"), [], 10) is None


# -- retry ----------------------------------------------------------------------------------


class FlakyExtractor:
    """Fails on its first `failures` calls, then extracts one fact per message."""

    name = "flaky"
    version = "1"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("model server unavailable")
        return [
            Candidate(kind=MemoryKind.FACT, text=f"{m.name} said: {m.content}",
                      source_message_ids=[m.id], entities=[m.name] if m.name else [])
            for m in messages
        ]


def test_failed_extraction_is_retried_and_marked(
    db_path: Any, embedder: SentenceTransformerEmbedder
) -> None:
    flaky = FlakyExtractor(failures=2)  # the add, then the first retry
    with Memory(settings=Settings(db_path=db_path), embedder=embedder, extractor=flaky) as m:
        m.add([turn("Ana", "I moved to Lyon.", "2023-05-01T10:00:00Z")], user_id="u1",
              infer=True)
        assert m.get_all(user_id="u1", kinds=["fact"]).total == 0
        first = m.consolidate(user_id="u1", now=NOW, steps=["retry"])
        assert first.retry_failures == 1 and first.retried == 0
        episode = m.get_all(user_id="u1", kinds=["episode"]).items[0]
        assert episode.metadata["extraction"]["attempts"] == 2
        assert episode.metadata["extraction"]["retry"] is True
        second = m.consolidate(user_id="u1", now=NOW, steps=["retry"])
        assert second.retried == 1
        facts = m.get_all(user_id="u1", kinds=["fact"]).items
        assert [f.text for f in facts] == ["Ana said: I moved to Lyon."]
        episode = m.get(episode.id)
        assert episode.metadata["extraction"]["status"] == "retried"
        third = m.consolidate(user_id="u1", now=NOW, steps=["retry"])
        assert third.changed == 0 and flaky.calls == 3  # nothing left to retry


def test_a_background_add_marks_what_failed_for_retry(
    db_path: Any, embedder: SentenceTransformerEmbedder
) -> None:
    """add(infer=False) then infer() (REST `background: true`): a failure is kept, not lost."""
    flaky = FlakyExtractor(failures=1)  # the background extraction fails, the retry works
    with Memory(settings=Settings(db_path=db_path), embedder=embedder, extractor=flaky) as m:
        added = m.add([turn("Ana", "I moved to Lyon.", "2023-05-01T10:00:00Z")], user_id="u1")
        result = m.infer(added.message_ids, user_id="u1")
        assert result.results == [] and m.get_all(user_id="u1", kinds=["fact"]).total == 0
        episode = m.get_all(user_id="u1", kinds=["episode"]).items[0]
        assert episode.metadata["extraction"]["status"] == "failed"
        assert episode.metadata["extraction"]["retry"] is True
        assert "model server unavailable" in episode.metadata["extraction"]["error"]
        assert m.history(episode.id)[-1].event is HistoryEvent.UPDATE
        report = m.consolidate(user_id="u1", now=NOW, steps=["retry"])
        assert report.retried == 1
        assert [f.text for f in m.get_all(user_id="u1", kinds=["fact"]).items] == [
            "Ana said: I moved to Lyon."
        ]


def test_retry_gives_up_after_the_attempt_limit(
    db_path: Any, embedder: SentenceTransformerEmbedder
) -> None:
    flaky = FlakyExtractor(failures=100)
    with Memory(settings=Settings(db_path=db_path), embedder=embedder, extractor=flaky) as m:
        m.add([turn("Ana", "I moved to Lyon.", "2023-05-01T10:00:00Z")], user_id="u1",
              infer=True)
        config = ConsolidationConfig(max_retry_attempts=3)
        for _ in range(4):
            m.consolidate(user_id="u1", now=NOW, steps=["retry"], config=config)
        assert flaky.calls == 3  # the add, then two retries
        episode = m.get_all(user_id="u1", kinds=["episode"]).items[0]
        assert episode.metadata["extraction"]["retry"] is False
        assert episode.status is MemoryStatus.ACTIVE  # the message itself is never lost


# -- whole runs: idempotent, resumable, validated ---------------------------------------------


def test_second_run_changes_nothing(memory: Memory) -> None:
    chat(memory)
    insert(memory, "Caroline likes hiking in the mountains!", MemoryKind.PREFERENCE)
    insert(memory, "Caroline owned a red bicycle.", created_at=NOW - timedelta(days=400))
    first = memory.consolidate(user_id="u1", now=NOW)
    assert first.changed > 0 and first.summaries_added and first.archived and first.profiles_added
    snapshot = state(memory)
    second = memory.consolidate(user_id="u1", now=NOW)
    assert second.changed == 0
    assert second.model_dump(exclude={"steps", "scopes"}) == {
        k: ([] if k == "changes" else 0)
        for k in second.model_dump(exclude={"steps", "scopes"})
    }
    assert state(memory) == snapshot


def test_a_crash_mid_run_is_finished_by_the_next_run(
    memory: Memory, db_path: Any, embedder: SentenceTransformerEmbedder, tmp_path: Any
) -> None:
    chat(memory)
    insert(memory, "Caroline owned a red bicycle.", created_at=NOW - timedelta(days=400))
    # The reference: the same data consolidated without a crash, in another store.
    with Memory(settings=Settings(db_path=tmp_path / "ref.db"), embedder=embedder) as ref:
        chat(ref)
        insert(ref, "Caroline owned a red bicycle.", created_at=NOW - timedelta(days=400))
        expected = ref.consolidate(user_id="u1", now=NOW)

    real_apply = memory.store.apply
    calls = {"n": 0}

    def crashing_apply(batch: WriteBatch) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # three units written, the fourth dies mid-transaction
            raise KeyboardInterrupt("power cut")
        real_apply(batch)

    memory.store.apply = crashing_apply
    with pytest.raises(KeyboardInterrupt):
        memory.consolidate(user_id="u1", now=NOW)
    memory.store.apply = real_apply
    partial = summaries(memory)
    assert 0 < len(partial) < expected.summaries_added

    resumed = memory.consolidate(user_id="u1", now=NOW)
    assert resumed.summaries_added == expected.summaries_added - len(partial)
    assert resumed.archived == expected.archived
    assert sorted(r.text for r in summaries(memory).values()) == sorted(
        r.text for r in memory.get_all(user_id="u1", kinds=["summary"]).items
    )
    assert len(summaries(memory)) == expected.summaries_added
    assert memory.consolidate(user_id="u1", now=NOW).changed == 0
    assert memory.store.consistency()["consistent"]


def test_bad_arguments_are_refused_and_nothing_changes(memory: Memory) -> None:
    chat(memory)
    before = state(memory)
    with pytest.raises(InvalidInputError):
        memory.consolidate(user_id="u1", steps=["merge", "defragment"])
    with pytest.raises(InvalidInputError):
        memory.consolidate(user_id="u1", steps=[])
    with pytest.raises(InvalidInputError):
        memory.consolidate(user_id="u1", now="yesterday-ish")
    with pytest.raises(InvalidInputError):
        memory.consolidate(user_id=["u1"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        memory.consolidate(user_id="u1", config={"merge_threshold": 0})  # type: ignore[arg-type]
    assert state(memory) == before


def test_consolidation_never_crosses_users(memory: Memory) -> None:
    chat(memory)
    memory.add([turn("Zed", "I like golf a lot these days.", "2023-05-08T10:00:00Z")],
               user_id="u2", session_id="z1", infer=True)
    report = memory.consolidate(user_id="u2", now=NOW)
    assert report.scopes == 1
    assert summaries(memory) == {}  # u1 untouched
    u2 = memory.get_all(user_id="u2", kinds=["summary"]).items
    assert u2 and all("Caroline" not in s.text for s in u2)


def test_progress_is_reported_per_step(memory: Memory) -> None:
    chat(memory)
    seen: list[tuple[str, int, int]] = []
    memory.consolidate(user_id="u1", now=NOW, progress=lambda *a: seen.append(a))
    assert [s for s, _, _ in seen] == ["retry", "merge", "summaries", "decay", "profile"]
    assert all(done == total == 1 for _, done, total in seen)


def test_vectors_of_written_summaries_are_searchable(memory: Memory) -> None:
    chat(memory)
    memory.consolidate(user_id="u1", now=NOW, steps=["summaries"])
    hits = memory.search("what happened in session s3", user_id="u1", kinds=["summary"])
    assert hits.results and hits.results[0].memory.metadata["summary_key"] == "s3"
    assert "s3" in hits.results[0].memory.text
    vectors = memory.store.embeddings([h.memory.id for h in hits.results])
    assert all(np.linalg.norm(v) > 0 for v in vectors.values())


def test_rules_extractor_default_is_used_for_retry(memory: Memory) -> None:
    assert isinstance(memory.extractor, RuleExtractor)


def test_cli_consolidate_reports_changes_and_then_none(db_path: Any) -> None:
    from typer.testing import CliRunner

    from memsvc.cli import app

    runner = CliRunner()
    for text in ("I adopted a guinea pig named Oscar.", "Oscar loves fresh hay every day."):
        added = runner.invoke(app, ["add", text, "--user-id", "u1", "--session-id", "s1",
                                    "--name", "Caroline", "--db", str(db_path)])
        assert added.exit_code == 0, added.output
    first = runner.invoke(app, ["consolidate", "--user-id", "u1", "--db", str(db_path),
                                "--now", "2030-01-01T00:00:00Z", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["summaries_added"] == 1 and report["changes"]
    again = runner.invoke(app, ["consolidate", "--user-id", "u1", "--db", str(db_path),
                                "--now", "2030-01-01T00:00:00Z"])
    assert again.exit_code == 0 and "0 memories changed" in again.stdout
    bad = runner.invoke(app, ["consolidate", "--user-id", "u1", "--step", "defrag",
                              "--db", str(db_path)])
    assert bad.exit_code == 2 and "steps must be among" in bad.output


def test_include_archived_must_be_a_flag(memory: Memory) -> None:
    with pytest.raises(InvalidInputError):
        memory.search("x", user_id="u1", include_archived="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        memory.get_all(user_id="u1", include_archived=1)  # type: ignore[arg-type]


def test_no_scope_consolidates_every_user_and_agent_of_the_tenant(memory: Memory) -> None:
    memory.add([turn("Ana", "I started learning the violin this spring.",
                     "2023-05-08T10:00:00Z")], user_id="u1", session_id="a", infer=True)
    memory.add([turn("Ben", "I started learning the cello this spring.",
                     "2023-05-08T10:00:00Z")], user_id="u2", agent_id="tutor", session_id="b",
               infer=True)
    report = memory.consolidate(now=NOW, steps=["summaries"])
    assert report.scopes == 2 and report.summaries_added == 2
    u2 = memory.get_all(user_id="u2", kinds=["summary"]).items
    assert [s.scope.agent_id for s in u2] == ["tutor"] and "cello" in u2[0].text
