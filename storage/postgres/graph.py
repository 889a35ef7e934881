"""The entity graph on PostgreSQL: the same tables and rules as storage/graph_store.py.

Linking is graph_store's, statement for statement, except the two dialect-specific ones: the
entity upsert (`INSERT ... ON CONFLICT DO NOTHING` from the PostgreSQL dialect) and the
version bump (named parameters; graph_store's uses SQLite's `?`). The reads are graph_store's
mixin, with `visible_ids` and `embeddings` over this schema.
TODO(merge): fold these back into graph_store once its statements are dialect-neutral.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, String, any_, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from memsvc.model.records import MemoryRecord, Scope
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.postgres.filters import visibility_clause
from memsvc.storage.postgres.tables import pg_memories
from memsvc.storage.schema import entities, entity_relations, graph_state, memory_entities
from memsvc.storage.sqlite.graph import (
    GraphStoreMixin,
    _aliases_of,
    _entity_names,
    _needs_relink,
    _relation,
)

_BUMP = text(
    "INSERT INTO graph_state (tenant, user_id, version) VALUES (:tenant, :user_id, 1) "
    "ON CONFLICT (tenant, user_id) DO UPDATE SET version = graph_state.version + 1"
)
_ASKED = bindparam("ids", type_=ARRAY(String))  # the ids `visible_ids` is asked about


def bump_version(conn: Connection, tenant: str, user_id: str) -> None:
    conn.execute(_BUMP, {"tenant": tenant, "user_id": user_id})


def link_memories(
    conn: Connection, tenant: str, records: Sequence[MemoryRecord], *, replace: bool
) -> None:
    """(Re)write the entity links and relations of `records` in the caller's transaction
    (graph_store.link_memories, on PostgreSQL)."""
    touched_users: set[str] = set()
    todo: list[tuple[MemoryRecord, dict[str, str]]] = []
    for rec in records:
        names = _entity_names(rec)
        if replace:
            changed, had_links = _needs_relink(conn, rec, names)
            if not changed:
                continue
            if had_links:
                conn.execute(delete(memory_entities).where(memory_entities.c.memory_id == rec.id))
                conn.execute(
                    delete(entity_relations).where(entity_relations.c.memory_id == rec.id)
                )
                touched_users.add(rec.scope.user_id or "")
        if names:
            todo.append((rec, names))
            touched_users.add(rec.scope.user_id or "")
    if todo:
        pk_of = _upsert_entities(conn, tenant, todo)
        links, relations = [], []
        for rec, names in todo:
            key = (rec.scope.user_id or "", rec.scope.agent_id or "")
            pks = {norm: pk_of[(*key, norm)] for norm in names}
            links += [{"memory_id": rec.id, "entity_pk": pk, "tenant": tenant}
                      for pk in pks.values()]
            relation = _relation(rec, pks)
            if relation is not None:
                relations.append({"tenant": tenant, **relation})
        conn.execute(insert(memory_entities), links)
        if relations:
            conn.execute(insert(entity_relations), relations)
    for user_id in sorted(touched_users):
        bump_version(conn, tenant, user_id)


def _upsert_entities(
    conn: Connection, tenant: str, todo: list[tuple[MemoryRecord, dict[str, str]]]
) -> dict[tuple[str, str, str], int]:
    """Every named entity gets its row and new aliases merged in; (user, agent, norm) -> pk."""
    first: dict[tuple[str, str, str], dict[str, Any]] = {}
    new_aliases: dict[tuple[str, str, str], set[str]] = {}
    for rec, names in todo:
        user, agent = rec.scope.user_id or "", rec.scope.agent_id or ""
        aliases = _aliases_of(rec)
        for norm, name in names.items():
            key = (user, agent, norm)
            first.setdefault(key, {
                "tenant": tenant, "user_id": user, "agent_id": agent, "norm": norm,
                "name": name, "aliases": [], "created_at": rec.updated_at,
                "updated_at": rec.updated_at,
            })
            new_aliases.setdefault(key, set()).update(aliases.get(norm, []))
    conn.execute(pg_insert(entities).on_conflict_do_nothing(), list(first.values()))
    by_scope: dict[tuple[str, str], list[str]] = {}
    for user, agent, norm in first:
        by_scope.setdefault((user, agent), []).append(norm)
    out: dict[tuple[str, str, str], int] = {}
    changed: list[dict[str, Any]] = []
    for (user, agent), norms in by_scope.items():
        for row in conn.execute(
            select(entities.c.pk, entities.c.norm, entities.c.aliases).where(
                entities.c.tenant == tenant, entities.c.user_id == user,
                entities.c.agent_id == agent, entities.c.norm.in_(norms),
            )
        ):
            key = (user, agent, row.norm)
            out[key] = int(row.pk)
            have = set(row.aliases or [])
            if not new_aliases[key] <= have:
                changed.append({"pk_": row.pk, "aliases": sorted(have | new_aliases[key]),
                                "updated_at": first[key]["updated_at"]})
    if changed:
        conn.execute(update(entities).where(entities.c.pk == bindparam("pk_")), changed)
    return out


def purge_orphans(conn: Connection, tenant: str, scope: Scope | None) -> None:
    """Drop entities no memory links to any more (graph_store.purge_orphans)."""
    where = [entities.c.tenant == tenant]
    if scope is not None and scope.user_id is not None:
        where.append(entities.c.user_id == scope.user_id)
    if scope is not None and scope.agent_id is not None:
        where.append(entities.c.agent_id == scope.agent_id)
    linked = select(memory_entities.c.entity_pk)
    conn.execute(delete(entities).where(*where, entities.c.pk.not_in(linked)))
    if scope is not None and scope.user_id is not None:
        users = {scope.user_id}
    else:
        users = {r[0] for r in conn.execute(
            select(graph_state.c.user_id).where(graph_state.c.tenant == tenant))}
    for user_id in sorted(users):
        bump_version(conn, tenant, user_id)


class PostgresGraphReads(GraphStoreMixin):
    """graph_store's reads; the two that touch `memories` directly use this schema."""

    def visible_ids(self, query: VisibilityQuery, memory_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return set()
        # one array parameter: the statement is the same whatever the number of ids
        where = visibility_clause(self.tenant, query)
        with self._read() as conn:
            return {r[0] for r in conn.execute(
                select(pg_memories.c.id).where(where, pg_memories.c.id == any_(_ASKED)),
                {"ids": ids})}

    def embeddings(self, memory_ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                select(pg_memories.c.id, pg_memories.c.embedding).where(
                    pg_memories.c.tenant == self.tenant, pg_memories.c.id.in_(ids))
            ).all()
        return {r.id: np.asarray(r.embedding, dtype=np.float32) for r in rows}
