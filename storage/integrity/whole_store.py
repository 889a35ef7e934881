"""Whole-store integrity work, for both backends: audit, re-sign (rekey), first signing.

`audit` re-checks everything the read path checks piecemeal: every scope (head, chain
length and last tag, live row counts, witness), every chain entry's tag in order, every
memory, message and history row. `rekey` re-signs rows, entries and heads with the current
key after a clean audit (rotation). `sign_existing` gives a store written before MACs its
chains, in created order (SQLite migration 0005, PostgreSQL pg0004). The auditors `memsvc
verify` opens (storage/sqlite/audit.py, storage/postgres/audit.py) hold a connection and
call these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, inspect, select, update

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity.chain import ChainWriter, Entry
from memsvc.storage.integrity.checks import Finding, walk
from memsvc.storage.integrity.codec import RowKind, entry_tag, row_mac, scope_key
from memsvc.storage.integrity.guard import (
    StoreIntegrity,
    head_from_row,
    history_select,
    message_select,
    save_chain,
)
from memsvc.storage.integrity.keys import Keyring
from memsvc.storage.schema import history, integrity_chain, integrity_heads, messages


def _rows(guard: StoreIntegrity) -> tuple[tuple[RowKind, Table, Any, str], ...]:
    return (
        ("memory", guard.layout.memories, guard.layout.memory_select(), "user_id"),
        ("message", messages, message_select(), "user_id"),
        ("history", history, history_select(), "chain_user"),
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
    for kind, _table, select_rows, owner in _rows(guard):
        for row in conn.execute(select_rows):
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
    for kind, table, select_rows, owner in _rows(guard):
        key_col = table.c.id
        for row in conn.execute(select_rows).all():
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


def reset_witness(conn: Connection, guard: StoreIntegrity) -> int:
    """Make the witness agree with the store as `conn` sees it (after restoring a backup on
    purpose). Returns how many scopes it now holds."""
    heads = heads_of(conn)
    guard.witness.replace(heads)
    return len(heads)


def sign_existing(conn: Connection, keyring: Keyring, store_id: str,
                  memories: Table) -> int:
    """Give every row of a store written before MACs its place in its owner's chain, in the
    order the rows were created (messages, then memories, then history at equal times).
    `memories` is the backend's table. Returns how many rows were signed."""
    conn.exec_driver_sql(
        "UPDATE history SET chain_user = coalesce((SELECT m.user_id FROM memories m "
        "WHERE m.tenant = history.tenant AND m.id = history.memory_id), '')"
    )
    pending = []
    tables: tuple[tuple[RowKind, Table, str], ...] = (
        ("memory", memories, "user_id"), ("message", messages, "user_id"),
        ("history", history, "chain_user"),
    )
    for kind, table, owner in tables:
        order = table.c.id if kind == "history" else table.c.pk
        # only the columns the store has at this migration (later ones may add more)
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
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
