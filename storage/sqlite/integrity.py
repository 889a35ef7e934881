"""The SQLite side of tamper evidence: the `Layout` the shared integrity code
(memsvc.storage.integrity.guard) works through, and opening it on a file.

What is SQLite's own: vectors live in the vec0 table `memory_vec` (dropped and marked
deleted beside the rows, one row at a time: vec0 rejects multi-row UPDATEs on a partitioned
table), graph orphans are purged by the SQLite graph code, and one write lock per file
already serialises the writers of a chain.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from memsvc.storage.integrity.guard import Layout, StoreIntegrity
from memsvc.storage.schema import memories
from memsvc.storage.sqlite.engine import reading
from memsvc.storage.sqlite.graph import purge_orphans


def _drop_vectors(conn: Connection, pks: list[int]) -> None:
    if pks:
        conn.exec_driver_sql("DELETE FROM memory_vec WHERE rowid = ?", [(pk,) for pk in pks])


def _vectors_deleted(conn: Connection, pks: list[int]) -> None:
    if pks:
        conn.exec_driver_sql("UPDATE memory_vec SET status = 'deleted' WHERE rowid = ?",
                             [(pk,) for pk in pks])


def sqlite_layout(engine: Engine) -> Layout:
    return Layout(
        memories=memories,
        columns=(memories,),
        reading=lambda tenant: reading(engine),
        purge_orphans=purge_orphans,
        drop_vectors=_drop_vectors,
        vectors_deleted=_vectors_deleted,
    )


def open_integrity(engine: Engine) -> StoreIntegrity:
    """The key, the store id and the witness of the file behind `engine`."""
    with reading(engine) as conn:
        return StoreIntegrity(sqlite_layout(engine), conn)
