"""Storage: the repository interface and its SQLite implementation (rows, vec0, FTS5, history)."""

from memsvc.storage.base import MemoryStore, VisibilityQuery
from memsvc.storage.sqlite_store import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "VisibilityQuery"]
