"""Stored text made safe to quote inside a prompt's data block.

A memory is data for a model, never an instruction: whatever a caller stored, the line that
quotes it must not be able to end the block it sits in, start a fake turn ("SYSTEM: ..." on
a line of its own), open a chat-template token (``<|im_start|>``) or crowd out the prompt.
The chat prompt (``serving/prompt_render.py``) and the context block
(``retrievers/context.py``) both quote through here, so they agree on what is safe.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["MAX_QUOTED_LABEL", "MAX_QUOTED_TEXT", "quote", "quote_label"]

#: Longest quoted memory text and label (a kind, a source, a profile key), in characters.
MAX_QUOTED_TEXT = 2000
MAX_QUOTED_LABEL = 40

_ROLE_PREFIX = re.compile(r"^\s*(system|assistant|user|developer|tool)\s*:", re.IGNORECASE)
#: Control, format and line/paragraph separator characters: all become a space.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def quote(text: Any, *, limit: int = MAX_QUOTED_TEXT) -> str:
    """`text` on one line (no newline can start a fake turn or a fake line of the block),
    without control or format characters, with angle brackets replaced by look-alikes (no
    tag can close the block), without a leading role prefix, at most `limit` characters."""
    cleaned = "".join(" " if unicodedata.category(c) in _INVISIBLE else c
                      for c in unicodedata.normalize("NFC", str(text)))
    cleaned = " ".join(cleaned.split()).replace("<", "\u2039").replace(">", "\u203a")
    cleaned = _ROLE_PREFIX.sub(lambda m: f"({m.group(1)})", cleaned)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "\u2026"
    return cleaned


def quote_label(value: Any) -> str:
    """A short label (a memory's kind or source), quoted and lowercased."""
    return quote(value, limit=MAX_QUOTED_LABEL).lower()
