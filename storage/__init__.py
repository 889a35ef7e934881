"""Storage: the backend-neutral store protocols, and `open_store` to get one for a location.

Backends live in sub-packages (`storage/sqlite/`) and are imported only by the factory.
"""

from memsvc.storage.base import KeyStore, MemoryStore, VisibilityQuery
from memsvc.storage.factory import open_key_store, open_store

__all__ = ["KeyStore", "MemoryStore", "VisibilityQuery", "open_key_store", "open_store"]
