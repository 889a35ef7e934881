"""The LongMemEval loader and its session- and turn-level recall, on a small file made here.

The run uses the real `Memory` (real SQLite in a temp dir, the real embedder).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.evals import longmemeval as lme
from memsvc.model.settings import Settings

TINY = Path(__file__).parent / "data" / "longmemeval_tiny.json"


def test_dates_parse_with_and_without_weekday() -> None:
    assert lme.parse_date("2023/05/20 (Sat) 02:21") == datetime(2023, 5, 20, 2, 21, tzinfo=UTC)
    assert lme.parse_date("2023-05-20") == datetime(2023, 5, 20, tzinfo=UTC)
    with pytest.raises(ValueError):
        lme.parse_date("last Tuesday")


def test_load_instances() -> None:
    instances = lme.load_instances(TINY)
    assert [i.question_id for i in instances] == ["q-commute", "q-pets", "q-boat_abs"]
    commute = instances[0]
    assert commute.question_type == "single-session-user"
    assert [s.session_id for s in commute.sessions] == ["s-cooking", "s-commute", "s-movies"]
    assert commute.sessions[1].timestamp == datetime(2023, 5, 22, 18, 40, tzinfo=UTC)
    assert commute.answer_turn_ids == ("s-commute#0",)
    assert commute.answer_session_ids == ("s-commute",)
    assert commute.question_date == datetime(2023, 6, 1, 10, 0, tzinfo=UTC)
    assert instances[1].answer_turn_ids == ()  # no has_answer flags
    assert instances[2].is_abstention and not commute.is_abstention
    assert len(lme.load_instances(TINY, limit=1)) == 1


def test_misaligned_or_incomplete_instances_are_refused(tmp_path: Path) -> None:
    data = json.loads(TINY.read_text())
    data[0]["haystack_dates"] = data[0]["haystack_dates"][:2]
    (tmp_path / "misaligned.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="line up"):
        lme.load_instances(tmp_path / "misaligned.json")
    data = json.loads(TINY.read_text())
    del data[1]["haystack_sessions"]
    (tmp_path / "incomplete.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="missing fields"):
        lme.load_instances(tmp_path / "incomplete.json")
    data = json.loads(TINY.read_text())
    data[0]["haystack_sessions"][0][0]["role"] = "narrator"
    (tmp_path / "role.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="role"):
        lme.load_instances(tmp_path / "role.json")


@pytest.fixture(scope="module")
def report(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path]]:
    out = tmp_path_factory.mktemp("results")

    def factory(db_path: Path) -> Memory:
        return Memory(settings=Settings(db_path=db_path), embedder=embedder)

    yield lme.run(TINY, mode="raw", ks=(1, 2, 10), out_dir=out, memory_factory=factory), out


def test_counts_and_skips(report: tuple[dict[str, Any], Path]) -> None:
    result, _ = report
    assert result["counts"] == {
        "instances": 3,
        "abstention_skipped": 1,
        "no_answer_sessions": 0,
        "no_answer_turns": 1,  # q-pets has no has_answer flags
        "empty_turns": 1,  # the whitespace-only turn of s-commute
        "truncated_turns": 0,
    }
    assert result["session_level"]["all"]["n"] == 2
    assert result["turn_level"]["all"]["n"] == 1
    assert set(result["session_level"]) == {"all", "multi-session", "single-session-user"}
    # 6 + 6 turns stored (not the empty one), in 6 add calls; the abstention is not ingested
    ingest = result["timing"]["ingest"]
    assert ingest["turns"] == 12 and ingest["add_calls"] == 6


def test_recall_is_measured_through_provenance(report: tuple[dict[str, Any], Path]) -> None:
    result, out = report
    session, turn = result["session_level"], result["turn_level"]
    # each haystack has at most 6 turns, so the top 10 holds them all
    assert session["all"]["recall@10"] == 1.0 and turn["all"]["recall@10"] == 1.0
    # the commute question names words only its evidence turn has: found first
    assert turn["single-session-user"]["recall@1"] == 1.0
    assert session["single-session-user"]["mrr"] == 1.0
    # two gold sessions cannot both be behind a single memory
    assert session["multi-session"]["all@1"] == 0.0
    assert session["multi-session"]["recall@1"] <= 0.5
    on_disk = json.loads((out / "longmemeval-raw.json").read_text())
    assert on_disk["session_level"] == session
    assert "| session_level | all |" in (out / "longmemeval-raw.md").read_text()


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        lme.run(TINY, mode="guess", out_dir=tmp_path)
