"""Slicing long id lists for `IN (...)` clauses, for every backend.

SQLite caps the parameters of one statement (32,766 in recent builds, 999 in old ones);
PostgreSQL takes more, but a statement of thousands of bound values is slow to plan either
way, so both backends and the integrity layer slice lists the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
