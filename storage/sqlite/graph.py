"""The SQLite entity graph's tables: written inside the memory write, read whole per scope.

Every memory that names entities is linked to them (and to its concepts, `_entity_names`) in
the same transaction that writes the memory (`link_memories` is called from
`SQLiteStore.apply`), so the graph can never point at a memory that was rolled back.
Relations come from a memory's subject/object when both are entities it names; co-occurrence
is not stored, the graph builder derives it from the links.
Each link change bumps a per-(tenant, user) counter (`graph_state`), which is what a cached
in-memory graph compares to know that it is stale — also across processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from memsvc.model.records import MemoryRecord, Scope
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.filter_sql import visibility_clause
from memsvc.storage.graph_model import (
    MAX_NAME,
    GraphData,
    concept_entity,
    concept_name,
    normalize_entity,
)
from memsvc.storage.schema import (
    entities,
    entity_relations,
    graph_state,
    memories,
    memory_entities,
)
from memsvc.text.concepts import CONTEXT_CONCEPTS, memory_concepts


def _aliases_of(record: MemoryRecord) -> dict[str, list[str]]:
    """canonical -> aliases, from the extractor's `metadata["aliases"]` ({alias: canonical})."""
    raw = record.metadata.get("aliases")
    out: dict[str, list[str]] = {}
    if isinstance(raw, dict):
        for alias, canonical in raw.items():
            if isinstance(alias, str) and isinstance(canonical, str) and alias.strip():
                out.setdefault(normalize_entity(canonical), []).append(alias.strip()[:MAX_NAME])
    return out


def _entity_names(record: MemoryRecord) -> dict[str, str]:
    """norm -> display name of the entities a memory names, first spelling wins; then its
    concepts (`memsvc.text.concepts`): derived from the text as stored, so an edit relinks,
    then those of its context that the extractor recorded."""
    names: dict[str, str] = {}
    named = [name for name in record.entities if isinstance(name, str)]
    for name in named:
        norm = normalize_entity(name)
        if norm and norm not in names:
            names[norm] = name.strip()[:MAX_NAME]
    speaker = record.metadata.get("speaker")
    if isinstance(speaker, str):
        named.append(speaker)
    for concept in memory_concepts(record.text, named,
                                   record.metadata.get(CONTEXT_CONCEPTS)):
        key = concept_entity(concept)[:MAX_NAME]
        names.setdefault(key, key)
    return names


def link_memories(
    conn: Connection, tenant: str, records: Sequence[MemoryRecord], *, replace: bool
) -> None:
    """(Re)write the entity links and relations of `records` inside the caller's transaction.

    With `replace` (updates), a memory whose entities, aliases and subject/object are
    unchanged is left alone, so status-only updates (archive, supersede) do not invalidate
    cached graphs. Entities are upserted for the whole batch at once (a handful of
    statements, not a few per memory), since this runs inside every write.
    """
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
    """Make sure every named entity has its row, merge new aliases in; (user, agent, norm)
    -> entity pk."""
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
    conn.execute(sqlite_insert(entities).on_conflict_do_nothing(), list(first.values()))
    by_scope: dict[tuple[str, str], list[str]] = {}
    for user, agent, norm in first:
        by_scope.setdefault((user, agent), []).append(norm)
    out: dict[tuple[str, str, str], int] = {}
    changed: list[dict[str, Any]] = []
    for (user, agent), norms in by_scope.items():
        for chunk in range(0, len(norms), 500):
            for row in conn.execute(
                select(entities.c.pk, entities.c.norm, entities.c.aliases).where(
                    entities.c.tenant == tenant, entities.c.user_id == user,
                    entities.c.agent_id == agent, entities.c.norm.in_(norms[chunk : chunk + 500]),
                )
            ):
                key = (user, agent, row.norm)
                out[key] = int(row.pk)
                have = set(row.aliases or [])
                if not new_aliases[key] <= have:
                    changed.append({"pk_": row.pk, "aliases": sorted(have | new_aliases[key]),
                                    "updated_at": first[key]["updated_at"]})
    if changed:
        conn.execute(
            update(entities).where(entities.c.pk == bindparam("pk_")),
            changed,
        )
    return out


def _relation(rec: MemoryRecord, pks: dict[str, int]) -> dict[str, Any] | None:
    if not (rec.subject and rec.object):
        return None
    src, dst = pks.get(normalize_entity(rec.subject)), pks.get(normalize_entity(rec.object))
    if src is None or dst is None or src == dst:
        return None
    return {
        "src_pk": src,
        "dst_pk": dst,
        "predicate": (rec.predicate or "related_to")[:MAX_NAME],
        "memory_id": rec.id,
    }


def _wanted_relation(rec: MemoryRecord, names: dict[str, str]) -> tuple[str, ...]:
    if rec.subject and rec.object and names:
        s, o = normalize_entity(rec.subject), normalize_entity(rec.object)
        if s in names and o in names and s != o:
            return (f"{s}|{(rec.predicate or 'related_to')[:MAX_NAME]}|{o}",)
    return ()


def _needs_relink(conn: Connection, rec: MemoryRecord, names: dict[str, str]) -> tuple[bool, bool]:
    """(does the memory's stored linkage differ from what it says now, had it any links)."""
    rows = conn.execute(
        select(entities.c.norm, entities.c.aliases)
        .select_from(memory_entities.join(entities, entities.c.pk == memory_entities.c.entity_pk))
        .where(memory_entities.c.memory_id == rec.id)
    ).all()
    if not rows:
        return bool(names), False
    if sorted(r.norm for r in rows) != sorted(names):
        return True, True
    # Aliases are merged into the entity and never removed by one memory, so only an alias
    # the entity does not have yet needs a relink.
    have = {r.norm: set(r.aliases or []) for r in rows}
    for norm, aliases in _aliases_of(rec).items():
        if norm in have and not set(aliases) <= have[norm]:
            return True, True
    rels = conn.execute(
        select(entity_relations.c.src_pk, entity_relations.c.dst_pk, entity_relations.c.predicate)
        .where(entity_relations.c.memory_id == rec.id)
    ).all()
    current: tuple[str, ...] = ()
    if rels:
        norm_of: dict[int, str] = dict(
            conn.execute(
                select(entities.c.pk, entities.c.norm).where(
                    entities.c.pk.in_([r.src_pk for r in rels] + [r.dst_pk for r in rels])
                )
            ).all()
        )
        current = tuple(f"{norm_of[r.src_pk]}|{r.predicate}|{norm_of[r.dst_pk]}" for r in rels)
    return current != _wanted_relation(rec, names), True


def bump_version(conn: Connection, tenant: str, user_id: str) -> None:
    conn.exec_driver_sql(
        "INSERT INTO graph_state(tenant, user_id, version) VALUES (?, ?, 1) "
        "ON CONFLICT(tenant, user_id) DO UPDATE SET version = version + 1",
        (tenant, user_id),
    )


def purge_orphans(conn: Connection, tenant: str, scope: Scope | None) -> None:
    """Drop entities no memory links to any more (after a hard delete of a scope or reset),
    so a deleted user's names do not linger in the graph tables."""
    where = [entities.c.tenant == tenant]
    if scope is not None and scope.user_id is not None:
        where.append(entities.c.user_id == scope.user_id)
    if scope is not None and scope.agent_id is not None:
        where.append(entities.c.agent_id == scope.agent_id)
    linked = select(memory_entities.c.entity_pk)
    conn.execute(delete(entities).where(*where, entities.c.pk.not_in(linked)))
    users = {scope.user_id or ""} if scope is not None and scope.user_id is not None else None
    if users is None:
        users = {
            r[0]
            for r in conn.execute(
                select(graph_state.c.user_id).where(graph_state.c.tenant == tenant)
            )
        }
    for user_id in sorted(users):
        bump_version(conn, tenant, user_id)


_VERSION_OF_TENANT = select(func.coalesce(func.sum(graph_state.c.version), 0)).where(
    graph_state.c.tenant == bindparam("tenant"))
_VERSION_OF_USER = _VERSION_OF_TENANT.where(graph_state.c.user_id == bindparam("user_id"))
# the ids `visible_ids` is asked about, one JSON array parameter as a table
_ASKED = func.json_each(bindparam("ids", type_=String)).table_valued("value")


class GraphStoreMixin:
    """Graph reads and helper reads for `SQLiteStore` (mixed in; uses its engine and tenant)."""

    tenant: str

    def _read(self) -> Any:  # provided by SQLiteStore
        raise NotImplementedError

    def graph_version(self, scope: Scope) -> int:
        """A number that changes whenever a link of the scope's users changes.

        Asked twice by every search (the topic and graph channels), so its two statements
        are built once and only their values bound (`_VERSION_OF_USER`, `_VERSION_OF_TENANT`).
        """
        params = {"tenant": self.tenant}
        if scope.user_id is not None:
            params["user_id"] = scope.user_id
        stmt = _VERSION_OF_TENANT if scope.user_id is None else _VERSION_OF_USER
        with self._read() as conn:
            return int(conn.execute(stmt, params).scalar_one())

    def graph_data(self, scope: Scope) -> GraphData:
        """The entities, links and relations a scope's graph is built from."""
        where = [entities.c.tenant == self.tenant]
        if scope.user_id is not None:
            where.append(entities.c.user_id == scope.user_id)
        if scope.agent_id is not None:
            where.append(entities.c.agent_id == scope.agent_id)
        data = GraphData()
        with self._read() as conn:
            for r in conn.execute(select(entities.c.pk, entities.c.name, entities.c.aliases)
                                  .where(*where)):
                data.entities[int(r.pk)] = (r.name, list(r.aliases or []))
            link_stmt = (
                select(memory_entities.c.memory_id, memory_entities.c.entity_pk)
                .select_from(
                    memory_entities.join(entities, entities.c.pk == memory_entities.c.entity_pk)
                )
                .where(*where)
            )
            if scope.session_id is not None:
                link_stmt = link_stmt.join(
                    memories, memories.c.id == memory_entities.c.memory_id
                ).where(memories.c.session_id == scope.session_id)
            # fetched whole: row by row, the driver's and SQLAlchemy's per-row calls cost
            # more than the join (thousands of links per scope, read at each rebuild)
            data.links = [(r[0], int(r[1])) for r in conn.execute(link_stmt).all()]
            rel_stmt = (
                select(entity_relations.c.src_pk, entity_relations.c.dst_pk,
                       entity_relations.c.predicate)
                .select_from(
                    entity_relations.join(entities, entities.c.pk == entity_relations.c.src_pk)
                )
                .where(*where)
            )
            data.relations = [(int(r[0]), int(r[1]), r[2]) for r in conn.execute(rel_stmt)]
        return data

    def visible_ids(self, query: VisibilityQuery, memory_ids: Iterable[str]) -> set[str]:
        """Which of `memory_ids` the query may see (scope, status, kind, time, filters).

        The ids go in as one JSON array and each is looked up by the (tenant, id) index in
        an EXISTS: written as `id IN (...)` beside the scope's conditions, SQLite walks
        every row of the user's index instead (it cannot tell that the ids are fewer), so
        the cost grew with the scope rather than with the ids asked about, and the
        expanded IN list was rendered anew per call.
        """
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return set()
        stmt = select(_ASKED.c.value).where(
            exists().where(memories.c.id == _ASKED.c.value,
                           visibility_clause(self.tenant, query)))
        with self._read() as conn:
            return {r[0] for r in conn.execute(stmt, {"ids": json.dumps(ids)})}

    def entities_of(self, memory_ids: Iterable[str]) -> dict[str, list[str]]:
        """memory id -> the display names of the named entities it is linked to."""
        ids = list(dict.fromkeys(memory_ids))
        out: dict[str, list[str]] = {}
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for mid, name in conn.execute(
                    select(memory_entities.c.memory_id, entities.c.name)
                    .select_from(
                        memory_entities.join(entities,
                                             entities.c.pk == memory_entities.c.entity_pk)
                    )
                    .where(memory_entities.c.tenant == self.tenant,
                           memory_entities.c.memory_id.in_(chunk))
                    .order_by(entities.c.norm)
                ):
                    if concept_name(name) is None:  # the names, not the concepts
                        out.setdefault(mid, []).append(name)
        return out


__all__ = ["GraphStoreMixin", "bump_version", "link_memories", "purge_orphans"]
