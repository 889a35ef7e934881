"""`Memory` on PostgreSQL end to end, chosen by its location alone (`open_store`).

The storage suite runs every store test on both backends; this checks the wiring above it:
a `postgresql+psycopg://` location (string, never a `Path`) reaches `PostgresStore` through
`Memory(db_path=...)`, writes and reads round-trip, and tenants stay apart.
"""

from __future__ import annotations

from memsvc import Memory
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings


def test_memory_on_a_postgres_url_adds_searches_and_keeps_tenants_apart(
    pg_url: str, embedder: SentenceTransformerEmbedder
) -> None:
    assert Settings.from_env(db_path=pg_url).db_path == pg_url  # not folded into a Path
    with Memory(pg_url, embedder=embedder, tenant="acme") as m:
        assert type(m.store).__name__ == "PostgresStore"
        m.add([{"role": "user", "name": "Alice", "content": "I adopted a guinea pig named Oscar"}],
              user_id="alice", infer=True)
        m.add("I work as a nurse in Denver", user_id="alice")
        hits = m.search("what pet does Alice have?", user_id="alice", limit=3)
        assert "Oscar" in hits.results[0].memory.text
        assert m.get_all(user_id="alice").total >= 2
        assert m.history(hits.results[0].memory.id)
    with Memory(pg_url, embedder=embedder, tenant="other") as other:
        assert other.search("guinea pig", user_id="alice", limit=5).results == []
        assert other.get_all(user_id="alice").total == 0
