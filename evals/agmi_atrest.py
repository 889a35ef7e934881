"""agmi at-rest suite (agent-memory-integrity 0.6.3) against memsvc: T1–T9.

The attacker holds the SQLite file and edits it with the standard library's `sqlite3`; they
do not hold the integrity key or the witness (both outside the store). memsvc has the file
closed while the attacker's connection is open (it reopens on its next call): attacker and
tool share this one process here, and two copies of SQLite in one process (the stdlib's and
the pysqlite3 memsvc loads) drop each other's POSIX locks on a WAL file. Every verdict is
memsvc's own: `verify()` reads user A's memories through the public SDK (`get_all`,
`search`, `get` of every id written) and reports a refusal only when memsvc raises its
`IntegrityError`; anything else it serves counts as accepted.

    python -m memsvc.evals.agmi_atrest        # writes evals/results/agmi-atrest.{md,json}
    python -m memsvc.evals.agmi_atrest --backend postgres [--db postgresql+psycopg://...]
    agmi-check --adapter memsvc.evals.agmi_atrest:MemsvcAtRestAdapter

By default both backends run: SQLite here, PostgreSQL through evals/agmi_atrest_pg.py on the
`--db` URL (a superuser's) or else on an embedded server started in a temp dir for the run.

A record is one `memories` row of user A, in chain order (the order memsvc wrote them);
its slot is the row (`pk`, `id`) and its owner the user, so a replay keeps both and moves
everything else (text, metadata, times, and the row's MAC and chain position). The
access counters are left out of the records: memsvc updates them on reads, in the
background, and does not sign them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

from agmi import check
from agmi.adapters.base import MemoryAdapter, Record

from memsvc import Memory
from memsvc.embedding.embedder import Embedder, SentenceTransformerEmbedder
from memsvc.evals.report import RESULTS_DIR, environment, git_state, markdown_table, write_json
from memsvc.model.errors import IntegrityError, NotFoundError
from memsvc.model.ids import new_id
from memsvc.model.settings import default_embedder_path

USER_A = "agmi-user-a"
USER_B = "agmi-user-b"
_UNSIGNED = ("access_count", "last_accessed_at")  # changed by reads; not records' content
_SLOT = ("pk", "id")
_OWNER = ("tenant", "user_id", "agent_id", "session_id", "fts_scope")
_ENV = ("MEMSVC_CONFIG_DIR", "MEMSVC_WITNESS_DIR")


@cache
def shipped_embedder() -> Embedder:
    """The shipped model, loaded once per process (each attack reopens the store twice; the
    API family, evals/agmi_api.py, shares it)."""
    # cast: the protocol declares `dim` a plain attribute, the class a read-only property
    return cast(Embedder, SentenceTransformerEmbedder(default_embedder_path()))


def isolate_integrity(config_dir: Path) -> dict[str, str | None]:
    """Key and witness: the caller's, if configured; else our own under `config_dir`
    (outside the store). Returns what to hand `restore_env` afterwards."""
    saved = {k: os.environ.get(k) for k in _ENV}
    if not os.environ.get("MEMSVC_INTEGRITY_KEY") and not os.environ.get(_ENV[0]):
        os.environ[_ENV[0]] = str(config_dir)
        os.environ.setdefault(_ENV[1], str(config_dir / "witness"))
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class MemsvcAtRestAdapter(MemoryAdapter):
    """memsvc embedded (`Memory(db_path=...)`) on a temp SQLite file."""

    name = "memsvc"
    detection_point = "read"  # the SDK's reads refuse; `memsvc verify` is the audit
    supports_replay = True
    supports_metadata = True
    supports_snapshot = True
    POSITION_KEYS = _SLOT + _OWNER

    def __init__(self) -> None:
        self.memory: Memory | None = None
        self.dir: Path | None = None
        self.db: Path | None = None
        self.ids: list[str] = []
        self._saved_env: dict[str, str | None] = {}
        self._counter = 0

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="memsvc-agmi-"))
        self.db = self.dir / "store" / "memsvc.db"
        self.db.parent.mkdir()
        self._saved_env = isolate_integrity(self.dir / "config")
        self.ids = []

    def teardown(self) -> None:
        self._close()
        restore_env(self._saved_env)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _open(self) -> Memory:
        if self.memory is None:
            self.memory = Memory(db_path=self.db, embedder=shipped_embedder())
        return self.memory

    def _close(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    def reload(self) -> None:
        self._close()
        self._open()

    def _add(self, user_id: str, text: str) -> str:
        result = self._open().add(text, user_id=user_id, metadata={"source": "agmi"})
        return result.results[0].id

    def seed(self, n: int) -> None:
        for _ in range(n):
            self.ids.append(self._add(USER_A, self._text("A")))

    def seed_other(self, n: int) -> None:
        for _ in range(n):
            self._add(USER_B, self._text("B"))

    def append_genuine(self) -> None:
        self.ids.append(self._add(USER_A, self._text("A")))

    def _text(self, who: str) -> str:
        self._counter += 1
        return f"note {self._counter} of user {who}: the meeting is in room {100 + self._counter}"

    # -- the tool's own answer ------------------------------------------------------------

    def verify(self) -> bool:
        """True if memsvc serves user A's memories; False if it refuses (IntegrityError)."""
        self.verify_detail = None
        memory = self._open()
        try:
            memory.get_all(user_id=USER_A, limit=1000)
            memory.search("meeting room note", user_id=USER_A, limit=20)
            for memory_id in self.ids:
                try:
                    memory.get(memory_id)
                except NotFoundError:
                    continue  # gone without a refusal: that is memsvc accepting it
        except IntegrityError as exc:
            self.verify_detail = f"IntegrityError: {exc.message}"
            return False
        return True

    # -- the attacker: raw sqlite3 on the file --------------------------------------------

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """One raw statement on the file, committed, the connection closed (memsvc closed
        meanwhile: see the module docstring)."""
        self._close()
        conn = sqlite3.connect(str(self.db))
        try:
            cursor = conn.execute(sql, list(params))
            names = [d[0] for d in cursor.description or ()]
            found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            conn.commit()
            return found
        finally:
            conn.close()

    def _rows(self, user_id: str) -> list[dict[str, Any]]:
        found = self._sql("SELECT * FROM memories WHERE user_id = ? ORDER BY pk", (user_id,))
        return [{k: v for k, v in r.items() if k not in _UNSIGNED} for r in found]

    def read_all_raw(self) -> list[Record]:
        return [Record(i, row) for i, row in enumerate(self._rows(USER_A))]

    def read_other_raw(self) -> list[Record]:
        return [Record(i, row) for i, row in enumerate(self._rows(USER_B))]

    def _update(self, pk: int, values: dict[str, Any]) -> None:
        names = list(values)
        self._sql(f"UPDATE memories SET {', '.join(f'{n} = ?' for n in names)} WHERE pk = ?",
                  [*(values[n] for n in names), pk])

    def write_raw(self, record: Record) -> None:
        rows = self._rows(USER_A)
        values = {k: v for k, v in record.fields.items() if k not in _SLOT}
        if record.seq < len(rows):
            self._update(rows[record.seq]["pk"], values)
            return
        values.update(id=record.fields["id"], access_count=0)
        self._sql(f"INSERT INTO memories ({', '.join(values)}) "
                  f"VALUES ({', '.join('?' for _ in values)})", list(values.values()))

    def delete_raw(self, seq: int) -> None:
        self._sql("DELETE FROM memories WHERE pk = ?", (self._rows(USER_A)[seq]["pk"],))

    def mutate_payload(self, record: Record) -> Record:
        record.fields["text"] = record.fields["text"] + " [TAMPERED: room 999]"
        return record

    def forge_record(self, template: Record) -> Record:
        forged = Record(template.seq + 1, dict(template.fields))
        forged.fields["id"] = new_id()  # a new memory, not a copy of the template's slot
        forged.fields.pop("pk", None)
        return self.mutate_payload(forged)

    def payload_of(self, record: Record) -> str:
        """Content: everything but the slot, the owner and the metadata (T8 moves that)."""
        body = {k: v for k, v in record.fields.items()
                if k not in self.POSITION_KEYS and k != "metadata"}
        return json.dumps(body, sort_keys=True, default=repr)

    def identity_of(self, record: Record) -> str:
        return str(record.fields["id"])

    def owner_of(self, record: Record) -> str | None:
        return str(record.fields["user_id"])

    def replay_onto(self, victim_seq: int, donor: Record) -> None:
        victim = self._rows(USER_A)[victim_seq]
        payload = {k: v for k, v in donor.fields.items() if k not in self.POSITION_KEYS}
        self._update(victim["pk"], payload)

    def read_meta(self, seq: int) -> dict[str, Any]:
        meta = json.loads(self._rows(USER_A)[seq]["metadata"] or "{}")
        assert isinstance(meta, dict)
        return meta

    def write_meta(self, seq: int, meta: dict[str, Any]) -> None:
        self._update(self._rows(USER_A)[seq]["pk"], {"metadata": json.dumps(meta)})

    # -- T9: the store's files (not the key, not the witness) -----------------------------

    def _files(self) -> list[Path]:
        assert self.db is not None
        return [self.db, *(Path(f"{self.db}{s}") for s in ("-wal", "-shm"))]

    def snapshot_store(self) -> object:
        self._close()  # a consistent copy: no transaction half-written
        snap = Path(tempfile.mkdtemp(prefix="memsvc-agmi-snap-"))
        for path in self._files():
            if path.exists():
                shutil.copy2(path, snap / path.name)
        return str(snap)

    def restore_store(self, token: object) -> None:
        self._close()
        snap = Path(str(token))
        for path in self._files():
            path.unlink(missing_ok=True)
            if (snap / path.name).exists():
                shutil.copy2(snap / path.name, path)
        shutil.rmtree(snap, ignore_errors=True)


def run() -> list[dict[str, Any]]:
    return check.run(MemsvcAtRestAdapter())


def run_postgres(url: str | None) -> list[dict[str, Any]]:
    """T1–T9 on PostgreSQL: on `url`, or on an embedded server started (and stopped) here."""
    from memsvc.evals.agmi_atrest_pg import MemsvcPostgresAtRestAdapter

    if url is not None:
        return check.run(MemsvcPostgresAtRestAdapter(url))
    from memsvc.storage.postgres.server import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="memsvc-agmi-pg-"))
    server = EmbeddedPostgres(root / "pg", database="agmi", fast_unsafe=True)
    try:
        server.start()
        return check.run(MemsvcPostgresAtRestAdapter(server.url()))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


_ATTACKER = {
    "sqlite": "write access to the SQLite file (raw `sqlite3`)",
    "postgres": "the database's superuser (direct SQL `UPDATE`/`INSERT`/`DELETE`, and a "
                "copy of the tables put back for T9)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--db", help="postgresql+psycopg:// URL of a superuser (PostgreSQL "
                        "runs; default: an embedded server for the run)")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    runs: dict[str, list[dict[str, Any]]] = {}
    for backend in backends:
        runs[backend] = run() if backend == "sqlite" else run_postgres(args.db)
        print(check.render(f"{MemsvcAtRestAdapter.name} ({backend})", runs[backend]))
    write_json(args.out / "agmi-atrest.json", {
        "tool": MemsvcAtRestAdapter.name, "agmi": "agent-memory-integrity 0.6.3",
        "detection_point": MemsvcAtRestAdapter.detection_point, "backends": runs,
        "environment": environment(), "git": git_state(),
    })
    sections = []
    for backend, rows in runs.items():
        table = markdown_table(["edit", "verdict", "detail"],
                               [[r["edit"], r["verdict"], r["detail"]] for r in rows])
        sections.append(f"## {backend}\n\nAttacker: {_ATTACKER[backend]}.\n\n{table}\n")
    (args.out / "agmi-atrest.md").write_text(
        "# agmi at-rest (agent-memory-integrity 0.6.3) against memsvc\n\n"
        "The attacker does not hold the integrity key or the witness (both outside the\n"
        "store). Detection point: the SDK's read path (`get_all`, `search`, `get`), which\n"
        "raises `IntegrityError`. Regenerate: `python -m memsvc.evals.agmi_atrest`\n"
        "(`--backend sqlite|postgres|both`, `--db` a PostgreSQL superuser's URL).\n\n"
        + "\n".join(sections), encoding="utf-8",
    )
    every = [r for rows in runs.values() for r in rows]
    return 1 if any(r["verdict"] in ("ACCEPTED", "ERROR") for r in every) else 0


if __name__ == "__main__":
    sys.exit(main())
