"""Every entry point refuses bad input with a typed error and leaves the store unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memsvc import (
    EmptyTextError,
    EncodingError,
    InvalidFilterError,
    InvalidInputError,
    InvalidTimestampError,
    Memory,
    MemsvcError,
    NotFoundError,
    ScopeRequiredError,
    TextTooLargeError,
)
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings

UNKNOWN_ID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def snapshot(memory: Memory) -> dict[str, Any]:
    """Everything a caller could observe of the store."""
    records = [r.model_dump() for r in memory.export()]
    histories = {r["id"]: [h.model_dump() for h in memory.history(r["id"])] for r in records}
    stats = memory.stats().model_dump()
    stats.pop("size_bytes")
    return {
        "records": records,
        "histories": histories,
        "messages": [m.model_dump() for m in memory.messages(user_id="u1")],
        "stats": stats,
        "consistency": memory.store.consistency(),
    }


@pytest.fixture
def seeded(memory: Memory) -> Memory:
    memory.add(
        [{"role": "user", "name": "Ann", "content": "I live in Boston"},
         {"role": "user", "name": "Ann", "content": "I like jazz"}],
        user_id="u1",
        metadata={"topic": "life"},
    )
    return memory


def _first_id(m: Memory) -> str:
    return m.get_all(user_id="u1").items[0].id


BAD_CALLS: dict[str, tuple[type[MemsvcError], Callable[[Memory], object]]] = {
    "empty text": (EmptyTextError, lambda m: m.add("", user_id="u1")),
    "whitespace text": (EmptyTextError, lambda m: m.add(" \n\t ", user_id="u1")),
    "empty message in a batch": (
        EmptyTextError,
        lambda m: m.add([{"role": "user", "content": "fine"}, {"role": "user", "content": " "}],
                        user_id="u1"),
    ),
    "text over the size limit": (TextTooLargeError, lambda m: m.add("x" * 40_000, user_id="u1")),
    "non-UTF-8 bytes": (EncodingError, lambda m: m.add(b"caf\xe9 \xff", user_id="u1")),
    "lone surrogate": (EncodingError, lambda m: m.add("bad \udcff text", user_id="u1")),
    "NUL character": (EncodingError, lambda m: m.add("a\x00b", user_id="u1")),
    "no scope at all": (ScopeRequiredError, lambda m: m.add("hello")),
    "blank scope id": (InvalidInputError, lambda m: m.add("hello", user_id="  ")),
    "unparseable timestamp": (
        InvalidTimestampError, lambda m: m.add("hello", user_id="u1", timestamp="next tuesdayish")
    ),
    "unparseable message timestamp": (
        InvalidTimestampError,
        lambda m: m.add([{"role": "user", "content": "hi", "timestamp": "32/13/2023"}],
                        user_id="u1"),
    ),
    "unknown role": (
        InvalidInputError, lambda m: m.add([{"role": "wizard", "content": "hi"}], user_id="u1")
    ),
    "unknown message field": (
        InvalidInputError,
        lambda m: m.add([{"role": "user", "content": "hi", "colour": "red"}], user_id="u1"),
    ),
    "metadata not an object": (
        InvalidInputError, lambda m: m.add("hello", user_id="u1", metadata=["a"])  # type: ignore
    ),
    "empty message list": (InvalidInputError, lambda m: m.add([], user_id="u1")),
    "search with empty query": (EmptyTextError, lambda m: m.search("  ", user_id="u1")),
    "search with no scope": (ScopeRequiredError, lambda m: m.search("jazz")),
    "search with unknown operator": (
        InvalidFilterError, lambda m: m.search("jazz", user_id="u1", filters={"n": {"approx": 1}})
    ),
    "search with 'in' not a list": (
        InvalidFilterError, lambda m: m.search("jazz", user_id="u1", filters={"n": {"in": 3}})
    ),
    "search with empty OR": (
        InvalidFilterError, lambda m: m.search("jazz", user_id="u1", filters={"OR": []})
    ),
    "search with a bad date in a range": (
        InvalidFilterError,
        lambda m: m.search("jazz", user_id="u1", filters={"created_at": {"gte": "soon"}}),
    ),
    "search with a filter that is not an object": (
        InvalidFilterError, lambda m: m.search("jazz", user_id="u1", filters=["kind"])  # type: ignore
    ),
    "search with an injection-looking metadata key": (
        InvalidFilterError,
        lambda m: m.search("jazz", user_id="u1", filters={"metadata.a') OR 1=1 --": 1}),
    ),
    "search with unknown kind": (
        InvalidInputError, lambda m: m.search("jazz", user_id="u1", kinds=["gossip"])
    ),
    "search with zero limit": (
        InvalidInputError, lambda m: m.search("jazz", user_id="u1", limit=0)
    ),
    "search with bad as_of": (
        InvalidTimestampError, lambda m: m.search("jazz", user_id="u1", as_of="yesterday-ish")
    ),
    "search with unknown plan": (
        InvalidInputError, lambda m: m.search("jazz", user_id="u1", plan="turbo")
    ),
    "get unknown id": (NotFoundError, lambda m: m.get(UNKNOWN_ID)),
    "get empty id": (InvalidInputError, lambda m: m.get("")),
    "update unknown id": (NotFoundError, lambda m: m.update(UNKNOWN_ID, "new text")),
    "update with empty text": (EmptyTextError, lambda m: m.update(_first_id(m), "   ")),
    "update with nothing": (InvalidInputError, lambda m: m.update(_first_id(m))),
    "update with importance out of range": (
        InvalidInputError, lambda m: m.update(_first_id(m), importance=3.0)
    ),
    "delete unknown id": (NotFoundError, lambda m: m.delete(UNKNOWN_ID)),
    "hard delete unknown id": (NotFoundError, lambda m: m.delete(UNKNOWN_ID, hard=True)),
    "history of unknown id": (NotFoundError, lambda m: m.history(UNKNOWN_ID)),
    "delete_all with no scope": (ScopeRequiredError, lambda m: m.delete_all()),
    "get_all with bad filter": (
        InvalidFilterError, lambda m: m.get_all(user_id="u1", filters={"AND": "x"})
    ),
    "import a record that is not a memory": (
        InvalidInputError, lambda m: m.import_records([{"id": "x", "text": "no scope"}])
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_typed_error_and_changes_nothing(seeded: Memory, case: str) -> None:
    error, call = BAD_CALLS[case]
    before = snapshot(seeded)
    with pytest.raises(error) as info:
        call(seeded)
    assert info.value.message  # a clear message, not an empty exception
    assert snapshot(seeded) == before


def test_size_limit_is_configurable(
    db_path: Any, embedder: SentenceTransformerEmbedder
) -> None:
    with Memory(settings=Settings(db_path=db_path, max_text_bytes=10), embedder=embedder) as m:
        with pytest.raises(TextTooLargeError, match="limit is 10 bytes"):
            m.add("eleven chars", user_id="u1")
        assert m.add("ten bytes!", user_id="u1").results


def test_typed_errors_are_also_builtin_errors() -> None:
    """Callers that catch ValueError / KeyError keep working."""
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(NotFoundError, KeyError)
