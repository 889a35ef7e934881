"""The integrity checks on a SQL store, for both backends: load and save chain heads and
entries inside a write, check rows as they are read, check scopes on open and on list.

One `StoreIntegrity` per open store, shared by its tenant views: the keyring, the store id,
the witness and the monitor (what was refused). A backend hands over only its `Layout`: its
`memories` table and record columns, how to open a fresh read of a tenant, and how values
look once stored (SQLite: storage/sqlite/integrity.py; PostgreSQL: storage/postgres/
integrity.py). The read path costs one correlated lookup per memory row (the latest chain
entry of its id, by index) and one HMAC per row; listing a user's memories also compares the
scope's head with its rows (three indexed queries).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, Table, bindparam, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from memsvc.model.records import Scope
from memsvc.storage.integrity.chain import ChainWriter, Head
from memsvc.storage.integrity.checks import (
    Finding,
    IntegrityMonitor,
    head_problem,
    row_problem,
    scope_problems,
)
from memsvc.storage.integrity.codec import RowKind, scope_key
from memsvc.storage.integrity.keys import load_keyring
from memsvc.storage.integrity.witness import Witness
from memsvc.storage.schema import (
    UTCDateTime,
    history,
    integrity_chain,
    integrity_heads,
    messages,
    store_meta,
)

_TIME = UTCDateTime()
_JSON_FIELDS = frozenset({"entities", "metadata", "source_message_ids", "old", "new"})
_OWNER = {"memories": "user_id", "messages": "user_id", "history": "chain_user"}
_chain = integrity_chain.c
_HEAD_FIELDS = ("seq", "tag", "base", "base_tag", "memories", "messages", "history",
                "mac_key", "mac")


def stored_form(kind: RowKind, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as the database gives them back (times through the column type, JSON
    through json), so the MAC signed now is the one recomputed on read."""
    del kind  # the same for every table here; a backend may differ per table
    out = dict(values)
    for name, value in values.items():
        if isinstance(value, datetime):
            out[name] = _TIME.process_result_value(_TIME.process_bind_param(value, None), None)
        elif name in _JSON_FIELDS and value is not None:
            out[name] = json.loads(json.dumps(value))
    return out


def _nothing(*_: Any) -> None:
    """A backend step with nothing to do (PostgreSQL keeps the vector in the row)."""


@dataclass(frozen=True)
class Layout:
    """What differs between the backends, for the integrity code: nothing else does.

    `memories` is the backend's table (PostgreSQL adds the vector and full-text columns) and
    `columns` what a read fetches of it; `reading(tenant)` opens a fresh read transaction;
    `stored_form` gives values as the database returns them; `drop_vectors` /
    `vectors_deleted` keep a separate vector index in step (by row pk); `purge_orphans`
    drops graph entities no memory links to after an erase; `lock_scope` serialises the
    writers of one chain where the database does not (SQLite's write lock already does;
    PostgreSQL takes a transaction-level advisory lock, so two replicas never fork it).
    """

    memories: Table
    columns: Sequence[Any]
    reading: Callable[[str], AbstractContextManager[Connection]]
    purge_orphans: Callable[[Connection, str, Scope | None], None]
    stored_form: Callable[[RowKind, Mapping[str, Any]], dict[str, Any]] = stored_form
    lock_scope: Callable[[Connection, str, str], None] = _nothing
    drop_vectors: Callable[[Connection, list[int]], None] = _nothing
    vectors_deleted: Callable[[Connection, list[int]], None] = _nothing
    tables: dict[str, Table] = field(init=False)
    _memory_select: Any = field(init=False)
    _memories_by_id: Any = field(init=False)

    def __post_init__(self) -> None:
        tables = {"memories": self.memories, "messages": messages, "history": history}
        object.__setattr__(self, "tables", tables)
        object.__setattr__(self, "_memory_select", self._build_memory_select())
        object.__setattr__(self, "_memories_by_id", self._memory_select.where(
            self.memories.c.tenant == bindparam("tenant"),
            self.memories.c.id.in_(bindparam("ids", expanding=True)),
        ))

    def memory_select(self) -> Any:
        """The memory rows with the MAC of the latest entry for each in its user's chain
        (the change that must have written it; a memory moved to another user left a
        "move" entry in the old chain). Built once: statements are immutable."""
        return self._memory_select

    def memories_by_id(self) -> Any:
        """`memory_select` of a tenant's memories by id, with ``tenant`` and ``ids`` bound on
        execute: every search fetches its hits with it, and building the statement anew
        took longer than running it."""
        return self._memories_by_id

    def _build_memory_select(self) -> Any:
        m = self.memories.c
        latest = (
            select(_chain.digest)
            .where(_chain.tenant == m.tenant,
                   _chain.ref == literal("mem:", String) + m.id,
                   _chain.scope == func.coalesce(m.user_id, ""))
            .order_by(_chain.seq.desc())
            .limit(1)
            .scalar_subquery()
            .label("chain_digest")
        )
        return select(*self.columns, latest)


def _digest_at(table: Any, owner: Any) -> Any:
    """The digest of the chain entry at a row's own position."""
    return (
        select(_chain.digest)
        .where(_chain.tenant == table.c.tenant, _chain.scope == func.coalesce(owner, ""),
               _chain.seq == table.c.chain_seq)
        .scalar_subquery()
        .label("chain_digest")
    )


def message_select() -> Any:
    return select(messages, _digest_at(messages, messages.c.user_id))


def history_select() -> Any:
    return select(history, _digest_at(history, history.c.chain_user))


def head_from_row(row: Any) -> Head:
    return Head(row.tenant, row.scope, **{f: getattr(row, f) for f in _HEAD_FIELDS})


def _owner_clause(table: Any, tenant: str, scope: str) -> list[Any]:
    """The rows of a scope (memories and messages keep no user as NULL, history as '')."""
    column = table.c[_OWNER[table.name]]
    if table.name == "history" or scope:
        return [table.c.tenant == tenant, column == scope]
    return [table.c.tenant == tenant, column.is_(None)]


class StoreIntegrity:
    """The integrity state of one open store (see module docstring). `conn` reads the
    store id; `witness_name` names the witness file (default: the store id)."""

    def __init__(self, layout: Layout, conn: Connection, witness_name: str | None = None
                 ) -> None:
        self.layout = layout
        self.keyring = load_keyring()
        self.store_id: str = conn.execute(
            select(store_meta.c.value).where(store_meta.c.key == "store_id")
        ).scalar_one()
        self.witness = Witness(witness_name or self.store_id)
        self.monitor = IntegrityMonitor()
        self.opened_tenants: set[str] = set()  # checked on open (one tenant at a time)

    # -- writes ---------------------------------------------------------------------------

    def writer(self, conn: Connection) -> ChainWriter:
        def load(tenant: str, scope: str) -> Head | None:
            self.layout.lock_scope(conn, tenant, scope)
            return load_head(conn, tenant, scope)

        return ChainWriter(self.keyring, self.store_id, load)

    def sign(self, chain: ChainWriter, kind: RowKind, tenant: str, scope: str,
             values: dict[str, Any], *, event: str, ref: str | None = None) -> dict[str, Any]:
        """`values` (a row about to be written) with its chain position and MAC added."""
        seal = chain.sign(kind, tenant, scope, self.layout.stored_form(kind, values),
                          event=event, ref=ref)
        return {**values, **seal.columns()}

    def save(self, conn: Connection, chain: ChainWriter) -> None:
        """Store a write's entries and heads (before its commit)."""
        save_chain(conn, chain)

    def committed(self, chain: ChainWriter) -> None:
        """After the commit: tell the witness. The write stands if it cannot be told (the
        failure is logged and counted): only rollback detection is weaker until it can."""
        try:
            self.witness.advance(
                (h.tenant, h.scope, h.seq, h.tag) for h in chain.changed_heads()
            )
        except OSError as exc:
            self.monitor.witness_failed(self.witness.path, exc)

    # -- reads ----------------------------------------------------------------------------

    def check_row(self, kind: RowKind, values: Mapping[str, Any], owner: str) -> Finding | None:
        tenant, scope = values["tenant"], scope_key(values[owner])
        problem = row_problem(
            self.keyring, kind, store_id=self.store_id, tenant=tenant, scope=scope,
            values=values, chain_digest=values["chain_digest"],
        )
        if problem is None:
            return None
        ref = values["id"] if kind != "history" else f"{values['memory_id']}#{values['id']}"
        return Finding(tenant, scope, kind, str(ref), problem)

    def served(self, kind: RowKind, found: Iterable[Any], *, strict: bool = False) -> list[Any]:
        """The rows that pass; the others are refused (logged, counted) and dropped, or with
        `strict` (a get by id) raise IntegrityError."""
        owner = "chain_user" if kind == "history" else "user_id"
        out = []
        for row in found:
            values = row._mapping
            flagged = self.monitor.scope_error(values["tenant"], scope_key(values[owner]))
            if flagged is not None:
                if strict:
                    raise flagged
                continue
            finding = self.check_row(kind, values, owner)
            if finding is None:
                out.append(row)
                continue
            error = self.monitor.refuse(finding)
            if strict:
                raise error
        return out

    def check_scope(self, conn: Connection, tenant: str, user_id: str | None,
                    table: str) -> None:
        """Before listing a user's rows (the first statement of `conn`'s read transaction):
        head against chain, `table`'s rows and witness; IntegrityError (and the scope
        flagged) if they disagree."""
        scope = scope_key(user_id)
        if (tenant, scope) not in self.monitor.flagged:
            # The witness point is taken before the snapshot starts: a write committed after
            # it can only make the snapshot newer, never older, than the point.
            witnessed = self.witness.known.get((tenant, scope))
            problems = self._scope_now(conn, tenant, scope, table, witnessed)
            if problems:  # another process may have moved the witness (a rekey): look again
                witnessed = self._reload_witness().get((tenant, scope))
                with self.layout.reading(tenant) as fresh:
                    problems = self._scope_now(fresh, tenant, scope, table, witnessed)
            for problem in problems:
                self.monitor.flag(Finding(tenant, scope, "chain", None, problem))
        error = self.monitor.scope_error(tenant, scope)
        if error is not None:
            raise error

    def _reload_witness(self) -> dict[tuple[str, str], tuple[int, str]]:
        try:
            return self.witness.load()
        except OSError as exc:
            self.monitor.witness_failed(self.witness.path, exc)
            return dict(self.witness.known)

    def _scope_now(self, conn: Connection, tenant: str, scope: str, table: str,
                   witnessed: tuple[int, str] | None) -> list[str]:
        head = load_head(conn, tenant, scope)
        last = conn.execute(
            select(_chain.seq, _chain.tag)
            .where(_chain.tenant == tenant, _chain.scope == scope)
            .order_by(_chain.seq.desc()).limit(1)
        ).first()
        tbl = self.layout.tables[table]
        count = conn.execute(
            select(func.count()).select_from(tbl).where(*_owner_clause(tbl, tenant, scope))
        ).scalar_one()
        return self.scope_problems(conn, head, tenant, scope, last, {table: count},
                                   witnessed=witnessed)

    def scope_problems(
        self, conn: Connection, head: Head | None, tenant: str, scope: str, last: Any,
        counts: Mapping[str, int], entries: int | None = None, *,
        witnessed: tuple[int, str] | None,
    ) -> list[str]:
        out = []
        if head is not None and (problem := head_problem(self.keyring, self.store_id, head)):
            out.append(problem)
        at_witness = None
        if head is not None and witnessed is not None and head.seq > witnessed[0] > head.base:
            at_witness = conn.execute(select(_chain.tag).where(
                _chain.tenant == tenant, _chain.scope == scope, _chain.seq == witnessed[0]
            )).scalar_one_or_none()
        return out + scope_problems(
            head, last=(last[0], last[1]) if last else None, counts=counts, entries=entries,
            witnessed=witnessed, tag_at_witness=at_witness,
        )

    def check_open(self, conn: Connection, tenant: str | None = None) -> list[Finding]:
        """Every scope `conn` sees (of `tenant` only, if given: row-level security shows
        one): head, chain, counts, witness. Failing scopes are flagged (their reads fail
        closed); the store still opens, so other users are served."""
        witnessed = self._reload_witness()  # before the snapshot (see check_scope)
        if tenant is not None:
            witnessed = {k: v for k, v in witnessed.items() if k[0] == tenant}
        heads = {(h.tenant, h.scope): head_from_row(h)
                 for h in conn.execute(select(integrity_heads))}
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for table in self.layout.tables.values():
            owner = table.c[_OWNER[table.name]]  # grouped as stored: the scope index serves it
            for tenant, user, n in conn.execute(
                select(table.c.tenant, owner, func.count()).group_by(table.c.tenant, owner)
            ):
                per_table = counts.setdefault((tenant, scope_key(user)), {})
                per_table[table.name] = per_table.get(table.name, 0) + n
        chains = {(t, s): (n, last) for t, s, n, last in conn.execute(
            select(_chain.tenant, _chain.scope, func.count(), func.max(_chain.seq))
            .group_by(_chain.tenant, _chain.scope)
        )}
        tags = dict(((t, s), tag) for t, s, tag in conn.execute(
            select(integrity_heads.c.tenant, integrity_heads.c.scope, _chain.tag)
            .join(integrity_chain, (_chain.tenant == integrity_heads.c.tenant)
                  & (_chain.scope == integrity_heads.c.scope)
                  & (_chain.seq == integrity_heads.c.seq))
        ))
        findings = []
        keys: set[tuple[str, str]] = {*heads, *counts, *chains, *witnessed}
        for key in sorted(keys):
            tenant, scope = key
            head = heads.get(key)
            n, last_seq = chains.get(key, (0, None))
            last = None
            if last_seq is not None:
                last = (last_seq, tags.get(key) if head and last_seq == head.seq else "?")
            full = {t: counts.get(key, {}).get(t, 0) for t in self.layout.tables}
            if head is None and key in witnessed:
                findings.append(Finding(tenant, scope, "witness", None,
                                        "the witness knows this scope, the store does not"))
            for problem in self.scope_problems(conn, head, tenant, scope, last, full, n,
                                               witnessed=witnessed.get(key)):
                findings.append(Finding(tenant, scope, "chain", None, problem))
        for finding in findings:
            self.monitor.flag(finding)
        new = [(h.tenant, h.scope, h.seq, h.tag) for k, h in heads.items()
               if k not in witnessed and k not in self.monitor.flagged]
        try:
            self.witness.advance(new)  # first sight of a scope (or of the store): trust it
        except OSError as exc:
            self.monitor.witness_failed(self.witness.path, exc)
        return findings


def load_head(conn: Connection, tenant: str, scope: str) -> Head | None:
    row = conn.execute(select(integrity_heads).where(
        integrity_heads.c.tenant == tenant, integrity_heads.c.scope == scope
    )).first()
    return head_from_row(row) if row is not None else None


def save_chain(conn: Connection, chain: ChainWriter) -> None:
    """Store a write's entries and heads (before its commit)."""
    for head in chain.pruned:
        conn.execute(delete(integrity_chain).where(
            _chain.tenant == head.tenant, _chain.scope == head.scope, _chain.seq <= head.base
        ))
    if chain.entries:
        conn.execute(integrity_chain.insert(), [
            {"tenant": e.tenant, "scope": e.scope, "seq": e.seq, "ref": e.ref,
             "event": e.event, "digest": e.digest, "tag": e.tag, "mac_key": e.mac_key}
            for e in chain.entries
        ])
    for head in chain.changed_heads():
        values = {f: getattr(head, f) for f in _HEAD_FIELDS}
        upsert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            upsert(integrity_heads)
            .values(tenant=head.tenant, scope=head.scope, **values)
            .on_conflict_do_update(index_elements=["tenant", "scope"], set_=values)
        )
