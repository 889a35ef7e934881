"""Property tests of the REST API (issue 11, M4, the server's side of tests/memsvc's).

Every request here is made from a valid one by putting one hostile value into one field:
lone surrogates sent as JSON escapes (``"\\ud800"``, which Python decodes into a string no
encoder accepts), NUL and other control characters, integers far beyond 64 bits (and beyond
Python's 4300-digit parsing limit), NaN and Infinity (which Python's JSON parser accepts),
JSON nested thousands deep or thousands wide, and timestamps that are not times or fall
outside years 1..9999 once in UTC, in every timestamp field. The rule: the answer is a 4xx
with a JSON error body (code, message), never a 5xx, and the store is exactly as before
(export and counts compared). The server is a real uvicorn on 127.0.0.1 over a real store.
Requests are sent as raw bytes, so the hostile JSON reaches the server as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.serving.app import create_app
from memsvc.serving.server import BackgroundServer

NO_LLM = "http://127.0.0.1:9"
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

# -- hostile JSON values (as JSON text), by the kind of field they go into ------------------

BAD_CHARS = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00"]


def _with(chars: list[str]) -> st.SearchStrategy[str]:
    """Some text with at least one of `chars` in it, as a JSON string (escapes kept)."""
    return st.tuples(st.text(max_size=8), st.sampled_from(chars), st.text(max_size=8)).map(
        lambda t: json.dumps(t[0] + t[1] + t[2]))  # ensure_ascii: "\ud800" stays an escape


def _deep(depth: int, open_: str = '{"a":', close: str = "}") -> str:
    return open_ * depth + "1" + close * depth


BEYOND_64_BITS = st.one_of(
    st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1),
    st.sampled_from(["9" * 400, "1" * 5000, "-" + "7" * 4400]),  # 5000 digits: past Python's
).map(str)                                                      # int-parsing limit
NOT_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
DEEP = st.integers(33, 5000).map(_deep)
DEEP_LIST = st.integers(33, 5000).map(lambda d: _deep(d, "[", "]"))
WIDE = st.integers(8000, 20000).map(  # over metadata's 64 KiB
    lambda n: "{" + ",".join(f'"k{i}": {i}' for i in range(n)) + "}")

HOSTILE: dict[str, st.SearchStrategy[str]] = {
    # ids and scope: no surrogates, no control characters, at most 256 characters, not empty
    # (not whitespace: an id is stripped, so "\n" at its edge is legitimately dropped)
    "id": st.one_of(_with([*BAD_CHARS, "\x01", "\x08", "\x7f"]),
                    st.sampled_from(['""', '"   "', json.dumps("x" * 300), "12", "[]", "{}"])),
    # text: no surrogates or NUL, not blank, within the size limit
    "text": st.one_of(_with(BAD_CHARS),
                      st.sampled_from(['""', '"  \\n\\t "', json.dumps("y" * 40_000), "12",
                                       "null", "[]"])),
    "time": st.one_of(
        st.sampled_from(['"2024-13-45"', '"yesterday"', '"0001-01-01T00:00:00+01:00"',
                         '"9999-12-31T23:59:59-01:00"', '"2024-01-01T25:00"', '""',
                         '"\\ud800"', '"2024-01-01\\u0000"', "[]", "{}", "1e20", "-1e20"]),
        NOT_FINITE, BEYOND_64_BITS),
    "int": st.one_of(BEYOND_64_BITS, NOT_FINITE,
                     st.sampled_from(["0", "-1", "1.5", "[]", "{}", '"ten"', "null"])),
    "float": st.one_of(NOT_FINITE, st.sampled_from(["-0.5", "1e300", "[]", '"x"'])),
    "finite": st.one_of(NOT_FINITE, st.sampled_from(["[]", '"x"', "null"])),
    "metadata": st.one_of(
        DEEP, DEEP_LIST.map(lambda d: '{"a": ' + d + "}"), WIDE,
        _with(BAD_CHARS[:4]).map(lambda s: "{" + s + ": 1}"),  # a lone surrogate in a key
        _with(BAD_CHARS[:4]).map(lambda s: '{"a": ' + s + "}"),
        BEYOND_64_BITS.map(lambda n: '{"a": ' + n + "}"),
        NOT_FINITE.map(lambda n: '{"a": [' + n + "]}"),
        st.sampled_from(['{"": 1}', "[1]", '"text"', "5"])),
    "filters": st.one_of(
        st.integers(9, 3000).map(lambda d: '{"NOT": ' * d + '{"kind": "fact"}' + "}" * d),
        st.integers(257, 3000).map(
            lambda n: '{"AND": [' + ",".join(f'{{"metadata.k{i}": {i}}}' for i in range(n))
            + "]}"),
        _with(BAD_CHARS[:4]).map(lambda s: "{" + s + ": 1}"),
        NOT_FINITE.map(lambda n: '{"importance": {"gt": ' + n + "}}"),
        BEYOND_64_BITS.map(lambda n: '{"version": {"gt": ' + n + "}}"),
        st.sampled_from(['{"a": {"like": 1}}', "[1]", '{"created_at": {"gt": "garbage"}}',
                         '{"metadata.a": {"in": []}}', '{"kind": {"in": [[]]}}'])),
    "ids": st.one_of(_with([*BAD_CHARS, "\x01"]), st.just("1")).map(
        lambda v: "[" + v + "]") | st.sampled_from(['"notalist"', "{}", "[[]]"]),
    "steps": st.sampled_from(['["bogus"]', '["\\ud800"]', "[]", '"retry"', "[1]"]),
    "config": st.one_of(
        NOT_FINITE.map(lambda n: '{"merge_threshold": ' + n + "}"),
        BEYOND_64_BITS.map(lambda n: '{"max_retry_attempts": ' + n + "}"),
        st.sampled_from(['{"bogus": 1}', '{"merge_threshold": -3}', '{"half_life_days": 0}',
                         '{"archive_below": 2}', '{"summary_sentences": -1}'])),
    "record": st.one_of(
        _with(BAD_CHARS[:4]).map(lambda s: '[{"id": ' + s + "}]"),
        DEEP_LIST.map(lambda d: "[" + d + "]"),
        st.sampled_from(['[1]', '["x"]', '[{}]', '[{"text": "\\ud800", "scope": {}}]'])),
}


# -- the requests: a valid body with one field (@) made hostile -----------------------------

MEMORY_ID = "@id@"  # replaced by a real memory id of the seed data
BODY_CASES: list[tuple[str, str, str, str]] = [
    # (method, path, body with @ for the hostile value, kind of the value)
    ("POST", "/v1/memories", '{"messages": @, "user_id": "u1"}', "text"),
    ("POST", "/v1/memories", '{"messages": [{"role": "user", "content": @}], "user_id": "u1"}',
     "text"),
    ("POST", "/v1/memories", '{"messages": [{"content": "hi", "name": @}], "user_id": "u1"}',
     "id"),
    ("POST", "/v1/memories", '{"messages": [{"content": "hi", "timestamp": @}], '
     '"user_id": "u1"}', "time"),
    ("POST", "/v1/memories", '{"messages": "hi", "user_id": @}', "id"),
    ("POST", "/v1/memories", '{"messages": "hi", "user_id": "u1", "agent_id": @}', "id"),
    ("POST", "/v1/memories", '{"messages": "hi", "user_id": "u1", "session_id": @}', "id"),
    ("POST", "/v1/memories", '{"messages": "hi", "user_id": "u1", "metadata": @}', "metadata"),
    ("POST", "/v1/memories", '{"messages": "hi", "user_id": "u1", "timestamp": @}', "time"),
    ("POST", "/v1/memories", '{"messages": "I live in Oslo", "user_id": "u1", "infer": true, '
     '"background": true, "timestamp": @}', "time"),
    ("POST", "/v1/memories", '{"messages": "I live in Oslo", "user_id": "u1", "infer": true, '
     '"background": true, "metadata": @}', "metadata"),
    ("POST", "/v1/search", '{"query": @, "user_id": "u1"}', "text"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": @}', "id"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", "filters": @}', "filters"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", "limit": @}', "int"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", "as_of": @}', "time"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", "now": @}', "time"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", '
     '"plan": {"channels": {"vector": {"k": @}}}}', "int"),
    ("POST", "/v1/search", '{"query": "oslo", "user_id": "u1", '
     '"plan": {"channels": {"vector": {"weight": @}}}}', "finite"),
    ("POST", "/v1/context", '{"query": "oslo", "user_id": "u1", "max_tokens": @}', "int"),
    ("POST", "/v1/context", '{"query": "oslo", "user_id": "u1", "as_of": @}', "time"),
    ("POST", "/v1/context", '{"query": "oslo", "user_id": "u1", "filters": @}', "filters"),
    ("PATCH", f"/v1/memories/{MEMORY_ID}", '{"text": @}', "text"),
    ("PATCH", f"/v1/memories/{MEMORY_ID}", '{"metadata": @}', "metadata"),
    ("PATCH", f"/v1/memories/{MEMORY_ID}", '{"importance": @}', "float"),
    ("POST", "/v1/consolidate", '{"user_id": "u1", "now": @}', "time"),
    ("POST", "/v1/consolidate", '{"user_id": @}', "id"),
    ("POST", "/v1/consolidate", '{"user_id": "u1", "steps": @}', "steps"),
    ("POST", "/v1/consolidate", '{"user_id": "u1", "config": @}', "config"),
    ("POST", "/v1/infer", '{"message_ids": @, "user_id": "u1"}', "ids"),
    ("POST", "/v1/import", '{"records": @}', "record"),
    ("POST", "/v1/chat", '{"message": @, "user_id": "u1"}', "text"),
    ("POST", "/v1/chat", '{"message": "hi", "user_id": @}', "id"),
    ("POST", "/v1/chat", '{"message": "hi", "user_id": "u1", "session_id": @}', "id"),
    ("POST", "/v1/chat", '{"message": "hi", "user_id": "u1", "limit": @}', "int"),
    ("POST", "/v1/chat", '{"message": "hi", "user_id": "u1", "max_tokens": @}', "int"),
    ("POST", "/v1/chat", '{"message": "hi", "user_id": "u1", "temperature": @}', "float"),
]

# query strings and paths carry bytes: a lone surrogate is invalid UTF-8 (%ED%A0%80)
Q_ID = st.sampled_from(["%ED%A0%80", "%00", "a%01b", "%FF", "x" * 300, "", "%20%20"])
Q_INT = st.sampled_from(["0", "-1", "1" * 5000, "1e3", "NaN", "abc", str(2**64)])
Q_FILTERS = st.one_of(  # as HOSTILE["filters"], small enough for a URL
    st.integers(9, 400).map(lambda d: '{"NOT": ' * d + '{"kind": "fact"}' + "}" * d),
    st.integers(1100, 2000).map(lambda d: '{"a": ' * d + "1" + "}" * d),  # past json's stack
    NOT_FINITE.map(lambda n: '{"importance": {"gt": ' + n + "}}"),
    BEYOND_64_BITS.map(lambda n: '{"version": {"gt": ' + n + "}}"),
    st.sampled_from(['{"a": {"like": 1}}', "[1]", "{not json", '{"\\ud800": 1}']),
).map(lambda f: quote(f, safe=""))
QUERY_CASES: list[tuple[str, str, st.SearchStrategy[str]]] = [
    ("GET", "/v1/memories?user_id=@", Q_ID),
    ("GET", "/v1/memories?user_id=u1&limit=@", Q_INT),
    ("GET", "/v1/memories?user_id=u1&cursor=@", Q_ID),
    ("GET", "/v1/memories?user_id=u1&filters=@", Q_FILTERS),
    ("GET", "/v1/messages?user_id=@", Q_ID),
    ("GET", "/v1/messages?user_id=u1&limit=@", Q_INT),
    ("GET", "/v1/export?user_id=@", Q_ID),
    ("DELETE", "/v1/memories?user_id=@", Q_ID),
    ("DELETE", "/v1/users/@", Q_ID.filter(lambda v: v not in ("", "%20%20"))),
    ("GET", "/v1/memories/@", Q_ID.filter(bool)),
    ("DELETE", "/v1/memories/@?hard=true", Q_ID.filter(bool)),
    ("GET", "/v1/memories/@/history", Q_ID.filter(bool)),
    ("GET", f"/v1/memories/{MEMORY_ID}/graph?max_memories=@", Q_INT),
]


@st.composite
def hostile_request(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
    if draw(st.integers(0, len(BODY_CASES) + len(QUERY_CASES) - 1)) < len(BODY_CASES):
        method, path, template, kind = draw(st.sampled_from(BODY_CASES))
        body = template.replace("@", draw(HOSTILE[kind]), 1)
        return method, path, body.encode("utf-8")
    method, path, values = draw(st.sampled_from(QUERY_CASES))
    return method, path.replace("@", draw(values), 1), None


# -- the server -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Memory, str, str]]:
    db = Path(tmp_path_factory.mktemp("rest-props")) / "p.db"
    memory = Memory(settings=Settings(db_path=db, llm_base_url=NO_LLM), embedder=embedder)
    added = memory.add("I live in Oslo and I love skiing.", user_id="u1", session_id="s1",
                       infer=True)
    memory.add("My brother Tom lives in Bergen.", user_id="u2", infer=True)
    memory_id = next(c.id for c in added.results if c.kind.value != "episode")
    with BackgroundServer(create_app(memory)) as server:
        yield memory, server.url, memory_id
    memory.close()


def _state(memory: Memory) -> tuple[list[str], tuple[int, int, int]]:
    stats = memory.stats()
    return ([r.model_dump_json() for r in memory.export()],
            (stats.memories, stats.messages, stats.history))


@PROPERTY
@given(request=hostile_request())
def test_a_hostile_value_is_a_4xx_and_changes_nothing(
    served: tuple[Memory, str, str], request: tuple[str, str, bytes | None]
) -> None:
    memory, url, memory_id = served
    method, path, body = request
    path = path.replace(MEMORY_ID, memory_id)
    before = _state(memory)
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.request(method, path, content=body,
                         headers={"Content-Type": "application/json"} if body else {})
    shown = (body or b"")[:300]
    assert 400 <= r.status_code < 500, (method, path[:300], shown, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error = r.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert _state(memory) == before, (method, path[:300], shown)


@pytest.mark.parametrize("method, path, body", [
    # what the property found first (500s, or a hostile value accepted), kept as examples
    ("POST", "/v1/consolidate", b'{"user_id": "u1", "config": {"half_life_days": 0}}'),
    ("POST", "/v1/consolidate", b'{"user_id": "u1", "config": {"merge_threshold": NaN}}'),
    ("POST", "/v1/consolidate", b'{"user_id": "u1", "config": {"summary_sentences": 2.5}}'),
    ("POST", "/v1/search", b'{"query": "oslo", "user_id": "u1", '
                           b'"plan": {"channels": {"vector": {"weight": NaN}}}}'),
    ("GET", "/v1/memories?user_id=u1&filters=" + quote('{"version": {"gt": ' + "1" * 5000
                                                       + "}}", safe=""), None),
    ("GET", "/v1/memories?user_id=u1&filters=" + quote('{"a": ' * 1500 + "1" + "}" * 1500,
                                                       safe=""), None),
    ("GET", "/v1/memories?user_id=%ED%A0%80", None),
    ("GET", "/v1/messages?user_id=%FF", None),
    ("GET", "/v1/memories/%ED%A0%80", None),
])
def test_found_by_the_property(
    served: tuple[Memory, str, str], method: str, path: str, body: bytes | None
) -> None:
    memory, url, _ = served
    before = _state(memory)
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.request(method, path, content=body,
                         headers={"Content-Type": "application/json"} if body else {})
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"], (r.status_code, r.text)
    assert _state(memory) == before


def test_the_cases_cover_every_writing_route_and_timestamp_field() -> None:
    """The property above is only as good as its cases: each route that writes, and each
    field that takes a time, gets hostile values."""
    routes = {(m, p) for m, p, _, _ in BODY_CASES} | {
        (m, p.split("?")[0]) for m, p, _ in QUERY_CASES}
    for route in [("POST", "/v1/memories"), ("PATCH", f"/v1/memories/{MEMORY_ID}"),
                  ("POST", "/v1/import"), ("POST", "/v1/consolidate"), ("POST", "/v1/infer"),
                  ("POST", "/v1/chat"), ("DELETE", "/v1/memories"), ("DELETE", "/v1/users/@")]:
        assert route in routes, route
    timed = {t.split("@")[0].rsplit('"', 2)[-2] for _, _, t, k in BODY_CASES if k == "time"}
    assert timed == {"timestamp", "as_of", "now"}
