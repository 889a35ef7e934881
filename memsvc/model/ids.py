"""Identifiers and content hashes."""

from __future__ import annotations

import hashlib
import re

from ulid import ULID

_SPACE = re.compile(r"\s+")


def new_id() -> str:
    """A ULID: sortable by creation time, so ids double as a pagination cursor."""
    return str(ULID())


def content_hash(kind: str, text: str) -> str:
    """Hash of what a memory says, blind to case and spacing, for exact-duplicate checks."""
    normal = _SPACE.sub(" ", text.strip().lower())
    return hashlib.sha256(f"{kind}\x1f{normal}".encode()).hexdigest()
