"""`source_keys`: the four columns a search places its hits on before fetching records, on
both backends, and only the calling tenant's rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from memsvc.model.ids import content_hash, new_id
from memsvc.model.records import MemoryKind, MemoryRecord, Provenance, Scope
from memsvc.storage import open_store
from memsvc.storage.base import MemoryStore, SourceKey, WriteBatch

DIM = 8
NOW = datetime(2024, 1, 1, tzinfo=UTC)
ENDED = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def store(store_location: str) -> Iterator[MemoryStore]:
    s = open_store(store_location, tenant="acme", embedding_dim=DIM)
    yield s
    s.close()


def _memory(text: str, kind: MemoryKind, sources: list[str], valid_to: datetime | None = None,
            importance: float = 0.5) -> MemoryRecord:
    return MemoryRecord(
        id=new_id(), scope=Scope(user_id="u1"), kind=kind, text=text, created_at=NOW,
        updated_at=NOW, valid_to=valid_to, content_hash=content_hash(kind.value, text),
        provenance=Provenance(source_message_ids=sources), importance=importance,
    )


def test_source_keys_match_the_records_and_stay_in_the_tenant(store: MemoryStore) -> None:
    fact = _memory("Alice lives in Oslo", MemoryKind.FACT, ["m2", "m1"], valid_to=ENDED)
    episode = _memory("I moved to Oslo", MemoryKind.EPISODE, ["m1"], importance=0.2)
    loose = _memory("no source", MemoryKind.PREFERENCE, [])
    vector = np.eye(DIM, dtype=np.float32)[0]
    store.apply(WriteBatch(inserts=[(m, vector) for m in (fact, episode, loose)]))
    other = store.for_tenant("other")
    ids = [fact.id, episode.id, loose.id, "01NOSUCHMEMORY0000000000000"]

    keys = store.source_keys(ids)

    assert keys == {
        fact.id: SourceKey("fact", ENDED, ("m2", "m1")),
        episode.id: SourceKey("episode", None, ("m1",), 0.2),
        loose.id: SourceKey("preference", None, ()),
    }
    records = store.get_many(ids)
    for memory_id, key in keys.items():  # what the search compares, field for field
        record = records[memory_id]
        assert key == SourceKey(record.kind, record.valid_to,
                                tuple(record.provenance.source_message_ids), record.importance)
    assert other.source_keys(ids) == {}
    assert store.source_keys([]) == {}
