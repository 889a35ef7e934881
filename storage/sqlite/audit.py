"""Whole-file integrity work on SQLite: audit, re-sign (rekey), first signing (migration 0005).

`audit` re-checks everything the read path checks piecemeal: every scope (head, chain
length and last tag, live row counts, witness), every chain entry's tag in order, every
memory, message and history row. `rekey` re-signs rows, entries and heads with the current
key after a clean audit (rotation). `sign_existing` gives a store written before MACs its
chains, in created order. `SQLiteAuditor` is what `memsvc verify` opens (through
`memsvc.storage.factory.open_auditor`): it needs no embedder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity import (
    ChainWriter,
    Entry,
    Finding,
    Keyring,
    scope_key,
    walk,
)
from memsvc.storage.integrity.codec import RowKind, entry_tag, row_mac
from memsvc.storage.schema import history, integrity_chain, integrity_heads, memories, messages
from memsvc.storage.sqlite.engine import open_engine, reading
from memsvc.storage.sqlite.integrity import (
    StoreIntegrity,
    head_from_row,
    history_select,
    memory_select,
    message_select,
    save_chain,
)

_ROWS: tuple[tuple[RowKind, Any, Any, str], ...] = (
    ("memory", memories, memory_select, "user_id"),
    ("message", messages, message_select, "user_id"),
    ("history", history, history_select, "chain_user"),
)
_KIND_ORDER = {"message": 0, "memory": 1, "history": 2}


def _entries(conn: Connection, tenant: str, scope: str) -> Iterator[Entry]:
    c = integrity_chain.c
    for r in conn.execute(select(integrity_chain)
                          .where(c.tenant == tenant, c.scope == scope).order_by(c.seq)):
        yield Entry(r.tenant, r.scope, r.seq, r.ref, r.event, r.digest, r.tag, r.mac_key)


def audit(conn: Connection, guard: StoreIntegrity) -> list[Finding]:
    """Every finding in the file, all tenants (the store's open check included)."""
    findings = guard.check_open(conn)
    for row in conn.execute(select(integrity_heads)):
        head = head_from_row(row)
        for problem in walk(guard.keyring, guard.store_id, head,
                            _entries(conn, head.tenant, head.scope)):
            findings.append(Finding(head.tenant, head.scope, "chain", None, problem))
    for kind, _table, select_rows, owner in _ROWS:
        for row in conn.execute(select_rows()):
            finding = guard.check_row(kind, row._mapping, owner)
            if finding is not None:
                findings.append(finding)
    return findings


def rekey(conn: Connection, guard: StoreIntegrity) -> int:
    """Re-sign every row, entry and head with the current key; the positions stay. Returns
    how many rows were re-signed. IntegrityError (nothing changed) if the audit finds
    anything: a tampered row is never re-signed."""
    findings = audit(conn, guard)
    if findings:
        raise IntegrityError(f"{len(findings)} findings; re-signing would hide them: "
                             f"{findings[0]}")
    keyring, store_id = guard.keyring, guard.store_id
    new_digest: dict[tuple[str, str, int], str] = {}
    n = 0
    for kind, table, select_rows, owner in _ROWS:
        key_col = table.c.id
        for row in conn.execute(select_rows()).all():
            values = row._mapping
            scope = scope_key(values[owner])
            mac = row_mac(keyring.current, kind, store_id=store_id, tenant=values["tenant"],
                          scope=scope, seq=values["chain_seq"], values=values)
            new_digest[(values["tenant"], scope, values["chain_seq"])] = mac
            conn.execute(update(table).where(key_col == values["id"])
                         .values(mac=mac, mac_key=keyring.current_id))
            n += 1
    c = integrity_chain.c
    for row in conn.execute(select(integrity_heads)).all():
        head = head_from_row(row)
        prev = head.base_tag
        for e in list(_entries(conn, head.tenant, head.scope)):
            digest = new_digest.get((e.tenant, e.scope, e.seq), e.digest)
            prev = entry_tag(keyring.current, store_id=store_id, tenant=e.tenant,
                             scope=e.scope, seq=e.seq, prev=prev, ref=e.ref, event=e.event,
                             digest=digest)
            conn.execute(update(integrity_chain)
                         .where(c.tenant == e.tenant, c.scope == e.scope, c.seq == e.seq)
                         .values(digest=digest, tag=prev, mac_key=keyring.current_id))
        head.tag, head.mac_key = prev, keyring.current_id
        head.mac = head.expected_mac(keyring.current, store_id)
        conn.execute(update(integrity_heads)
                     .where(integrity_heads.c.tenant == head.tenant,
                            integrity_heads.c.scope == head.scope)
                     .values(tag=head.tag, mac_key=head.mac_key, mac=head.mac))
    return n


def heads_of(conn: Connection) -> list[tuple[str, str, int, str]]:
    return [(r.tenant, r.scope, r.seq, r.tag) for r in conn.execute(select(integrity_heads))]


def sign_existing(conn: Connection, keyring: Keyring, store_id: str) -> int:
    """Give every row of a store written before MACs its place in its owner's chain, in the
    order the rows were created (messages, then memories, then history at equal times).
    Returns how many rows were signed."""
    conn.exec_driver_sql(
        "UPDATE history SET chain_user = coalesce((SELECT m.user_id FROM memories m "
        "WHERE m.tenant = history.tenant AND m.id = history.memory_id), '')"
    )
    pending = []
    for kind, table, _select, owner in _ROWS:
        order = table.c.id if kind == "history" else table.c.pk
        # only the columns the file has at this migration (later ones may add more)
        present = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
        columns = [c for c in table.c if c.name in present]
        for row in conn.execute(select(*columns).order_by(order)):
            values = dict(row._mapping)
            position = values["id"] if kind == "history" else values["pk"]
            pending.append((values["created_at"], _KIND_ORDER[kind], position, kind, table,
                            values, scope_key(values[owner])))
    pending.sort(key=lambda p: (p[0], p[1], p[2]))
    chain = ChainWriter(keyring, store_id, lambda tenant, scope: None)
    for _at, _order, _pk, kind, table, values, scope in pending:
        ref = values["memory_id"] if kind == "history" else None
        seal = chain.sign(kind, values["tenant"], scope, values, event="insert", ref=ref)
        key_col = table.c.id
        conn.execute(update(table).where(key_col == values["id"]).values(**seal.columns()))
    save_chain(conn, chain)
    return len(pending)


class SQLiteAuditor:
    """A SQLite file opened for `memsvc verify`: any vector width, no embedder."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise IntegrityError(f"no store at {path}")
        self.path = path
        self.engine: Engine = open_engine(path, None)
        try:
            self.guard = StoreIntegrity(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def audit(self) -> list[Finding]:
        with reading(self.engine) as conn:
            return audit(conn, self.guard)

    def rekey(self) -> int:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            n = rekey(conn, self.guard)
            heads = heads_of(conn)
        self.guard.witness.replace(heads)
        return n

    def reset_witness(self) -> int:
        """Make the witness agree with the store as it is (after restoring a backup on
        purpose). Returns how many scopes it now holds."""
        with reading(self.engine) as conn:
            heads = heads_of(conn)
        self.guard.witness.replace(heads)
        return len(heads)

    def close(self) -> None:
        self.engine.dispose()
