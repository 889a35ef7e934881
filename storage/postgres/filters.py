"""The `VisibilityQuery` as a WHERE clause on PostgreSQL's `memories` (see storage/filter_sql.py).

Only metadata conditions differ from SQLite: they read `jsonb`, and compare JSON values as
JSON. A JSON null counts as absent (SQL NULL), as SQLite's `json_extract` has it; ordering
operators only match values of the operand's JSON type (a string never compares greater than a
number, where SQLite would say text > integer).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import JSONB

from memsvc.model.filters import AllOf, AnyOf, Condition, FilterNode, Negation
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.postgres.tables import pg_memories as memories

_SQL_OPS = {
    "eq": lambda c, v: c.is_(None) if v is None else c == v,
    "ne": lambda c, v: c.is_not(None) if v is None else or_(c != v, c.is_(None)),
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "in": lambda c, v: c.in_(v),
    "nin": lambda c, v: or_(c.not_in(v), c.is_(None)),
}


def compile_filter(node: FilterNode) -> ColumnElement[bool]:
    if isinstance(node, AllOf):
        return and_(*(compile_filter(p) for p in node.parts))
    if isinstance(node, AnyOf):
        return or_(*(compile_filter(p) for p in node.parts))
    if isinstance(node, Negation):
        return not_(compile_filter(node.part))
    return _condition(node)


def _json(value: Any) -> ColumnElement[Any]:
    return cast(literal(json.dumps(value)), JSONB)


def _condition(cond: Condition) -> ColumnElement[bool]:
    if not cond.metadata:
        return _SQL_OPS[cond.op](memories.c[cond.field], cond.value)
    path = cond.field.split(".")
    column = func.nullif(
        func.jsonb_extract_path(memories.c.metadata, *path), cast(literal("null"), JSONB)
    )
    value = cond.value
    if isinstance(value, tuple):
        value = tuple(_json(v) for v in value)
    elif value is not None:
        value = _json(value)
    clause: ColumnElement[bool] = _SQL_OPS[cond.op](column, value)
    if cond.op in ("gt", "gte", "lt", "lte"):
        kind = "string" if isinstance(cond.value, str) else "number"
        clause = and_(func.jsonb_typeof(column) == kind, clause)
    return clause


def visibility_clause(tenant: str, query: VisibilityQuery) -> ColumnElement[bool]:
    """The WHERE clause every read uses: tenant, scope, status, kind, validity, filters.

    The tenant is spelled out although row-level security enforces it too: it is what lets
    the planner use the (tenant, ...) indexes.
    """
    parts: list[ColumnElement[bool]] = [memories.c.tenant == tenant]
    scope = query.scope
    for name in ("user_id", "agent_id", "session_id"):
        value = getattr(scope, name)
        if value is not None:
            parts.append(memories.c[name] == value)
    if query.statuses:
        parts.append(memories.c.status.in_(query.statuses))
    if query.kinds:
        parts.append(memories.c.kind.in_(query.kinds))
    if query.as_of is not None:
        at = query.as_of
        parts.append(or_(memories.c.valid_from.is_(None), memories.c.valid_from <= at))
        parts.append(or_(memories.c.valid_to.is_(None), memories.c.valid_to > at))
    if query.filters is not None:
        parts.append(compile_filter(query.filters))
    return and_(true(), *parts)
