"""A memory's importance weighs on its rank: below the default it ranks lower, at or above
it the fused order stands; a turn that says nothing is stored with a low importance."""

from __future__ import annotations

from datetime import UTC, datetime

from memsvc import Memory
from memsvc.extractors.episode import EpisodeExtractor, importance_of
from memsvc.model.records import Scope, StoredMessage
from memsvc.retrievers.fusion import FusedHit
from memsvc.retrievers.importance import by_importance, rank_factor

WHEN = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def test_rank_factor_lowers_only_below_the_default_and_never_to_zero() -> None:
    assert rank_factor(0.5) == rank_factor(0.9) == 1.0
    assert rank_factor(0.25) == 0.5
    assert rank_factor(0.0) == rank_factor(-1.0) == 0.2


def test_by_importance_reranks_new_hits_and_leaves_unknown_ones_alone() -> None:
    hits = [FusedHit("chatter", 0.30), FusedHit("fact", 0.20), FusedHit("gone", 0.10)]
    importance = {"chatter": 0.1, "fact": 0.5}
    ranked = by_importance(hits, importance)
    assert [h.memory_id for h in ranked] == ["fact", "gone", "chatter"]
    assert [h.score for h in ranked] == [0.20, 0.10, 0.30 * 0.2]
    assert hits[0].score == 0.30  # the caller's hits are not changed


def _message(i: int, name: str, content: str) -> StoredMessage:
    return StoredMessage(id=f"m{i}", scope=Scope(user_id="u1"), role="user", name=name,
                         content=content, timestamp=WHEN, created_at=WHEN)


def test_episodes_that_say_little_get_less_importance_and_names_are_not_content() -> None:
    messages = [_message(0, "Ann Lee", "I signed up for a pottery class on Saturdays."),
                _message(1, "Bob", "Thanks, Ann!"),
                _message(2, "Bob", "Lee!")]
    full, thanks, bare = EpisodeExtractor().extract(messages)
    assert full.importance == 0.5
    assert thanks.importance == 0.2  # "thanks": one word, the first name does not count
    assert bare.importance == importance_of("") == 0.1  # nor does the surname
    assert importance_of("Thanks, Ann!") == 0.3  # not a known name: two words


def test_a_turn_that_says_nothing_ranks_below_one_that_answers(memory: Memory) -> None:
    memory.add(
        [{"role": "user", "name": "Ann", "content": "Bob, I took up running to de-stress."},
         {"role": "user", "name": "Bob", "content": "Nice, Ann!"},
         {"role": "user", "name": "Ann", "content": "The weather in Lisbon was sunny all week."}],
        user_id="u1", timestamp=WHEN, infer=False,
    )
    found = memory.search("What does Ann do?", user_id="u1", limit=3, plan="fast")
    texts = [h.memory.text for h in found.results]
    assert texts.index("Ann: Bob, I took up running to de-stress.") < texts.index(
        "Bob: Nice, Ann!")
    chatter = next(h for h in found.results if h.memory.text == "Bob: Nice, Ann!")
    assert chatter.memory.importance == 0.2  # "nice"
    assert chatter.channel_ranks["bm25"] == 1  # short, and it names Ann: it led a channel
