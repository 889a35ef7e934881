"""Which DB-API module talks to SQLite.

sqlite-vec is a loadable extension, and many Pythons ship a `sqlite3` built without
`enable_load_extension` (ours does). `pysqlite3` (wheel `pysqlite3-binary`, SQLite 3.51) can
load it and is a drop-in DB-API module for SQLAlchemy's pysqlite dialect. We prefer it wherever
it is installed so every machine runs the same SQLite; elsewhere the standard library is used if
it can load extensions, and otherwise opening a store fails with instructions.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from memsvc.model.errors import StoreError


def _can_load_extensions(module: ModuleType) -> bool:
    conn = module.connect(":memory:")
    try:
        if not hasattr(conn, "enable_load_extension"):
            return False
        conn.enable_load_extension(True)
        conn.enable_load_extension(False)
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        return True
    except Exception:
        return False
    finally:
        conn.close()


@cache
def sqlite_dbapi() -> ModuleType:
    """Return the first DB-API module that can load sqlite-vec and has FTS5."""
    for name in ("pysqlite3.dbapi2", "sqlite3"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if _can_load_extensions(module):
            return module
    raise StoreError(
        "no SQLite driver here can load extensions (needed for sqlite-vec): install "
        "'pysqlite3-binary' (Linux x86_64) or use a Python whose sqlite3 supports "
        "enable_load_extension"
    )
