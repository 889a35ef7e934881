"""The `VisibilityQuery` as a WHERE clause on PostgreSQL's `memories` (see storage/filter_sql.py).

Only metadata conditions differ from SQLite: they read `jsonb`, and compare JSON values as
JSON. A JSON null counts as absent (SQL NULL), as SQLite's `json_extract` has it; ordering
operators only match values of the operand's JSON type (a string never compares greater than a
number, where SQLite would say text > integer).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, func, literal
from sqlalchemy.dialects.postgresql import JSONB

from memsvc.model.filters import Condition
from memsvc.storage.filter_sql import SQL_OPS, FilterCompiler
from memsvc.storage.postgres.tables import pg_memories as memories


def _json(value: Any) -> ColumnElement[Any]:
    return cast(literal(json.dumps(value)), JSONB)


def _metadata_condition(cond: Condition) -> ColumnElement[bool]:
    path = cond.field.split(".")
    column = func.nullif(
        func.jsonb_extract_path(memories.c.metadata, *path), cast(literal("null"), JSONB)
    )
    value = cond.value
    if isinstance(value, tuple):
        value = tuple(_json(v) for v in value)
    elif value is not None:
        value = _json(value)
    clause: ColumnElement[bool] = SQL_OPS[cond.op](column, value)
    if cond.op in ("gt", "gte", "lt", "lte"):
        kind = "string" if isinstance(cond.value, str) else "number"
        clause = and_(func.jsonb_typeof(column) == kind, clause)
    return clause


# The tenant is spelled out in the visibility clause although row-level security enforces it
# too: it is what lets the planner use the (tenant, ...) indexes.
_POSTGRES = FilterCompiler(memories, _metadata_condition)
compile_filter = _POSTGRES.compile
visibility_clause = _POSTGRES.visibility
