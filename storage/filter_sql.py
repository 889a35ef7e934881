"""Turn a parsed filter tree and a `VisibilityQuery` into SQLAlchemy conditions on `memories`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, not_, or_, true

from memsvc.model.filters import AllOf, AnyOf, Condition, FilterNode, Negation
from memsvc.storage.base import VisibilityQuery
from memsvc.storage.schema import memories

SQL_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda c, v: c.is_(None) if v is None else c == v,
    "ne": lambda c, v: c.is_not(None) if v is None else or_(c != v, c.is_(None)),
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "in": lambda c, v: c.in_(v),
    "nin": lambda c, v: or_(c.not_in(v), c.is_(None)),
}


class FilterCompiler:
    """Filter trees and visibility as SQL over one `memories` table. Both backends share the
    tree walk, the operators and the visibility rules; they differ only in the table they
    read and in how a metadata key is reached (JSON text on SQLite, jsonb on PostgreSQL)."""

    def __init__(
        self, table: Table, metadata_condition: Callable[[Condition], ColumnElement[bool]]
    ) -> None:
        self.table = table
        self._metadata_condition = metadata_condition

    def compile(self, node: FilterNode) -> ColumnElement[bool]:
        if isinstance(node, AllOf):
            return and_(*(self.compile(p) for p in node.parts))
        if isinstance(node, AnyOf):
            return or_(*(self.compile(p) for p in node.parts))
        if isinstance(node, Negation):
            return not_(self.compile(node.part))
        if node.metadata:
            return self._metadata_condition(node)
        # time columns convert datetimes themselves
        return SQL_OPS[node.op](self.table.c[node.field], node.value)

    def visibility(self, tenant: str, query: VisibilityQuery) -> ColumnElement[bool]:
        """The WHERE clause every read uses: tenant, scope, status, kind, trust, validity,
        filters."""
        table = self.table
        parts: list[ColumnElement[bool]] = [table.c.tenant == tenant]
        scope = query.scope
        for name in ("user_id", "agent_id", "session_id"):
            value = getattr(scope, name)
            if value is not None:
                parts.append(table.c[name] == value)
        if query.statuses:
            parts.append(table.c.status.in_(query.statuses))
        if query.kinds:
            parts.append(table.c.kind.in_(query.kinds))
        if query.min_trust is not None:
            parts.append(table.c.trust >= query.min_trust)
        if query.as_of is not None:
            at = query.as_of
            parts.append(or_(table.c.valid_from.is_(None), table.c.valid_from <= at))
            parts.append(or_(table.c.valid_to.is_(None), table.c.valid_to > at))
        if query.filters is not None:
            parts.append(self.compile(query.filters))
        return and_(true(), *parts)


def _sqlite_metadata_condition(cond: Condition) -> ColumnElement[bool]:
    value: Any = cond.value
    column = func.json_extract(memories.c.metadata, f"$.{cond.field}")
    if isinstance(value, bool) or (
        isinstance(value, tuple) and any(isinstance(v, bool) for v in value)
    ):
        # json_extract yields 1/0 for JSON booleans
        value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
    return SQL_OPS[cond.op](column, value)


_SQLITE = FilterCompiler(memories, _sqlite_metadata_condition)
compile_filter = _SQLITE.compile
visibility_clause = _SQLITE.visibility
