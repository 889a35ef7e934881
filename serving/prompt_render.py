"""Deterministic rendering of memories for prompts: the same memories give the same bytes.

The prefix cache of an LLM server only helps when a prompt starts with exactly the bytes an
earlier one had, so everything here is order-independent and free of anything that changes
between turns (ids, scores, "now"). ``prompt_layout.py`` arranges these pieces into requests;
``profile_block`` is the scope's profile as the chat prompt shows it (not to be confused with
consolidation's ``render_profile``, which *writes* the profile memory).

Pure functions over small dataclasses, dicts or any object with ``.text`` / ``.kind`` /
``.valid_from`` attributes: no dependency on memsvc's data model or on a tokenizer.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from memsvc.text.quoting import MAX_QUOTED_LABEL, quote, quote_label

__all__ = [
    "KIND_ORDER",
    "MemoryView",
    "dedupe",
    "format_date",
    "kind_rank",
    "normalize_text",
    "one_line",
    "profile_block",
    "quote",
    "quote_label",
    "to_memory_view",
]

#: Fixed order of memory kinds in the profile block. Grouping by kind first means a new fact
#: lands inside its group rather than reshuffling the whole block.
KIND_ORDER: tuple[str, ...] = (
    "profile", "preference", "fact", "event", "procedure", "summary", "episode",
)

_WS = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class MemoryView:
    """The three fields of a memory the prompt needs; everything else (ids, scores,
    created_at, access counts) is left out on purpose because it changes between turns."""

    text: str
    kind: str = "fact"
    valid_from: str | None = None  # ISO date "YYYY-MM-DD", or None when unknown
    #: Who it came from: the role of an episode's message, else the extractor that derived
    #: it ("rules", "llm", "consolidation"...); None when unknown.
    source: str | None = None


def normalize_text(text: str) -> str:
    """Deterministic text: NFC, no trailing spaces, runs of spaces collapsed, at most one
    blank line in a row. Two renderings of the same memory must be the same bytes."""
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def one_line(text: str) -> str:
    return " ".join(normalize_text(text).split())




def format_date(value: Any) -> str | None:
    """A memory's ``valid_from`` as ``YYYY-MM-DD`` (date only: a time of day would make the
    block noisier without helping the model, and string forms of datetimes vary)."""
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    s = str(value).strip()
    m = re.match(r"^(\d{4}-\d{2}-\d{2})", s)
    return m.group(1) if m else one_line(s)


def _kind_str(kind: Any) -> str:
    value = getattr(kind, "value", kind)  # enums
    return str(value or "fact").strip().lower()


def to_memory_view(obj: Any) -> MemoryView:
    """Accept a :class:`MemoryView`, a mapping, any object with ``.text`` (memsvc's memory
    model, a search hit), or a plain string."""
    if isinstance(obj, MemoryView):
        return obj
    if isinstance(obj, str):
        return MemoryView(text=one_line(obj))
    if isinstance(obj, Mapping):
        getter: Callable[[str], Any] = obj.get
    else:
        def getter(name: str) -> Any:
            return getattr(obj, name, None)
    text = getter("text")
    if text is None and getter("memory") is not None:  # Mem0-style result dicts
        text = getter("memory")
    if text is None:
        raise TypeError(f"memory has no text: {obj!r}")
    return MemoryView(text=one_line(text), kind=_kind_str(getter("kind")),
                      valid_from=format_date(getter("valid_from")),
                      source=_source(getter("source"), getter("metadata"),
                                     getter("provenance")))


def _source(source: Any, metadata: Any, provenance: Any) -> str | None:
    """Where a memory came from, as a short label: the caller's ``source``, an episode's
    message role, or the extractor that derived it."""
    if source is None and isinstance(metadata, Mapping):
        source = metadata.get("role")
    if source is None and provenance is not None:
        source = (provenance.get("extractor") if isinstance(provenance, Mapping)
                  else getattr(provenance, "extractor", None))
    if source is None or not str(source).strip():
        return None
    return quote_label(source)


def kind_rank(kind: str) -> tuple[int, str]:
    try:
        return (KIND_ORDER.index(kind), "")
    except ValueError:
        return (len(KIND_ORDER), kind)


def dedupe(views: Iterable[MemoryView]) -> list[MemoryView]:
    """Drop case-insensitive duplicates, keeping the position of the first occurrence (the
    retriever's rank) but a representative that does not depend on input order."""
    groups: dict[str, list[MemoryView]] = {}
    for v in views:
        if v.text:
            groups.setdefault(v.text.casefold(), []).append(v)
    return [min(g, key=lambda v: (v.valid_from or "", v.kind, v.text)) for g in groups.values()]


# --------------------------------------------------------------------------- rendering


def profile_block(profile: str | Mapping[str, Any] | Iterable[Any] | None) -> str:
    """Render a scope's profile block deterministically.

    - a string (a profile already rendered by consolidation) is only normalized;
    - a mapping (``{"name": "Caroline", "city": "Boston"}``) becomes ``- key: value`` lines
      sorted by key;
    - memory-like objects become ``- text`` lines grouped by kind in :data:`KIND_ORDER`,
      then oldest ``valid_from`` first (undated first), then text -- so the same set of
      memories always gives the same bytes, whatever order the store returned them in, and a
      new memory is appended near the end of its group rather than reshuffling the block.
    """
    if profile is None:
        return ""
    if isinstance(profile, str):
        # each line quoted: a profile is stored text, it may not open or close a block
        return "\n".join(quote(line) if line else ""
                         for line in normalize_text(profile).split("\n"))
    if isinstance(profile, Mapping):
        lines = [f"- {quote(k, limit=MAX_QUOTED_LABEL)}: {quote(v)}"
                 for k, v in sorted(profile.items(), key=lambda kv: str(kv[0]))
                 if v is not None and str(v).strip()]
        return "\n".join(lines)
    views = dedupe(to_memory_view(m) for m in profile)
    views.sort(key=lambda v: (kind_rank(v.kind), v.valid_from or "", v.text))
    return "\n".join(f"- {quote(v.text)}" for v in views)
