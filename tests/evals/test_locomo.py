"""The LoCoMo loader, the retrieval metrics and the eval run, on small files made for the test.

The run uses the real `Memory` (real SQLite with sqlite-vec and FTS5 in a temp dir, the real
embedder); nothing here reads the shared benchmark data.
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
from memsvc.evals import locomo
from memsvc.evals.metrics import Aggregate, latency_summary, score_ranking
from memsvc.model.settings import Settings

DATA = Path(__file__).parent / "data"
TINY = DATA / "locomo_tiny.json"
RELEASED = DATA / "locomo_released.json"


# -- metrics ------------------------------------------------------------------------------


def test_recall_hit_and_mrr_follow_the_ranking() -> None:
    covered = [{"x"}, {"a"}, set(), {"b", "c"}]
    score = score_ranking(covered, ["a", "b"], ks=(1, 2, 4))
    assert score.recall == {1: 0.0, 2: 0.5, 4: 1.0}
    assert score.hit == {1: 0.0, 2: 1.0, 4: 1.0}
    assert score.complete == {1: 0.0, 2: 0.0, 4: 1.0}
    assert score.first_rank == 2
    assert score.reciprocal_rank == pytest.approx(0.5)


def test_a_memory_built_from_several_turns_covers_all_of_them() -> None:
    score = score_ranking([{"a", "b", "z"}], ["a", "b"], ks=(1,))
    assert score.recall[1] == 1.0 and score.reciprocal_rank == 1.0


def test_nothing_found_scores_zero() -> None:
    score = score_ranking([{"x"}, {"y"}], ["a"], ks=(5,))
    assert score.recall[5] == 0.0 and score.hit[5] == 0.0
    assert score.first_rank is None and score.reciprocal_rank == 0.0


def test_a_question_without_evidence_cannot_be_scored() -> None:
    with pytest.raises(ValueError):
        score_ranking([{"a"}], [], ks=(5,))
    with pytest.raises(ValueError):
        score_ranking([{"a"}], ["a"], ks=(0,))


def test_aggregate_means_over_questions() -> None:
    agg = Aggregate(ks=(1,))
    agg.add(score_ranking([{"a"}], ["a"], ks=(1,)))
    agg.add(score_ranking([{"x"}], ["a", "b"], ks=(1,)))
    summary = agg.summary()
    assert summary["n"] == 2
    assert summary["recall@1"] == pytest.approx(0.5)
    assert summary["mrr"] == pytest.approx(0.5)


def test_latency_summary_percentiles() -> None:
    summary = latency_summary([float(i) for i in range(1, 101)])
    assert summary["n"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert latency_summary([]) == {"n": 0}


# -- loading ------------------------------------------------------------------------------


def test_session_dates_parse_to_utc() -> None:
    assert locomo.parse_session_date("1:56 pm on 8 May, 2023") == datetime(
        2023, 5, 8, 13, 56, tzinfo=UTC
    )
    assert locomo.parse_session_date("12:09 am on 13 September, 2023") == datetime(
        2023, 9, 13, 0, 9, tzinfo=UTC
    )
    assert locomo.parse_session_date("12:30 pm on 1 Jan, 2024").hour == 12
    with pytest.raises(ValueError):
        locomo.parse_session_date("yesterday afternoon")
    with pytest.raises(ValueError):
        locomo.parse_session_date("1:56 pm on 8 Maytember, 2023")


def test_evidence_ids_are_normalised_and_split() -> None:
    assert locomo.split_evidence(["D1:3; D2:3", "D02:01", "D1:3"]) == ["D1:3", "D2:3", "D2:1"]
    assert locomo.normalise_dia_id(" D 4 : 07 ") == "D4:7"
    assert locomo.normalise_dia_id("session 4") is None


def test_load_flat_file() -> None:
    [conv] = locomo.load_conversations([TINY])
    assert conv.sample_id == "locomo_tiny"
    assert conv.speakers == ("Ada", "Ben")
    # session 3 has a date but no turns: it is not a session of the conversation
    assert [s.number for s in conv.sessions] == [1, 2]
    assert conv.sessions[1].timestamp == datetime(2023, 6, 2, 9, 5, tzinfo=UTC)
    turns = {t.dia_id: t for t in conv.turns}
    # the photo caption is part of the text, without the caption's own "a photo of"
    assert turns["D1:4"].text == "Look at this. [shares a photo of: a red kayak on a frozen lake]"
    assert "D2:4" not in turns  # an empty turn gives the store nothing to keep
    by_question = {q.question: q for q in conv.questions}
    multi = by_question["Which instrument does Ada play, and where is her teacher?"]
    assert multi.evidence == ("D1:3", "D2:3") and multi.category == 1
    assert by_question["When did Ada move to Lisbon?"].evidence == ("D2:1",)
    unscorable = by_question["What did Ben say with no words?"]
    assert unscorable.evidence == () and unscorable.dropped_evidence == ("D2:4", "D9:9")
    assert conv.last_date == datetime(2023, 6, 2, 9, 5, tzinfo=UTC)


def test_load_released_format_and_folders(tmp_path: Path) -> None:
    [conv] = locomo.load_conversations([RELEASED])
    assert conv.sample_id == "conv-x"
    assert [t.speaker for t in conv.turns] == ["Cleo", "Dan"]
    assert conv.questions[0].evidence == ("D1:2",)
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a.json").write_text(TINY.read_text())
    (folder / "b.json").write_text(RELEASED.read_text())
    (folder / "README.md").write_text("not data")
    assert [c.sample_id for c in locomo.load_conversations([folder])] == ["a", "conv-x"]


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        locomo.load_conversations([tmp_path / "missing.json"])
    with pytest.raises(FileNotFoundError):
        locomo.load_conversations([tmp_path])  # a folder without any *.json
    bad_date = json.loads(TINY.read_text())
    bad_date["session_1_date_time"] = "sometime"
    (tmp_path / "bad_date.json").write_text(json.dumps(bad_date))
    with pytest.raises(ValueError, match="session date"):
        locomo.load_conversations([tmp_path / "bad_date.json"])
    no_date = json.loads(TINY.read_text())
    del no_date["session_2_date_time"]
    (tmp_path / "no_date.json").write_text(json.dumps(no_date))
    with pytest.raises(ValueError, match="no session_2_date_time"):
        locomo.load_conversations([tmp_path / "no_date.json"])


# -- the run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_result(
    embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path, list[Path]]]:
    out = tmp_path_factory.mktemp("results")
    db_paths: list[Path] = []

    def factory(db_path: Path) -> Memory:
        db_paths.append(db_path)
        return Memory(settings=Settings(db_path=db_path), embedder=embedder)

    report = locomo.run([TINY, RELEASED], mode="raw", out_dir=out, memory_factory=factory)
    yield report, out, db_paths


def test_run_writes_json_markdown_and_per_question_files(
    run_result: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    report, out, _ = run_result
    on_disk = json.loads((out / "locomo-raw.json").read_text())
    assert on_disk["overall"] == report["overall"]
    for key in ("recall@5", "recall@10", "recall@20", "hit@10", "mrr"):
        assert 0.0 <= on_disk["overall"][key] <= 1.0
    markdown = (out / "locomo-raw.md").read_text()
    assert "| **overall (1-4)** |" in markdown and "turns/s" in markdown
    lines = (out / "locomo-raw-questions.jsonl").read_text().splitlines()
    assert len(lines) == 6  # 7 questions, one without any usable evidence


def test_overall_is_categories_one_to_four_and_adversarial_is_apart(
    run_result: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    report, _, _ = run_result
    by_cat = report["by_category"]
    assert set(by_cat) == {"1", "2", "4", "5"}
    assert by_cat["5"]["name"] == "adversarial" and by_cat["5"]["n"] == 1
    assert report["overall"]["n"] == by_cat["1"]["n"] + by_cat["2"]["n"] + by_cat["4"]["n"] == 5
    assert report["data"]["questions_without_evidence"] == 1
    assert report["data"]["dropped_evidence_ids"] == 2


def test_evidence_is_found_through_provenance(
    run_result: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    # at most 7 turns per conversation, so the top 20 holds all of them: recall@20 must be 1
    # if (and only if) returned memories map back to the right dialogue ids.
    report, out, _ = run_result
    assert report["overall"]["recall@20"] == 1.0
    rows = [json.loads(line) for line in (out / "locomo-raw-questions.jsonl").read_text()
            .splitlines()]
    guinea = next(r for r in rows if r["question"] == "What is the name of Ben's guinea pig?")
    assert "D1:2" in guinea["top"][guinea["first_rank"] - 1]
    # every hit maps to a turn of its own conversation, never to the other one's
    motorbike = next(r for r in rows if r["sample_id"] == "conv-x")
    assert all(ids and set(ids) <= {"D1:1", "D1:2"} for ids in motorbike["top"])
    # a distinctive question finds its one evidence turn first
    assert motorbike["first_rank"] == 1


def test_timing_and_configuration_are_recorded(
    run_result: tuple[dict[str, Any], Path, list[Path]],
) -> None:
    report, _, db_paths = run_result
    ingest = report["timing"]["ingest"]
    assert ingest["turns"] == 9 and ingest["add_calls"] == 3
    assert ingest["turns_per_s"] > 0
    assert report["timing"]["query"]["n"] == 6
    config = report["config"]
    assert config["mode"] == "raw" and config["infer"] is False
    assert config["search_limit"] == 20 and config["search_plan"]["limit"] == 20
    assert config["settings"]["db_path"] == str(db_paths[0])
    assert [Path(f).name for f in config["data_files"]] == [RELEASED.name, TINY.name]
    assert all(len(f["sha256"]) == 64 for f in config["data_fingerprints"])
    # the temporary database is gone after the run
    assert not db_paths[0].exists()


def test_unknown_mode_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        locomo.run([TINY], mode="magic", out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
