"""agmi at-rest (T1–T9) against memsvc on PostgreSQL: the attacker is the database's
superuser, editing the rows with direct SQL; they do not hold the integrity key or the
witness (both outside the database).

The adapter is the SQLite one (evals/agmi_atrest.py) with the attacker's hands swapped: raw
statements go through psycopg as the URL's (superuser) role, each attack gets a fresh
schema of one database, and T9's "snapshot of the store" is a copy of every signed table
and the chain, put back by DELETE + INSERT (what restoring a dump of those tables does).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import make_url

from memsvc import Memory
from memsvc.evals.agmi_atrest import USER_A, MemsvcAtRestAdapter, shipped_embedder
from memsvc.model.settings import Settings

# generated from `text` by the database, and the access counters (not records' content)
_SKIP = ("tsv", "fts_len", "access_count", "last_accessed_at")
# the tables a dump-and-restore of the store puts back (the graph and BM25 statistics
# follow from the rows; the witness lives outside)
_SNAPSHOT = ("memories", "messages", "history", "integrity_chain", "integrity_heads")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class MemsvcPostgresAtRestAdapter(MemsvcAtRestAdapter):
    """memsvc embedded (`Memory(db_path=<URL>)`) on a fresh schema of a PostgreSQL database
    whose URL names a superuser (the embedded server's `postgres`)."""

    memory: Memory | None


    def __init__(self, url: str) -> None:
        super().__init__()
        self.server_url = url
        self.url = url
        self.schema = ""

    def setup(self) -> None:
        super().setup()
        self.schema = f"agmi_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_dsn(self.server_url), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        separator = "&" if "?" in self.server_url else "?"
        self.url = (self.server_url + separator + "options="
                    + quote(f"-csearch_path={self.schema},public", safe=""))

    def teardown(self) -> None:
        self._close()
        if self.schema:
            with psycopg.connect(_dsn(self.server_url), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        super().teardown()

    def _open(self) -> Memory:
        if self.memory is None:
            self.memory = Memory(settings=Settings(db_path=self.url), embedder=shipped_embedder())
        return self.memory

    # -- the attacker: the superuser's SQL ------------------------------------------------

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """One statement, autocommitted (memsvc stays open: PostgreSQL has no file locks)."""
        values = [Jsonb(v) if isinstance(v, dict | list) else v for v in params]
        with psycopg.connect(_dsn(self.url), autocommit=True) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), values)
            if cursor.description is None:
                return []
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _rows(self, user_id: str) -> list[dict[str, Any]]:
        found = self._sql("SELECT * FROM memories WHERE user_id = ? ORDER BY pk", (user_id,))
        return [{k: v for k, v in r.items() if k not in _SKIP} for r in found]

    def write_raw(self, record: Any) -> None:
        rows = self._rows(USER_A)
        if record.seq < len(rows):
            super().write_raw(record)
            return
        values = {**{k: v for k, v in record.fields.items() if k != "pk"}, "access_count": 0}
        self._sql(f"INSERT INTO memories ({', '.join(values)}) "
                  f"VALUES ({', '.join('?' for _ in values)})", list(values.values()))

    def read_meta(self, seq: int) -> dict[str, Any]:
        meta = self._rows(USER_A)[seq]["metadata"] or {}
        assert isinstance(meta, dict)
        return meta

    def write_meta(self, seq: int, meta: dict[str, Any]) -> None:
        self._update(self._rows(USER_A)[seq]["pk"], {"metadata": meta})

    def payload_of(self, record: Any) -> str:
        body = {k: v for k, v in record.fields.items()
                if k not in self.POSITION_KEYS and k not in ("metadata", "embedding")}
        return json.dumps(body, sort_keys=True, default=repr)

    # -- T9: every signed table and the chain, copied and put back ------------------------

    def snapshot_store(self) -> object:
        self._close()
        token = uuid.uuid4().hex[:8]
        for table in _SNAPSHOT:
            self._sql(f"CREATE TABLE snap_{token}_{table} AS SELECT * FROM {table}")
        return token

    def restore_store(self, token: object) -> None:
        self._close()
        for table in _SNAPSHOT:
            columns = ", ".join(r["column_name"] for r in self._sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "AND table_schema = current_schema() AND is_generated = 'NEVER' "
                "ORDER BY ordinal_position", (table,)))
            self._sql(f"DELETE FROM {table}")
            self._sql(f"INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE "
                      f"SELECT {columns} FROM snap_{token}_{table}")
            self._sql(f"DROP TABLE snap_{token}_{table}")
