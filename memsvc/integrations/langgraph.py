"""`MemsvcStore`: a LangGraph `BaseStore` whose items live in memsvc.

How LangGraph's model maps onto memsvc's (README "Agent frameworks" repeats it):

- **Scope.** An item's memsvc `user_id` is one label of its namespace, `namespace[user_index]`
  (default -1, the last: LangMem's `("memories", "{user_id}")`; pass `user_index=0` for
  `(user_id, "memories")`). The store's `agent_id` (default "langgraph") is added to every
  scope, which is what lets one search span users (a namespace prefix need not name one).
  The whole namespace is kept too, so two namespaces that share a user never mix.
- **Item.** One `episode` memory per item. Its metadata holds `lg_namespace` (the labels
  joined with "." — LangGraph forbids "." in a label, so the join is exact), `lg_key`, one
  `lg_ns<i>` per label (prefix search is then an exact filter), and `lg_value`: the dict value
  itself, refused unless it survives a JSON round trip unchanged. The memory's text is a
  rendering of the indexed fields: that is what memsvc embeds and BM25-indexes.
- **Key.** Exact: `get` filters on `lg_namespace` and `lg_key`; memsvc ids stay internal.
  `put` on an existing key is a memsvc `update` (the old value stays in `history`), a delete
  (`put(..., None)`) a soft delete (also kept in history).
- **Search** returns memsvc's ranking and fused scores (`SearchItem.score`); without a
  query, items come in insertion order (as in InMemoryStore) with no score.
- **Namespaces.** memsvc lists by scope, so every namespace holding items is registered as
  a memory of the scope `agent_id=registry_agent`, which `list_namespaces` reads. A search
  is one memsvc call: scoped to the user when the prefix names it (a non-negative
  `user_index` inside the prefix), else to the store's `agent_id` (with `agent_id=None`,
  one call per user the registry lists under the prefix).
- **TTL** is not supported (`supports_ttl = False`): a `ttl` raises `NotImplementedError`,
  as `BaseStore.put` does for such stores. `index=False` stores the key alone as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from memsvc import InvalidFilterError, InvalidInputError, MemoryRecord, TextTooLargeError
from memsvc.integrations._backend import Backend, Plan, call, scope_kwargs

REGISTRY_AGENT = "langgraph-namespaces"
_OPS = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")  # what a memsvc metadata filter path allows
_PAGE = 1000  # memsvc's largest page
_EPISODE = ["episode"]
MAX_VALUE_BYTES = 256 * 1024  # JSON of one value; well under the server's 1 MiB body limit
MAX_TEXT_BYTES = 16 * 1024  # the indexed rendering is cut here (memsvc's default limit: 32 KiB)


class MemsvcStore(BaseStore):
    """A LangGraph store on memsvc: `create_react_agent(model, tools, store=MemsvcStore(m))`."""

    supports_ttl = False

    def __init__(self, memory: Any, *, user_index: int = -1, agent_id: str | None = "langgraph",
                 index_fields: list[str] | None = None,
                 registry_agent: str = REGISTRY_AGENT) -> None:
        self.backend = Backend(memory)
        self.user_index = user_index
        self.agent_id = agent_id
        self.index_fields = index_fields
        # one registry per agent_id, so two stores on one memsvc list only their own
        self.registry_agent = registry_agent + (f":{agent_id}" if agent_id else "")
        self._known: set[str] = set()  # namespaces this process has seen registered

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self.backend.run(self._plan(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self.backend.arun(self._plan(list(ops)))

    # -- the plan of one batch: every op is checked before the first one runs ---------------

    def _plan(self, ops: list[Op]) -> Plan[list[Result]]:
        checked = [self._check(op) for op in ops]
        results: list[Result] = []
        for op, extra in zip(ops, checked, strict=True):
            if isinstance(op, GetOp):
                record = yield from self._find(op.namespace, op.key)
                results.append(None if record is None else _item(record))
            elif isinstance(op, PutOp):
                yield from self._put(op, extra)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append((yield from self._search(op, extra)))
            else:
                results.append((yield from self._list_namespaces(op)))
        return results

    def _check(self, op: Op) -> Any:
        """Refuse a bad op with LangGraph's error types before anything is written."""
        if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp):
            raise ValueError(f"Unknown operation type: {type(op).__name__}")
        validate_op_namespace(op)
        if isinstance(op, GetOp):
            self._user(op.namespace)
        elif isinstance(op, PutOp):
            return self._check_put(op)
        elif isinstance(op, SearchOp):
            return _translate_filter(op.filter or {})
        return None

    def _check_put(self, op: PutOp) -> tuple[str, dict[str, Any]] | None:
        if not op.namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        if op.namespace[0] == "langgraph":
            raise InvalidNamespaceError(
                f'Root label for namespace cannot be "langgraph". Got: {op.namespace}')
        self._user(op.namespace)
        if not isinstance(op.key, str):
            raise InvalidInputError("item keys must be strings", field="key")
        if op.ttl is not None:
            raise NotImplementedError(
                "TTL is not supported by MemsvcStore. Use a store implementation that "
                "supports TTL or set ttl=None.")
        if op.value is None:
            return None
        value = _json_value(op.value)
        size = len(json.dumps(value).encode())
        if size > MAX_VALUE_BYTES:
            raise TextTooLargeError(f"item value is {size} bytes of JSON; the limit is "
                                    f"{MAX_VALUE_BYTES} bytes", field="value")
        return self._render(op.key, value, op.index), value

    def _user(self, namespace: tuple[str, ...]) -> str:
        try:
            return namespace[self.user_index]
        except IndexError:
            raise InvalidNamespaceError(
                f"namespace {namespace} has no label at index {self.user_index} to use as "
                "the memsvc user_id (MemsvcStore(user_index=...))") from None

    def _scope(self, namespace: tuple[str, ...]) -> dict[str, str]:
        return scope_kwargs(self._user(namespace), self.agent_id, None)

    def _render(self, key: str, value: dict[str, Any], index: Any) -> str:
        """The memory text: what memsvc embeds and BM25-indexes for this item."""
        if index is False:
            return f"item {key}"
        fields = index if index is not None else self.index_fields
        if not fields or fields == ["$"]:
            texts = list(_leaves(value))
        else:
            texts = [t for f in fields for t in get_text_at_path(value, tokenize_path(f))]
        text = "\n".join(t for t in texts if t.strip()) or f"item {key}"
        return text.encode()[:MAX_TEXT_BYTES].decode(errors="ignore")

    # -- operations ------------------------------------------------------------------------

    def _find(self, namespace: tuple[str, ...], key: str) -> Plan[MemoryRecord | None]:
        """The item under `key`, also when memsvc quarantined its text (a key-value store
        must not lose what was put; quarantine still keeps it out of `search`)."""
        for status in (None, "quarantined"):
            page = yield call("get_all", **self._scope(namespace), kinds=_EPISODE, limit=1,
                              filters={"metadata.lg_namespace": ".".join(namespace),
                                       "metadata.lg_key": key}, status=status)
            if page.items:
                item: MemoryRecord = page.items[0]
                return item
        return None

    def _put(self, op: PutOp, checked: tuple[str, dict[str, Any]] | None) -> Plan[None]:
        existing = yield from self._find(op.namespace, op.key)
        if checked is None:  # a delete
            if existing is not None:
                yield call("delete", existing.id)
                yield from self._unregister_if_empty(op.namespace)
            return
        text, value = checked
        meta = {"lg_namespace": ".".join(op.namespace), "lg_key": op.key, "lg_value": value,
                **{f"lg_ns{i}": label for i, label in enumerate(op.namespace)}}
        if existing is not None:
            yield call("update", existing.id, text, metadata={**existing.metadata, **meta})
            return
        yield from self._register(op.namespace)
        yield call("add", [{"role": "user", "content": text}], metadata=meta, infer=False,
                   **self._scope(op.namespace))

    def _search(self, op: SearchOp,
                translated: tuple[list[dict[str, Any]], list[tuple[tuple[str, ...], Any]]],
                ) -> Plan[list[SearchItem]]:
        sql, in_python = translated
        prefix = [{f"metadata.lg_ns{i}": label} for i, label in enumerate(op.namespace_prefix)]
        conditions = prefix + sql
        filters = {"AND": conditions} if conditions else None
        scopes: list[dict[str, str]]
        if 0 <= self.user_index < len(op.namespace_prefix):  # the prefix names the user
            scopes = [scope_kwargs(op.namespace_prefix[self.user_index], self.agent_id, None)]
        elif self.agent_id:  # every item of this store carries its agent_id: one call
            scopes = [scope_kwargs(None, self.agent_id, None)]
        else:  # no agent_id: one call per user the registry knows under the prefix
            namespaces = yield from self._registered(prefix)
            scopes = [scope_kwargs(u, None, None) for u in sorted(
                {self._user(ns) for ns in namespaces if _has_user(ns, self.user_index)})]
        want = _PAGE if in_python else max(1, min(_PAGE, op.offset + op.limit))
        found: list[tuple[float | None, MemoryRecord]] = []
        for scope in scopes:
            if op.query:
                response = yield call("search", op.query, filters=filters, kinds=_EPISODE,
                                      limit=want, **scope)
                found += [(h.score, h.memory) for h in response.results]
            else:
                page = yield call("get_all", filters=filters, kinds=_EPISODE, limit=want, **scope)
                found += [(None, r) for r in page.items]
        if in_python:
            found = [(s, r) for s, r in found
                     if all(_matches(r.metadata["lg_value"], p, v) for p, v in in_python)]
        if op.query:
            found.sort(key=lambda sr: -(sr[0] or 0.0))
        else:
            found.sort(key=lambda sr: sr[1].id)  # ULIDs: creation order
        return [_item(r, score) for score, r in found[op.offset: op.offset + op.limit]]

    def _list_namespaces(self, op: ListNamespacesOp) -> Plan[list[tuple[str, ...]]]:
        namespaces = yield from self._registered([])
        for condition in op.match_conditions or ():
            namespaces = [ns for ns in namespaces if _does_match(condition, ns)]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset: op.offset + op.limit]

    # -- the namespace registry ------------------------------------------------------------

    def _registered(self, prefix: list[dict[str, str]]) -> Plan[list[tuple[str, ...]]]:
        found: set[tuple[str, ...]] = set()
        cursor = None
        while True:
            page = yield call("get_all", agent_id=self.registry_agent, limit=_PAGE,
                              cursor=cursor, filters={"AND": prefix} if prefix else None)
            found.update(tuple(r.metadata["lg_registry"].split(".")) for r in page.items)
            if page.next_cursor is None:
                return sorted(found)
            cursor = page.next_cursor

    def _register(self, namespace: tuple[str, ...]) -> Plan[None]:
        name = ".".join(namespace)
        if name in self._known:
            return
        page = yield call("get_all", agent_id=self.registry_agent, limit=1,
                          filters={"metadata.lg_registry": name})
        if not page.items:
            # written by this store itself, so the agent's voice: a "tool" entry would be
            # external trust, which the registry's own default reads leave out
            yield call("add", [{"role": "assistant", "content": f"langgraph namespace {name}"}],
                       agent_id=self.registry_agent, infer=False,
                       metadata={"lg_registry": name,
                                 **{f"lg_ns{i}": label for i, label in enumerate(namespace)}})
        self._known.add(name)

    def _unregister_if_empty(self, namespace: tuple[str, ...]) -> Plan[None]:
        name = ".".join(namespace)
        left = yield call("get_all", **self._scope(namespace), kinds=_EPISODE, limit=1,
                          filters={"metadata.lg_namespace": name})
        if left.items:
            return
        page = yield call("get_all", agent_id=self.registry_agent, limit=_PAGE,
                          filters={"metadata.lg_registry": name})
        for record in page.items:
            yield call("delete", record.id, hard=True)
        self._known.discard(name)


def _item(record: MemoryRecord, score: float | None = None) -> SearchItem:
    meta = record.metadata
    return SearchItem(namespace=tuple(meta["lg_namespace"].split(".")), key=meta["lg_key"],
                      value=meta["lg_value"], created_at=record.created_at,
                      updated_at=record.updated_at, score=score)


def _has_user(namespace: tuple[str, ...], index: int) -> bool:
    return -len(namespace) <= index < len(namespace)


def _json_value(value: Any) -> dict[str, Any]:
    """The value as stored: a dict that survives a JSON round trip unchanged, or an error."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"an item value must be a dict, got {type(value).__name__}",
                                field="value")
    value = dict(value)
    try:
        dumped = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"item value is not JSON: {exc}", field="value") from exc
    if json.loads(dumped) != value:
        raise InvalidInputError("item value changes in a JSON round trip (tuples, non-string "
                                "keys?); store lists and string keys", field="value")
    return value


def _leaves(value: Any, key: str = "") -> Iterable[str]:
    """Each string of a JSON value as it is, other scalars as `key: value`, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    elif isinstance(value, str):
        yield value
    elif value is not None:
        yield f"{key}: {json.dumps(value)}" if key else json.dumps(value)


def _translate_filter(raw: dict[str, Any], path: tuple[str, ...] = (),
                      ) -> tuple[list[dict[str, Any]], list[tuple[tuple[str, ...], Any]]]:
    """A LangGraph value filter as memsvc metadata conditions, plus the parts SQL cannot
    express (list equality, keys outside memsvc's filter alphabet), checked in Python."""
    if not isinstance(raw, dict):
        raise InvalidFilterError("filter must be a dict of value fields", field="filter")
    sql: list[dict[str, Any]] = []
    python: list[tuple[tuple[str, ...], Any]] = []
    for key, want in raw.items():
        here = (*path, key)
        if isinstance(want, dict) and any(str(k).startswith("$") for k in want):
            bad = [k for k in want if k not in _OPS]
            if bad:
                raise InvalidFilterError(f"filter.{'.'.join(map(str, here))}: unsupported "
                                         f"operator {bad[0]!r}; use one of {sorted(_OPS)}",
                                         field="filter")
            for op, operand in want.items():
                if _sql_ok(here, operand):
                    sql.append({"metadata.lg_value." + ".".join(here): {_OPS[op]: operand}})
                else:
                    python.append((here, {op: operand}))
        elif isinstance(want, dict) and all(isinstance(k, str) for k in want) and want:
            more_sql, more_python = _translate_filter(want, here)
            sql += more_sql
            python += more_python
        elif _sql_ok(here, want):
            sql.append({"metadata.lg_value." + ".".join(here): want})
        else:
            python.append((here, want))
    return sql, python


def _sql_ok(path: tuple[Any, ...], operand: Any) -> bool:
    return (all(isinstance(p, str) and _PLAIN_KEY.match(p) for p in path)
            and (operand is None or isinstance(operand, str | int | float | bool)))


def _matches(value: Any, path: tuple[str, ...], want: Any) -> bool:
    """InMemoryStore's comparison (JSONB-like), for the filter parts SQL did not take."""
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return _compare(value, want)


def _compare(value: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if any(str(k).startswith("$") for k in want):
            return all(_apply(value, op, operand) for op, operand in want.items())
        return isinstance(value, dict) and all(_compare(value.get(k), v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (isinstance(value, list) and len(value) == len(want)
                and all(_compare(a, b) for a, b in zip(value, want, strict=True)))
    return bool(value == want)


def _apply(value: Any, op: str, operand: Any) -> bool:
    if op in ("$eq", "$ne"):
        return _compare(value, operand) == (op == "$eq")
    try:
        a, b = float(value), float(operand)
    except (TypeError, ValueError):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = (zip(namespace, path, strict=False) if condition.match_type == "prefix"
             else zip(reversed(namespace), reversed(path), strict=False))
    return all(p == "*" or n == p for n, p in pairs)
