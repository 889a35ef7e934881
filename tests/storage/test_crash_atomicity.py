"""A write is one transaction: kill the writer with SIGKILL at random moments, many times,
on both backends (`store_location`: a SQLite file, or a PostgreSQL schema).

After each kill the store must pass its integrity check (SQLite's `PRAGMA integrity_check`;
PostgreSQL's valid indexes), the lexical and vector indexes must agree with the rows (FTS5
and vec0; the tsvector, vector and BM25 statistics columns), and every `add` the writer saw
return must be there. PostgreSQL gets fewer rounds: what is tested there is that a killed
client's open transaction is rolled back by the server, the same on every round.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.sdk.memory import Memory

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = {"sqlite": 20, "postgres": 4}


def _run_and_kill(db_path: str, worker: str, rng: random.Random) -> list[list[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), db_path, worker],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MEMSVC_EMBED_THREADS": "1"},
    )
    assert proc.stdout is not None
    acknowledged: list[list[str]] = []
    ready_line = proc.stdout.readline()
    assert ready_line.strip() == "ready", f"writer failed to start: {ready_line!r}"
    deadline = time.monotonic() + rng.uniform(0.05, 1.5)
    fd = proc.stdout.fileno()
    buffer = ""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if readable:
            chunk = os.read(fd, 65536).decode()
            if not chunk:
                break
            buffer += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    buffer += proc.stdout.read()
    for line in buffer.splitlines():
        if line.strip():
            acknowledged.append(line.split())
    return acknowledged


def test_sigkill_mid_write_loses_nothing_acknowledged(
    store_location: str, backend: str, embedder: SentenceTransformerEmbedder
) -> None:
    db_path = store_location
    rng = random.Random(1234)
    all_acknowledged: list[str] = []
    for round_no in range(KILLS[backend]):
        all_acknowledged += [
            memory_id for ids in _run_and_kill(db_path, f"w{round_no}", rng) for memory_id in ids
        ]
        with Memory(settings=Settings(db_path=db_path), embedder=embedder) as memory:
            report = memory.store.consistency()
            assert report["integrity_check"] == "ok", report
            assert report["consistent"], report
            # the writer reports only ids it did not delete itself
            present = memory.store.get_many(all_acknowledged)
            missing = set(all_acknowledged) - set(present)
            assert not missing, f"round {round_no}: acknowledged adds lost: {sorted(missing)[:5]}"
    assert len(all_acknowledged) > KILLS[backend]  # the writers really wrote
