"""The LLM extractor against a recorded OpenAI-compatible fake (a real HTTP server on
127.0.0.1 replaying hand-written chat-completion bodies from `recordings/`; no model runs).

What is checked: the request asks for strict JSON-schema output and batches turns; a valid
reply becomes candidates with the extractor recorded; a malformed reply is retried once; a
reply still malformed after the retry, or a server that is down, falls back to the rules and
says so; and none of the malformed content ever reaches the store.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from fake_openai import FakeOpenAI, completion, recording

from memsvc import Memory
from memsvc.extractors.llm import LLMExtractor
from memsvc.llm.client import LLMClient
from memsvc.model.records import MemoryKind, Scope, StoredMessage
from memsvc.model.settings import Settings

SAID = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TURNS = [
    ("Caroline", "I went to a LGBTQ support group yesterday and it was so powerful."),
    ("Melanie", "Yeah, I painted that lake sunrise last year! It's special to me."),
    ("Caroline", "I live in Boston these days."),
]


def messages() -> list[StoredMessage]:
    return [
        StoredMessage(id=f"m{i}", scope=Scope(user_id="u"), role="user", name=name,
                      content=text, timestamp=SAID, created_at=SAID)
        for i, (name, text) in enumerate(TURNS, start=1)
    ]


def extractor(url: str, batch_size: int = 8) -> LLMExtractor:
    return LLMExtractor(LLMClient(url, model="recorded"), batch_size=batch_size)


def test_valid_reply_becomes_candidates_and_request_is_schema_constrained():
    with FakeOpenAI(recording("extraction_ok.json")).running() as fake:
        out = extractor(fake.url).extract(messages())
    assert len(fake.requests) == 1  # three turns, one call
    request = fake.requests[0]
    fmt = request["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert "[3] (2023-05-08) Caroline: I live in Boston" in request["messages"][-1]["content"]
    assert [c.source_message_ids for c in out] == [["m1"], ["m2"], ["m3"]]
    event = out[0]
    assert event.kind is MemoryKind.EVENT
    assert event.valid_from == datetime(2023, 5, 7, tzinfo=UTC)
    assert "(7 May 2023)" in event.text
    assert out[1].metadata["aliases"] == {"Mel": "Melanie"}
    assert (out[2].subject, out[2].predicate, out[2].object) == ("Caroline", "lives_in", "Boston")
    assert all(c.metadata["extractor"] == "llm/1:recorded" for c in out)


def test_batches_several_turns_per_call():
    replies = [completion('{"memories": []}')] * 2
    with FakeOpenAI(replies).running() as fake:
        extractor(fake.url, batch_size=2).extract(messages())
    assert len(fake.requests) == 2
    assert "[2]" in fake.requests[0]["messages"][-1]["content"]
    assert "[2]" not in fake.requests[1]["messages"][-1]["content"]


def test_malformed_reply_is_retried_once_with_the_error():
    with FakeOpenAI(recording("malformed_then_ok.json")).running() as fake:
        ex = extractor(fake.url)
        out = ex.extract(messages())
    assert len(fake.requests) == 2
    assert "rejected" in fake.requests[1]["messages"][-1]["content"]
    assert ex.stats["retries"] == 1 and ex.stats["fallbacks"] == 0
    assert len(out) == 3 and all(c.metadata["extractor"].startswith("llm/") for c in out)


def test_malformed_twice_falls_back_to_rules_and_records_it():
    with FakeOpenAI(recording("malformed_twice.json")).running() as fake:
        ex = extractor(fake.url)
        out = ex.extract(messages())
    assert len(fake.requests) == 2  # one try, one retry, no more
    assert ex.stats["fallbacks"] == 1
    assert out, "the rules still extract"
    assert all(c.metadata["extractor"] == "rules/1" for c in out)
    assert all("turns [7]" in c.metadata["fallback"]["reason"] for c in out)
    assert not any("invented" in c.text for c in out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_falls_back_without_retrying():
    ex = extractor(f"http://127.0.0.1:{_free_port()}")
    out = ex.extract(messages())
    assert ex.stats == {"calls": 1, "retries": 0, "fallbacks": 1}
    assert out and all(c.metadata["fallback"]["reason"].startswith("LLMUnavailableError")
                       for c in out)


def test_http_500_falls_back(tmp_path):
    with FakeOpenAI([500, 500]).running() as fake:
        out = extractor(fake.url).extract(messages())
    assert out and all(c.metadata["extractor"] == "rules/1" for c in out)


def test_malformed_reply_never_reaches_the_store(tmp_path, embedder):
    replies = recording("malformed_twice.json")
    with FakeOpenAI(replies).running() as fake, Memory(
        settings=Settings(db_path=tmp_path / "m.db"), embedder=embedder,
        extractor=extractor(fake.url),
    ) as m:
        result = m.add([{"role": "user", "name": n, "content": t, "timestamp": SAID}
                        for n, t in TURNS], user_id="u", infer=True)
        stored = m.get_all(user_id="u", limit=100).items
    assert len(result.message_ids) == 3
    texts = " ".join(r.text for r in stored)
    assert "invented" not in texts and "oops" not in texts
    assert sum(r.kind is MemoryKind.EPISODE for r in stored) == 3
    extracted = [r for r in stored if r.kind is not MemoryKind.EPISODE]
    assert extracted
    assert all(r.provenance.extractor == "rules" for r in extracted)
    assert all(r.metadata["fallback"]["from"] == "llm/1:recorded" for r in extracted)


def test_llm_memories_record_extractor_name_and_version(tmp_path, embedder):
    with FakeOpenAI(recording("extraction_ok.json")).running() as fake, Memory(
        settings=Settings(db_path=tmp_path / "m.db"), embedder=embedder,
        extractor=extractor(fake.url),
    ) as m:
        m.add([{"role": "user", "name": n, "content": t, "timestamp": SAID} for n, t in TURNS],
              user_id="u", infer=True)
        extracted = [r for r in m.get_all(user_id="u", limit=100).items
                     if r.kind is not MemoryKind.EPISODE]
    assert len(extracted) == 3
    assert {(r.provenance.extractor, r.provenance.extractor_version) for r in extracted} == {
        ("llm", "1:recorded")
    }


def test_model_name_is_discovered_from_the_server_when_not_configured():
    with FakeOpenAI(recording("extraction_ok.json")).running() as fake:
        ex = LLMExtractor(LLMClient(fake.url))  # no model given: /v1/models names it
        assert ex.version == "1:unknown"
        out = ex.extract(messages())
    assert ex.version == "1:recorded" and fake.requests[0]["model"] == "recorded"
    assert len(out) == 3 and all(c.metadata["extractor"] == "llm/1:recorded" for c in out)
    assert fake.requests[0]["response_format"]["json_schema"]["name"] == "memories"


def test_reply_cut_off_at_max_tokens_is_retried_then_falls_back():
    cut = completion('{"memories": [{"turn": 1, "kind": "fact", "text": "Caro', "length")
    with FakeOpenAI([cut, cut]).running() as fake:
        ex = extractor(fake.url)
        out = ex.extract(messages())
    assert len(fake.requests) == 2 and ex.stats["fallbacks"] == 1
    assert all("cut off" in c.metadata["fallback"]["reason"] for c in out)


def test_llm_outage_is_marked_and_a_later_consolidation_retries_with_the_llm(tmp_path, embedder):
    """Issue 5's fault path: the LLM is down at write time, the rules stand in and the turn is
    marked; once the LLM is back, consolidation extracts it again with the LLM."""
    turn = {"role": "user", "name": "Caroline", "content": TURNS[2][1], "timestamp": SAID}
    down = extractor(f"http://127.0.0.1:{_free_port()}")
    with Memory(settings=Settings(db_path=tmp_path / "m.db"), embedder=embedder,
                extractor=down) as m:
        m.add([turn], user_id="u", infer=True)
        (episode,) = m.get_all(user_id="u", kinds=["episode"]).items
        mark = episode.metadata["extraction"]
        assert mark["status"] == "fallback" and mark["retry"] is True
        assert "LLMUnavailableError" in mark["error"]
        assert "degraded" in (m.history(episode.id)[-1].reason or "")

        reply = completion(
            '{"memories": [{"turn": 1, "kind": "fact", "text": "Caroline lives in Boston", '
            '"date": null, "subject": "Caroline", "predicate": "lives_in", "object": "Boston", '
            '"entities": ["Caroline", "Boston"], "aliases": []}]}'
        )
        with FakeOpenAI([reply]).running() as fake:
            m.extractor = extractor(fake.url)
            report = m.consolidate(user_id="u", steps=["retry"])
            again = m.consolidate(user_id="u", steps=["retry"])
        assert report.retried == 1 and again.retried == 0
        assert len(fake.requests) == 1
        decided = {c.text: c.event.value for c in report.changes if c.id != episode.id}
        # the LLM's fact goes through the manager like any other: the rules already stored
        # the same triple, so it reinforces that memory instead of duplicating it
        assert decided.get("Caroline lives in Boston") in ("ADD", "NOOP")
        facts = m.get_all(user_id="u", filters={"predicate": "lives_in"}).items
        assert len(facts) == 1 and facts[0].object == "Boston"
        assert m.get(episode.id).metadata["extraction"]["status"] == "retried"
