"""Who is calling, and the `Memory` that caller may see.

A request's API key resolves to a tenant; the tenant gets its own `Memory` whose store is
`MemoryStore.for_tenant(tenant)`, so every statement it runs is confined to that tenant in
the storage layer itself: a route cannot forget to filter, because it never holds a store
that could see another tenant. All tenants share one embedder and one connection pool.

The key also decides who writes: each request gets a view of its tenant's `Memory` acting as
the key (`memsvc.sdk.parts.acting_as`): its id is the `writer` of what the request stores,
its trust level caps the memories' `trust`, and a key bound to a user may act for that user
only. None of this comes from the request body, so a caller cannot claim another writer's trust.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from memsvc.model.errors import UnauthorizedError
from memsvc.model.trust import Trust, Writer
from memsvc.sdk.memory import Memory
from memsvc.sdk.parts import acting_as
from memsvc.storage.base import KeyGrant, KeyStore

AuthError = UnauthorizedError  # the name the serving modules use
KEYS_RECHECK_SECONDS = 2.0


class Tenancy:
    """Maps credentials to tenants and tenants to `Memory` objects (built once, cached)."""

    def __init__(self, base: Memory, keys: KeyStore | None, *, require_keys: bool) -> None:
        self.base = base
        self.keys = keys
        self.require_keys = require_keys  # always, whatever the key store holds
        self._memories: dict[str, Memory] = {base.store.tenant: base}
        self._lock = threading.Lock()
        self._keys_seen: tuple[bool, float] | None = None  # (any active key, when checked)

    def keys_required(self) -> bool:
        """Whether a request needs a key: always when started so (keys existed, the bind
        may be public), else as soon as the key store holds an active key, so that a key
        created after start-up (`memsvc keys create`) turns auth on without a restart.
        The count is cached for `KEYS_RECHECK_SECONDS`, so a new key takes up to that
        long, and revoking the last one turns a loopback server key-less again."""
        if self.require_keys:
            return True
        if self.keys is None:
            return False
        now = time.monotonic()
        seen = self._keys_seen
        if seen is None or now - seen[1] >= KEYS_RECHECK_SECONDS:
            seen = self._keys_seen = (self.keys.count_active() > 0, now)
        return seen[0]

    @property
    def default_tenant(self) -> str:
        return self.base.store.tenant

    def tenant_for(self, headers: Mapping[str, str]) -> str:
        """The caller's tenant from `Authorization: Bearer <key>` or `X-API-Key: <key>`.

        Without required keys (a server bound to 127.0.0.1 only) everyone is the default
        tenant; a wrong key is still refused rather than silently ignored.
        """
        found = self.grant_for(headers)
        return self.default_tenant if found is None else found.tenant

    def grant_for(self, headers: Mapping[str, str]) -> KeyGrant | None:
        """The caller's key as resolved (None: a key-less call, allowed only when keys are
        not required); AuthError for a missing required key or a wrong one."""
        key = _key_from(headers)
        if key is None:
            if self.keys_required():
                raise AuthError("an API key is required: send 'Authorization: Bearer <key>'")
            return None
        found = self.keys.grant(key) if self.keys is not None else None
        if found is None:
            raise AuthError("unknown or revoked API key")
        return found

    def memory(self, tenant: str) -> Memory:
        with self._lock:
            memory = self._memories.get(tenant)
            if memory is None:
                store = self.base.store
                memory = Memory(
                    settings=self.base.settings,
                    embedder=self.base.embedder,
                    store=store.for_tenant(tenant),
                    extractor=self.base.extractor,
                    # the base's decider (and so its one LLM client), not one per tenant
                    decider=self.base.decider,
                )
                self._memories[tenant] = memory
            return memory

    def memory_for(self, headers: Mapping[str, str]) -> Memory:
        """The caller's tenant's `Memory`, acting as the caller's key."""
        found = self.grant_for(headers)
        if found is None:
            return self.memory(self.default_tenant)  # acts as LOCAL
        writer = Writer(found.key_id, Trust(found.trust), found.user_id)
        return acting_as(self.memory(found.tenant), writer)

    def close(self) -> None:
        """Close the per-tenant retrievers; the shared store is closed with the base."""
        with self._lock:
            for memory in self._memories.values():
                if memory is not self.base:
                    memory.retriever.close()
            self._memories = {self.default_tenant: self.base}


def _key_from(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return auth.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None
