"""`memsvc.write.extraction`: what an extractor may hand the manager; how a failure is contained."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from memsvc.extractors.base import Candidate
from memsvc.model.records import MemoryKind, Scope, StoredMessage
from memsvc.write.extraction import candidate_problem, run_extractor

AT = datetime(2023, 5, 8, tzinfo=UTC)
IDS = {"m1"}


def cand(**changes) -> Candidate:
    base = {"kind": MemoryKind.FACT, "text": "Alice lives in Boston.", "source_message_ids": ["m1"]}
    return Candidate(**{**base, **changes})


def test_a_well_formed_candidate_passes():
    assert candidate_problem(cand(valid_from=AT), IDS) is None


def test_malformed_candidates_are_named():
    assert "timezone" in (candidate_problem(cand(valid_from=datetime(2023, 5, 8)), IDS) or "")
    assert "valid_to" in (candidate_problem(cand(valid_from=AT, valid_to=AT), IDS) or "")
    assert "source" in (candidate_problem(cand(source_message_ids=[]), IDS) or "")
    assert "kind" in (candidate_problem(cand(kind=MemoryKind.PROFILE), IDS) or "")
    assert "within 0..1" in (candidate_problem(cand(confidence=3.0), IDS) or "")
    assert "not a Candidate" in (candidate_problem({"text": "x"}, IDS) or "")


class FailsOnce:
    """Raises on the whole batch; succeeds on single messages except 'bad'."""

    name = "fails-once"
    version = "0"

    def extract(self, messages: Sequence[StoredMessage]) -> list[Candidate]:
        if len(messages) > 1 or messages[0].content == "bad":
            raise ValueError("cannot")
        return [cand(source_message_ids=[messages[0].id], text=f"ok {messages[0].content}")]


def test_a_failing_batch_is_retried_one_message_at_a_time():
    messages = [
        StoredMessage(id=f"m{i}", scope=Scope(user_id="u"), role="user", name=None,
                      content=text, timestamp=AT, created_at=AT)
        for i, text in enumerate(["good", "bad", "fine"])
    ]
    outcome = run_extractor(FailsOnce(), messages)
    assert [c.text for c, _, _ in outcome.candidates] == ["ok good", "ok fine"]
    assert list(outcome.failures) == ["m1"]
    assert outcome.failures["m1"] == "ValueError: cannot"
