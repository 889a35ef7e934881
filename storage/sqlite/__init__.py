"""The SQLite backend: one file with rows, FTS5 (lexical) and sqlite-vec (vectors).

Only `memsvc.storage.factory` imports this package; everything else reaches it through the
protocols of `memsvc.storage.base`. Modules: engine (connections, pragmas, migrations), store
(`SQLiteStore`), rows (row ↔ record), vectors (vec0), lexical (FTS5), graph (entity tables),
diagnostics (stats, consistency), integrity + audit (the SQLite side of MACs and chains, see
memsvc.storage.integrity).
"""

from memsvc.storage.sqlite.store import SQLiteStore, open_sqlite_key_store

__all__ = ["SQLiteStore", "open_sqlite_key_store"]
