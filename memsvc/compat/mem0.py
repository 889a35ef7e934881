"""A Mem0 drop-in: `from memsvc.compat.mem0 import Memory` (or `MemoryClient`) and Mem0 code runs
on memsvc, with Mem0's method names, arguments and dict shapes.

Both Mem0 styles of scoping are accepted: top-level `user_id=` / `agent_id=` / `run_id=`
(Mem0 1.x, and `add` in 2.x) and `filters={"user_id": ...}` (Mem0 2.x `search`/`get_all`).
`run_id` is memsvc's `session_id`. Results are `{"results": [...]}` with Mem0's item keys
(`id`, `memory`, `hash`, `metadata`, `score`, `created_at`, `updated_at`, `user_id`,
`agent_id`, `run_id`, `role`, `actor_id`); `add` reports Mem0's events.

Where memsvc differs (README "Agent frameworks" lists it too):

- `add` keeps every message verbatim as an `episode` memory and reports it as an ADD; with
  `infer=True` (Mem0's default) memsvc's extractor adds typed facts on top, and its
  decisions map to Mem0's events: ADD → ADD, NOOP → NONE, UPDATE → UPDATE, and INVALIDATE
  (an old fact retired by a new one) → DELETE, though memsvc keeps the old one as superseded.
- `delete` and `delete_all` are soft: the memory disappears from search and lists but its
  history stays (Mem0 erases it). `score` is memsvc's fused rank score, not a cosine, so
  `threshold` is ignored. `rerank`, `memory_type`, `prompt` and config dicts are not used:
  memsvc has its own store, embedder and extractor (`Memory(db_path=...)` chooses the file).
- Errors are `ValueError`s carrying memsvc's message; `get` of an unknown id returns None.
"""

from __future__ import annotations

import warnings
from typing import Any

from memsvc import HistoryEntry, MemoryRecord, NotFoundError
from memsvc import Memory as _Memory
from memsvc import MemoryClient as _MemoryClient

_EVENTS = {"ADD": "ADD", "UPDATE": "UPDATE", "INVALIDATE": "DELETE", "NOOP": "NONE",
           "DELETE": "DELETE"}
_ENTITY = ("user_id", "agent_id", "run_id")
_LOGIC = ("AND", "OR", "NOT")
_OPS = {"eq", "ne", "in", "nin", "gt", "gte", "lt", "lte"}
_TIME_FIELDS = {"created_at", "updated_at"}


class _Mem0:
    """Mem0's `Memory` API over a synchronous memsvc SDK object (`_sdk`)."""

    _sdk: Any

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: dict[str, Any] | None = None,
            infer: bool = True, memory_type: str | None = None, prompt: str | None = None,
            **_: Any) -> dict[str, Any]:
        if memory_type is not None:
            raise ValueError("memsvc.compat.mem0 does not create procedural memories "
                             "(memory_type); add the text as a memory instead")
        result = self._sdk.add(_without_system(messages), user_id=user_id, agent_id=agent_id,
                               session_id=run_id, metadata=metadata, infer=infer)
        return {"results": [{"id": c.id, "memory": c.text, "event": _EVENTS[c.event.value]}
                            for c in result.results]}

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int | None = None, top_k: int | None = None,
               filters: dict[str, Any] | None = None, threshold: float | None = None,
               **_: Any) -> dict[str, Any]:
        scope, rest = _split(filters, user_id, agent_id, run_id)
        response = self._sdk.search(query, limit=top_k or limit or 20,
                                    filters=_filters(rest), **scope)
        return {"results": [_item(h.memory, h.score) for h in response.results]}

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                run_id: str | None = None, limit: int | None = None, top_k: int | None = None,
                filters: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        scope, rest = _split(filters, user_id, agent_id, run_id)
        page = self._sdk.get_all(limit=top_k or limit or 100, filters=_filters(rest), **scope)
        return {"results": [_item(r) for r in page.items]}

    def get(self, memory_id: str) -> dict[str, Any] | None:
        try:
            record = self._sdk.get(memory_id)
        except NotFoundError:
            return None
        return None if record.status.value == "deleted" else _item(record)

    def update(self, memory_id: str, data: str | None = None, *, text: str | None = None,
               metadata: dict[str, Any] | None = None) -> dict[str, str]:
        _found(lambda: self._sdk.update(memory_id, text if text is not None else data,
                                        metadata=metadata))
        return {"message": "Memory updated successfully!"}

    def delete(self, memory_id: str) -> dict[str, str]:
        _found(lambda: self._sdk.delete(memory_id))
        return {"message": "Memory deleted successfully!"}

    def delete_all(self, user_id: str | None = None, agent_id: str | None = None,
                   run_id: str | None = None) -> dict[str, str]:
        if not (user_id or agent_id or run_id):
            raise ValueError("At least one filter is required to delete all memories. If you "
                             "want to delete all memories, use the `reset()` method.")
        self._sdk.delete_all(user_id=user_id, agent_id=agent_id, session_id=run_id)
        return {"message": "Memories deleted successfully!"}

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        entries = _found(lambda: self._sdk.history(memory_id))
        return [_history(e) for e in entries]

    def reset(self) -> None:
        reset = getattr(self._sdk, "reset", None)
        if reset is None:
            raise NotImplementedError("this memsvc server does not offer reset over HTTP yet")
        reset()

    def chat(self, query: str) -> Any:
        raise NotImplementedError("Chat function not implemented yet.")

    def close(self) -> None:
        self._sdk.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Memory(_Mem0):
    """`mem0.Memory` on an embedded memsvc store: `Memory()` opens the default store."""

    def __init__(self, config: Any = None, *, db_path: str | None = None,
                 memory: _Memory | None = None) -> None:
        if config:
            keys = sorted(config) if isinstance(config, dict) else [type(config).__name__]
            warnings.warn(f"memsvc.compat.mem0 ignores Mem0 config {keys}: memsvc uses its own "
                          "store, embedder and extractor (pass db_path= to choose the file)",
                          UserWarning, stacklevel=2)
        self._sdk = memory if memory is not None else _Memory(db_path)

    @classmethod
    def from_config(cls, config_dict: dict[str, Any]) -> Memory:
        return cls(config_dict)


class MemoryClient(_Mem0):
    """`mem0.MemoryClient` on a memsvc server: `MemoryClient(api_key, host="http://...")`."""

    def __init__(self, api_key: str | None = None, host: str | None = None,
                 org_id: str | None = None, project_id: str | None = None,
                 client: _MemoryClient | None = None) -> None:
        self._sdk = client if client is not None else _MemoryClient(
            host or "http://127.0.0.1:8000", api_key=api_key)


def _found(action: Any) -> Any:
    """Run an id-based call; a missing id is Mem0's ValueError, with memsvc's message."""
    try:
        return action()
    except NotFoundError as exc:
        raise ValueError(f"Memory with id not found: {exc}") from exc


def _split(filters: dict[str, Any] | None, user_id: str | None, agent_id: str | None,
           run_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The memsvc scope (from the arguments or from Mem0 2.x `filters`) and the other filters."""
    rest = dict(filters or {})
    ids = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
    for key in _ENTITY:
        if key in rest and not isinstance(rest[key], dict):
            ids[key] = ids[key] or rest.pop(key)
    return {"user_id": ids["user_id"], "agent_id": ids["agent_id"],
            "session_id": ids["run_id"]}, rest


def _filters(raw: dict[str, Any]) -> dict[str, Any] | None:
    """Mem0 metadata filters as memsvc filters: keys are metadata keys (`metadata.` prefix),
    `"*"` means "has the key", `NOT` takes a list; `contains` has no memsvc equivalent."""
    if not raw:
        return None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _LOGIC:
            parts = value if isinstance(value, list) else [value]
            children = [_filters(p) for p in parts]
            if key == "NOT":
                out["NOT"] = children[0] if len(children) == 1 else {"AND": children}
            else:
                out[key] = children
            continue
        if key in _ENTITY:  # a scope column given as a condition, e.g. {"in": [...]}
            field = "session_id" if key == "run_id" else key
        elif key in _TIME_FIELDS or key.startswith("metadata."):
            field = key
        else:
            field = f"metadata.{key}"
        if value == "*":
            out[field] = {"ne": None}
        elif isinstance(value, dict):
            bad = sorted(set(value) - _OPS)
            if bad:
                raise ValueError(f"filter operator {bad[0]!r} on {key!r} is not supported by "
                                 f"memsvc; use one of {sorted(_OPS)}")
            out[field] = value
        else:
            out[field] = value
    return out


def _item(record: MemoryRecord, score: float | None = None) -> dict[str, Any]:
    meta = dict(record.metadata)
    role, speaker = meta.pop("role", None), meta.pop("speaker", None)
    item: dict[str, Any] = {
        "id": record.id,
        "memory": record.text,
        "hash": record.content_hash,
        "metadata": meta or None,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }
    if score is not None:
        item["score"] = score
    scope = record.scope
    for key, value in (("user_id", scope.user_id), ("agent_id", scope.agent_id),
                       ("run_id", scope.session_id), ("role", role)):
        if value is not None:
            item[key] = value
    if speaker is not None and speaker != role:
        item["actor_id"] = speaker
    return item


def _history(entry: HistoryEntry) -> dict[str, Any]:
    old = (entry.old or {}).get("text")
    new = (entry.new or {}).get("text")
    deleted = entry.event.value == "DELETE"
    return {
        "id": str(entry.id),
        "memory_id": entry.memory_id,
        "old_memory": old,
        "new_memory": None if deleted else new,
        "event": _EVENTS.get(entry.event.value, entry.event.value),
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.created_at.isoformat() if entry.event.value != "ADD" else None,
        "is_deleted": int(deleted),
        "actor_id": entry.actor,
        "role": None,
    }


def _without_system(messages: Any) -> Any:
    """Mem0's own examples add the system prompt along with the turns (memories included);
    memsvc stores no system messages, so they are left out (an add of only system
    messages still reaches memsvc, which refuses it)."""
    if not isinstance(messages, list):
        return messages
    kept = [m for m in messages if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                                        and m["role"].strip().casefold() == "system")]
    return kept or messages
