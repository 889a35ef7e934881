"""`visibility_clause` as SQL text with named parameters, for the reads every search runs.

Composing the clause with SQLAlchemy and compiling the statement around it (IN lists
expanded on each execution) cost a search's BM25 more than its SQL did. Without filters the
clause is a conjunction of equalities, IN lists and comparisons, written here as text; a
query with filters has no text form and its caller keeps the composed statement. Both
forms select the same rows (`tests/storage/test_visibility_sql.py` compares them).
"""

from __future__ import annotations

from typing import Any

from memsvc.storage.base import VisibilityQuery
from memsvc.storage.schema import UTCDateTime

_TIME = UTCDateTime()


def visibility_sql(
    tenant: str, query: VisibilityQuery, table: str = "memories"
) -> tuple[str, dict[str, Any]] | None:
    """The WHERE condition on `table` (a `memories` row) and its parameters (named `v_…`),
    or None when the query has filters."""
    if query.filters is not None:
        return None
    parts = [f"{table}.tenant = :v_tenant"]
    params: dict[str, Any] = {"v_tenant": tenant}
    scope = query.scope
    for name in ("user_id", "agent_id", "session_id"):
        value = getattr(scope, name)
        if value is not None:
            parts.append(f"{table}.{name} = :v_{name}")
            params[f"v_{name}"] = value
    for name, values in (("status", query.statuses), ("kind", query.kinds)):
        if values:
            marks = []
            for i, value in enumerate(values):
                marks.append(f":v_{name}{i}")
                params[f"v_{name}{i}"] = value
            parts.append(f"{table}.{name} IN ({', '.join(marks)})")
    if query.min_trust is not None:
        parts.append(f"{table}.trust >= :v_trust")
        params["v_trust"] = query.min_trust
    if query.as_of is not None:
        params["v_at"] = _TIME.process_bind_param(query.as_of, None)
        parts.append(f"({table}.valid_from IS NULL OR {table}.valid_from <= :v_at)")
        parts.append(f"({table}.valid_to IS NULL OR {table}.valid_to > :v_at)")
    return " AND ".join(parts), params
