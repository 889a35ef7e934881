"""Turn a parsed filter tree and a `VisibilityQuery` into SQLAlchemy conditions on `memories`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, true

from memsvc.model.filters import AllOf, AnyOf, Condition, FilterNode, Negation
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.schema import memories

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


def _condition(cond: Condition) -> ColumnElement[bool]:
    column: Any
    value = cond.value
    if cond.metadata:
        column = func.json_extract(memories.c.metadata, f"$.{cond.field}")
        if isinstance(value, bool) or (
            isinstance(value, tuple) and any(isinstance(v, bool) for v in value)
        ):
            # json_extract yields 1/0 for JSON booleans
            value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
    else:
        column = memories.c[cond.field]  # time columns convert datetimes themselves
    return _SQL_OPS[cond.op](column, value)


def visibility_clause(tenant: str, query: VisibilityQuery) -> ColumnElement[bool]:
    """The WHERE clause every read uses: tenant, scope, status, kind, validity, filters."""
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
