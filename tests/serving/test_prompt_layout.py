"""Prompt layout for KV-cache reuse: what must stay byte-identical from turn to turn."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from dataclasses import dataclass
from enum import Enum

import pytest

from memsvc.serving.prompt_layout import (
    LAYOUT_SYSTEM_PROMPT,
    LayoutOptions,
    MemoryView,
    Turn,
    build_messages,
    build_prewarm_request,
    fit_history,
    format_date,
    normalize_text,
    prefix_fingerprint,
    profile_block,
    render_memories,
    to_memory_view,
)

SYSTEM = "You are a helpful assistant with a long-term memory."
PROFILE = [
    {"text": "Caroline lives in Boston.", "kind": "fact", "valid_from": "2023-05-01"},
    {"text": "Caroline prefers tea over coffee.", "kind": "preference"},
    {"text": "Caroline adopted a guinea pig named Oscar.", "kind": "event",
     "valid_from": dt.date(2023, 5, 20)},
]


def _serialize(messages: list[dict[str, str]]) -> bytes:
    """ChatML, as SmolLM2's template renders it: a prefix of the message list renders to a
    prefix of the bytes."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                   for m in messages).encode()


def _turn_memories(i: int) -> list[dict[str, str]]:
    return [{"text": f"Memory {i}-{j} about the week.", "kind": "episode",
             "valid_from": f"2023-06-{10 + j:02d}"} for j in range(3)]


def _conversation(options: LayoutOptions, turns: int = 5):
    history: list[Turn] = []
    builds = []
    for i in range(turns):
        build = build_messages(SYSTEM, PROFILE, history, f"Question number {i}?",
                               _turn_memories(i), options)
        builds.append(build)
        history += [Turn("user", f"Question number {i}?", context=build.context),
                    Turn("assistant", f"Answer number {i}.")]
    return builds


def test_memsvc_layout_whole_previous_prompt_is_a_prefix() -> None:
    builds = _conversation(LayoutOptions())
    for prev, cur in itertools.pairwise(builds):
        n = len(prev.messages)
        assert cur.messages[:n] == prev.messages
        assert _serialize(cur.messages).startswith(_serialize(prev.messages))
        assert cur.messages[n]["role"] == "assistant"
        assert cur.messages[n]["content"].startswith("Answer number")
        assert cur.stable_messages == n + 1


def test_memsvc_layout_without_replay_keeps_everything_before_per_turn_part() -> None:
    builds = _conversation(LayoutOptions(replay_context=False))
    for prev, cur in itertools.pairwise(builds):
        stable = prev.stable_messages
        assert cur.messages[:stable] == prev.messages[:stable]
        # the earlier user turn is replayed without its memory block
        replayed = cur.messages[stable]
        assert replayed["role"] == "user"
        assert "Memory" not in replayed["content"]


def test_order_system_profile_history_memories_message() -> None:
    history = [Turn("user", "hi"), Turn("assistant", "hello")]
    b = build_messages(SYSTEM, PROFILE, history, "Where do I live?",
                       [{"text": "Caroline moved to Boston.", "valid_from": "2023-04-30"}])
    assert [m["role"] for m in b.messages] == ["system", "user", "assistant", "user"]
    system = b.messages[0]["content"]
    assert system == SYSTEM  # the system message holds the system prompt and nothing else
    first = b.messages[1]["content"]  # the profile is a data block leading the first user turn
    assert first.index("<profile>") < first.index("Caroline prefers tea") < first.index(
        "</profile>") < first.index("hi")
    last = b.messages[-1]["content"]
    assert last.index("<memories>") < last.index("Caroline moved to Boston.") < last.index(
        "</memories>")
    assert last.index("Caroline moved to Boston.") < last.index("Where do I live?")
    assert last.endswith("Where do I live?")
    assert "Caroline moved to Boston." not in system  # memories are not in the head


def test_system_prompt_layout_puts_memories_in_system_and_changes_every_turn() -> None:
    opts = LayoutOptions(layout=LAYOUT_SYSTEM_PROMPT)
    builds = _conversation(opts, turns=3)
    assert "Memory 0-0" in builds[0].messages[0]["content"]
    assert builds[0].messages[0] != builds[1].messages[0]
    assert builds[1].messages[-1] == {"role": "user", "content": "Question number 1?"}
    assert builds[1].stable_messages == 0
    # history is replayed raw in that layout
    assert builds[2].messages[1] == {"role": "user", "content": "Question number 0?"}


def test_profile_rendering_is_order_independent_and_stable() -> None:
    expected = profile_block(PROFILE)
    for seed in range(5):
        shuffled = PROFILE[:]
        random.Random(seed).shuffle(shuffled)
        assert profile_block(shuffled) == expected
    # grouped by kind in the fixed order: preference before fact before event
    lines = expected.splitlines()
    assert lines == ["- Caroline prefers tea over coffee.", "- Caroline lives in Boston.",
                     "- Caroline adopted a guinea pig named Oscar."]


def test_profile_has_no_ids_scores_or_timestamps_that_change() -> None:
    @dataclass
    class Mem:
        text: str
        kind: str
        valid_from: dt.datetime | None
        id: str
        score: float
        created_at: dt.datetime

    a = [Mem("Likes   hiking\n", "preference", None, "01HX1", 0.9, dt.datetime.now())]
    b = [Mem("Likes hiking", "preference", None, "01HX2", 0.1, dt.datetime(2020, 1, 1))]
    assert profile_block(a) == profile_block(b) == "- Likes hiking"


def test_profile_mapping_sorted_by_key_and_string_normalized() -> None:
    assert profile_block({"name": "Caroline", "city": "Boston", "pet": None}) == \
        "- city: Boston\n- name: Caroline"
    assert profile_block("  Caroline  \r\n\r\n\r\nlikes tea  ") == "Caroline\n\nlikes tea"
    assert profile_block(None) == ""


def test_memories_chronological_deduplicated_undated_last() -> None:
    mems = [
        {"text": "Went to a concert.", "valid_from": "2023-07-02"},
        {"text": "Undated thing."},
        {"text": "Started painting.", "valid_from": dt.datetime(2023, 5, 1, 14, 30)},
        {"text": "went to a concert. ", "valid_from": "2023-07-02"},  # duplicate
    ]
    assert render_memories(mems).splitlines() == [
        "- [2023-05-01] (fact) Started painting.",
        "- [2023-07-02] (fact) Went to a concert.",
        "- (fact) Undated thing.",
    ]
    assert render_memories(list(reversed(mems))) != ""  # same set, any order ...
    assert sorted(render_memories(list(reversed(mems))).splitlines()) == sorted(
        render_memories(mems).splitlines())


def test_memory_views_from_objects_enums_and_strings() -> None:
    class Kind(Enum):
        FACT = "fact"

    @dataclass
    class Hit:
        text: str
        kind: Kind
        valid_from: dt.date

    v = to_memory_view(Hit("A fact.", Kind.FACT, dt.date(2023, 1, 2)))
    assert v == MemoryView("A fact.", "fact", "2023-01-02")
    assert to_memory_view("plain text") == MemoryView("plain text")
    assert to_memory_view({"memory": "mem0 style"}).text == "mem0 style"
    with pytest.raises(TypeError):
        to_memory_view({"kind": "fact"})
    assert format_date("2023-05-20T10:00:00+02:00") == "2023-05-20"


def test_build_is_deterministic() -> None:
    a = _conversation(LayoutOptions())
    b = _conversation(LayoutOptions())
    assert json.dumps([x.messages for x in a]) == json.dumps([x.messages for x in b])


def test_prewarm_request_is_the_head_of_every_request() -> None:
    req = build_prewarm_request(SYSTEM, PROFILE, "m", cache_salt="tenant-1")
    assert req["max_tokens"] == 1
    assert req["cache_salt"] == "tenant-1"
    assert [m["role"] for m in req["messages"]] == ["system", "user"]
    for build in _conversation(LayoutOptions(), turns=3):
        assert build.messages[0] == req["messages"][0]
        # the profile block leads the first user message: everything up to its end is shared
        assert _serialize(build.messages).startswith(_serialize(req["messages"])[
            : -len("<|im_end|>\n")])


def test_fingerprint_changes_only_with_the_head() -> None:
    f1 = prefix_fingerprint(SYSTEM, PROFILE)
    assert f1 == prefix_fingerprint(SYSTEM, list(reversed(PROFILE)))
    assert f1 != prefix_fingerprint(SYSTEM, [*PROFILE, {"text": "New fact."}])
    assert f1 == _conversation(LayoutOptions(), turns=1)[0].fingerprint


def test_fit_history_moves_the_cut_rarely() -> None:
    history = []
    for i in range(40):
        history += [Turn("user", f"user message {i} " + "x" * 40),
                    Turn("assistant", f"reply {i} " + "y" * 40)]
    cuts = []
    for n in range(2, len(history) + 1, 2):
        kept = fit_history(history[:n], budget_tokens=400, drop_quantum=8)
        assert kept[0].role == "user"
        assert sum(len(t.content) for t in kept) // 4 <= 420
        cuts.append(n - len(kept))
    # the start of the kept history changes far less often than once per turn
    assert len(set(cuts)) < len(cuts) / 3
    assert fit_history(history[:4], budget_tokens=10_000) == history[:4]


def test_normalize_text() -> None:
    assert normalize_text("a\t b \n\n\n\nc ") == "a b\n\nc"
    assert normalize_text("Cafe\u0301") == "Caf\u00e9"


def test_memories_already_shown_in_the_history_are_not_repeated() -> None:
    shared = {"text": "Caroline went to a pride parade.", "valid_from": "2023-06-01"}
    new = {"text": "Caroline started a painting class.", "valid_from": "2023-06-03"}
    first = build_messages(SYSTEM, PROFILE, [], "Hi", [shared])
    history = [Turn("user", "Hi", context=first.context), Turn("assistant", "Hello!")]
    second = build_messages(SYSTEM, PROFILE, history, "Anything new?", [shared, new])
    assert "pride parade" not in second.context
    assert "painting class" in second.context
    assert "pride parade" in second.messages[1]["content"]  # still visible in the history
    # all already shown: the new message goes alone, no empty memory header
    third = build_messages(SYSTEM, PROFILE, history, "Ok", [shared])
    assert third.context == "" and third.messages[-1]["content"] == "Ok"
    # the other options keep repeating them
    for opts in (LayoutOptions(skip_shown_memories=False), LayoutOptions(replay_context=False),
                 LayoutOptions(layout=LAYOUT_SYSTEM_PROMPT)):
        assert "pride parade" in build_messages(SYSTEM, PROFILE, history, "Anything new?",
                                                [shared, new], opts).context


def test_a_memory_whose_source_group_was_shown_is_not_repeated() -> None:
    """Turn one led with the fact, turn two's search leads with the episode it came from:
    the same evidence, so it is not shown again; an unrelated memory still is."""
    fact = {"text": "User moved to Boston in 2019.", "kind": "event", "valid_from": "2019-01-01"}
    episode = {"text": "I moved to Boston in 2019 and I still live there.", "kind": "episode",
               "valid_from": "2023-05-25"}
    other = {"text": "User loves hiking.", "kind": "preference", "valid_from": "2023-06-02"}
    first = build_messages(SYSTEM, PROFILE, [], "Hi", [fact])
    history = [Turn("user", "Hi", context=first.context), Turn("assistant", "Hello!")]
    second = build_messages(SYSTEM, PROFILE, history, "Where do I live?", [episode, other],
                            related=[[fact], []])
    assert "still live there" not in second.context
    assert "hiking" in second.context
    # without the group, the episode reads as new
    alone = build_messages(SYSTEM, PROFILE, history, "Where do I live?", [episode, other])
    assert "still live there" in alone.context
