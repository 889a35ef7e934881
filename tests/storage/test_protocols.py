"""The store protocols: SQLiteStore implements every one of them, `open_store` picks the
backend from the location, and nothing outside storage/ imports a backend module."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typing_extensions import get_protocol_members

from memsvc.model.errors import InvalidInputError, StoreError
from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Scope
from memsvc.storage import open_key_store, open_store
from memsvc.storage.base import (
    AccessCounter,
    GraphReader,
    KeyStore,
    KeyStoreSource,
    LexicalSearch,
    MemoryStore,
    RecordStore,
    StoreDiagnostics,
    StoreTransfer,
    TenantViews,
    VectorSearch,
    VisibilityQuery,
    WriteBatch,
)
from memsvc.storage.factory import parse_location
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.sqlite import SQLiteStore

DIM = 8
NOW = datetime(2024, 1, 1, tzinfo=UTC)
STORE_PROTOCOLS = (RecordStore, VectorSearch, LexicalSearch, GraphReader, AccessCounter,
                   StoreDiagnostics, TenantViews, KeyStoreSource, StoreTransfer)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MemoryStore]:
    s = open_store(tmp_path / "p.db", tenant="acme", embedding_dim=DIM)
    yield s
    s.close()


def fact(text: str, user: str = "u1") -> MemoryRecord:
    return MemoryRecord(id=new_id(), scope=Scope(user_id=user), kind=MemoryKind.FACT, text=text,
                        created_at=NOW, updated_at=NOW, content_hash=content_hash("fact", text))


def vec(i: int = 0) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def members(protocol: type) -> list[str]:
    """The protocol's methods (its data members, like `tenant`, are checked by isinstance)."""
    return sorted(n for n in get_protocol_members(protocol) if callable(getattr(protocol, n, None)))


# -- SQLiteStore against the protocols ------------------------------------------------------


@pytest.mark.parametrize("protocol", [*STORE_PROTOCOLS, MemoryStore], ids=lambda p: p.__name__)
def test_sqlite_store_is_an_instance_of_every_store_protocol(
    store: MemoryStore, protocol: type
) -> None:
    assert isinstance(store, SQLiteStore)
    assert isinstance(store, protocol)


def test_memory_store_is_exactly_the_small_protocols_together() -> None:
    combined = set().union(*(get_protocol_members(p) for p in STORE_PROTOCOLS))
    assert get_protocol_members(MemoryStore) == combined
    assert {"tenant", "lexical_search", "for_tenant", "key_store"} <= combined
    assert "bm25_search" not in combined  # FTS5 syntax stays inside the SQLite backend


@pytest.mark.parametrize(
    ("protocol", "impl"),
    [*((p, SQLiteStore) for p in STORE_PROTOCOLS), (KeyStore, ApiKeyStore)],
    ids=lambda x: x.__name__,
)
def test_every_protocol_method_has_the_same_parameters_on_the_sqlite_backend(
    protocol: type, impl: type
) -> None:
    """isinstance checks names only; a renamed or reordered parameter must fail here."""
    names = members(protocol)
    assert names, protocol
    for name in names:
        wanted = inspect.signature(getattr(protocol, name)).parameters
        got = inspect.signature(getattr(impl, name)).parameters
        assert [(p.name, p.kind) for p in wanted.values()] == [
            (p.name, p.kind) for p in got.values()
        ], f"{impl.__name__}.{name}"


def test_a_tenant_view_sees_only_its_tenant_and_closing_it_keeps_the_store_open(
    store: MemoryStore,
) -> None:
    other = store.for_tenant("globex")
    assert isinstance(other, MemoryStore) and other.tenant == "globex"
    mine = fact("the rivers of Boston")
    store.apply(WriteBatch(inserts=[(mine, vec(1))]))
    query = VisibilityQuery(scope=Scope(user_id="u1"))
    assert other.lexical_search(query, "Boston rivers", 5) == []
    other.close()
    assert [h.memory_id for h in store.lexical_search(query, "Boston rivers", 5)] == [mine.id]


def test_lexical_search_takes_the_users_text_and_fts5_syntax_in_it_is_inert(
    store: MemoryStore,
) -> None:
    rec = fact("Caroline's dog chased a NEAR AND OR parade")
    store.apply(WriteBatch(inserts=[(rec, vec(2))]))
    query = VisibilityQuery(scope=Scope(user_id="u1"))
    for text in ('what did "Caroline\'s" dog do?', "dog* AND (near OR x) : ^", "NEAR(dog)"):
        assert [h.memory_id for h in store.lexical_search(query, text, 5)] == [rec.id], text
    assert store.lexical_search(query, "what is it, and why?", 5) == []  # stopwords only
    assert store.lexical_search(query, "", 5) == []


def test_the_fts5_query_string_is_unchanged() -> None:
    """BM25 results depend on this string: it must stay what retrievers/bm25.py built."""
    from memsvc.storage.sqlite.lexical import fts5_match

    assert fts5_match("Where did Caroline's dog go, Caroline?") == '"caroline" OR "dog" OR "go"'
    assert fts5_match("it's café naïve") == '"café" OR "naïve"'
    assert fts5_match('"x" AND y* NEAR(z)') == '"x" OR "y" OR "near" OR "z"'
    assert fts5_match("the and of") == ""


def test_the_store_hands_out_a_key_store_on_its_own_file(store: MemoryStore) -> None:
    keys = store.key_store()
    assert isinstance(keys, KeyStore)
    info, key = keys.create("ci", "acme")
    assert keys.resolve(key) == "acme" and keys.count_active() == 1
    keys.close()  # shares the store's pool: closing it must not close the store
    assert store.key_store().list()[0].id == info.id


# -- open_store / open_key_store -----------------------------------------------------------


def test_open_store_opens_sqlite_for_a_path_a_string_and_a_sqlite_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for location, expected in [
        (tmp_path / "a.db", tmp_path / "a.db"),
        (str(tmp_path / "b.db"), tmp_path / "b.db"),
        (f"sqlite:///{tmp_path / 'c.db'}", tmp_path / "c.db"),  # sqlite:////abs/c.db
        ("sqlite:///d.db", Path("d.db")),  # relative, as SQLAlchemy reads it
    ]:
        s = open_store(location, tenant="t1", embedding_dim=DIM)
        try:
            assert isinstance(s, SQLiteStore) and isinstance(s, MemoryStore)
            assert s.path == expected and s.tenant == "t1" and s.embedding_dim == DIM
        finally:
            s.close()
        assert expected.resolve().is_file()


def test_open_store_refuses_another_vector_width_with_a_store_error(tmp_path: Path) -> None:
    open_store(tmp_path / "w.db", tenant="t", embedding_dim=DIM).close()
    with pytest.raises(StoreError, match="8-dimensional"):
        open_store(tmp_path / "w.db", tenant="t", embedding_dim=16)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://memsvc:secret@/memsvc?host=/nonexistent-memsvc-socket-dir",
    "postgresql://memsvc:secret@localhost/memsvc",
    "POSTGRESQL+psycopg://memsvc:secret@/d?host=/nonexistent-memsvc-socket-dir",
])
def test_postgres_locations_go_to_postgres_and_fail_cleanly_when_unreachable(url: str) -> None:
    assert parse_location(url).backend == "postgresql"
    for opener in (lambda: open_store(url, tenant="t", embedding_dim=DIM),
                   lambda: open_key_store(url, embedding_dim=DIM)):
        with pytest.raises(StoreError) as err:
            opener()
        assert "secret" not in str(err.value)  # never echo a password


@pytest.mark.parametrize("location", [
    "", "   ", "mysql://u@h/db", "http://example.com/m.db", "redis://localhost",
    "sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "sqlite://host/x.db",
    "sqlite:/x.db", Path("sqlite:///x.db"),
])
def test_bad_locations_are_refused_with_invalid_input(location: str | Path) -> None:
    with pytest.raises(InvalidInputError) as err:
        open_store(location, tenant="t", embedding_dim=DIM)
    assert err.value.field == "location"


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="directory"):
        open_store(tmp_path, tenant="t", embedding_dim=DIM)
    with pytest.raises(InvalidInputError, match="directory"):
        open_key_store(str(tmp_path))


def test_open_key_store_works_on_a_file_of_any_vector_width(tmp_path: Path) -> None:
    """`memsvc keys` does not know the embedder; it must not trip over the stored width."""
    path = tmp_path / "k.db"
    s = open_store(path, tenant="default", embedding_dim=DIM)  # not the default 384
    keys = open_key_store(path)
    try:
        assert isinstance(keys, KeyStore)
        _, key = keys.create("cli", "acme")
        assert s.key_store().resolve(key) == "acme"  # the server sees the CLI's key
    finally:
        keys.close()
        s.close()


def test_a_new_file_opened_by_the_key_store_first_keeps_the_default_width(tmp_path: Path) -> None:
    keys = open_key_store(tmp_path / "fresh.db")
    keys.close()
    open_store(tmp_path / "fresh.db", tenant="t", embedding_dim=384).close()
    with pytest.raises(StoreError, match="384-dimensional"):
        open_store(tmp_path / "fresh.db", tenant="t", embedding_dim=DIM)


# -- layering ---------------------------------------------------------------------------------


def test_nothing_outside_storage_imports_a_backend_module() -> None:
    backend = ("memsvc.storage.sqlite", "memsvc.storage.driver", "memsvc.storage.schema",
               "memsvc.storage.filter_sql")
    offenders = []
    for folder in ("memsvc", "retrievers", "serving", "extractors", "evals"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n == b or n.startswith(b + ".") for n in names for b in backend):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
    # and the layer test is not vacuous: the store's own files do import the backend
    assert "memsvc.storage.sqlite" in (ROOT / "storage" / "factory.py").read_text()
