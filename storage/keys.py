"""API keys of the REST/MCP server, on the `api_keys` table of the store's own database.

A key is shown once, at creation; only its SHA-256 is kept. Keys are 32 random bytes, so a
fast hash is enough (no password stretching needed: there is nothing to brute-force), and it
keeps the per-request lookup one indexed equality query. Each key maps to one tenant, and
the server builds every store it hands a request from that tenant alone. `ApiKeyStore` is
SQLAlchemy Core on the `api_keys` table only, so it serves any backend whose database has that
table; it implements `memsvc.storage.base.KeyStore`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update

from memsvc.model.errors import InvalidInputError, NotFoundError
from memsvc.model.ids import new_id
from memsvc.model.trust import Trust, parse_trust
from memsvc.model.validation import clean_id
from memsvc.storage.base import ApiKeyInfo, KeyGrant, StoredApiKey
from memsvc.storage.schema import api_keys

KEY_PREFIX = "msk_"
CACHE_SECONDS = 5.0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """Create, list, revoke and resolve keys, on a store's engine (or its own: `owns_engine`,
    disposed by `close`)."""

    def __init__(self, engine: Engine, *, owns_engine: bool = False,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[KeyGrant, float]] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, tenant: str, *, trust: int | str = Trust.USER,
        user_id: str | None = None,
    ) -> tuple[ApiKeyInfo, str]:
        """A new key for `tenant`, its writes trusted at most `trust` and, with `user_id`,
        acting for that user only; returns its info and the plaintext (shown only now)."""
        clean_name = clean_id(name, field="name")
        clean_tenant = clean_id(tenant, field="tenant")
        if clean_name is None or clean_tenant is None or len(clean_tenant) > 128:
            raise InvalidInputError("name and tenant (at most 128 characters) are required",
                                    field="tenant")
        level = parse_trust(trust, field="trust")
        bound = clean_id(user_id, field="user_id")
        if bound is not None and len(bound) > 256:
            raise InvalidInputError("user_id is at most 256 characters", field="user_id")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        info = ApiKeyInfo(
            id=new_id(), name=clean_name[:128], tenant=clean_tenant, prefix=key[:12],
            created_at=datetime.now(UTC), trust=int(level), user_id=bound,
        )
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            conn.execute(
                insert(api_keys).values(
                    id=info.id, name=info.name, tenant=info.tenant, prefix=info.prefix,
                    key_hash=hash_key(key), created_at=info.created_at, trust=info.trust,
                    user_id=info.user_id,
                )
            )
        return info, key

    def dump_keys(self) -> list[StoredApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [StoredApiKey.model_validate(dict(r._mapping)) for r in rows]

    def restore_keys(self, keys: Sequence[StoredApiKey]) -> int:
        """Only ids not here yet are inserted, so a second run copies nothing twice."""
        if not keys:
            return 0
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            have = set(conn.execute(select(api_keys.c.id).where(
                api_keys.c.id.in_([k.id for k in keys]))).scalars())
            new = [k.model_dump() for k in keys if k.id not in have]
            if new:
                conn.execute(insert(api_keys), new)
        return len(new)

    def list(self, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
        stmt = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            stmt = stmt.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            ApiKeyInfo(id=r.id, name=r.name, tenant=r.tenant, prefix=r.prefix,
                       created_at=r.created_at, revoked_at=r.revoked_at, trust=r.trust,
                       user_id=r.user_id)
            for r in rows
        ]

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke by id or by the shown prefix; effective for the next request."""
        ident = clean_id(key_id, field="id")
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            row = conn.execute(
                select(api_keys).where((api_keys.c.id == ident) | (api_keys.c.prefix == ident))
            ).first()
            if row is None:
                raise NotFoundError(f"no API key with id or prefix {key_id!r}", field="id")
            at = row.revoked_at or datetime.now(UTC)
            conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(revoked_at=at))
        with self._lock:
            self._cache.clear()
        return ApiKeyInfo(id=row.id, name=row.name, tenant=row.tenant, prefix=row.prefix,
                          created_at=row.created_at, revoked_at=at, trust=row.trust,
                          user_id=row.user_id)

    def count_active(self) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(
                select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
            ).scalar_one()
        return int(n)

    def resolve(self, key: str) -> str | None:
        """The tenant of an active key, or None (see `grant`)."""
        found = self.grant(key)
        return found.tenant if found is not None else None

    def grant(self, key: str) -> KeyGrant | None:
        """What an active key grants (tenant, its id as the writer, trust ceiling, user
        binding), or None.

        Hits are cached for `cache_seconds` (`CACHE_SECONDS`: one server per SQLite file),
        so a revoke made by another process (the CLI) takes effect within that time; a
        revoke through this object is immediate. Misses are never cached, so a key created
        by the CLI works at once. A store shared by replicas passes 0 (see PostgresStore.
        key_store): every request looks its key up, and a revoke is refused everywhere at
        once.
        """
        if not key or len(key) > 256:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[1] < self._cache_seconds:
                return hit[0]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_keys.c.id, api_keys.c.tenant, api_keys.c.trust, api_keys.c.user_id)
                .where(api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        found = KeyGrant(row.id, row.tenant, int(row.trust), row.user_id)
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (found, now)
        return found

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Dispose the engine if this key store opened it; a store's engine stays open."""
        if self._owns_engine:
            self.engine.dispose()
