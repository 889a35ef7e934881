"""The backend-neutral integrity pieces on their own: MACs, the chain, the checks, keys, witness."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity import (
    ChainWriter,
    IntegrityMonitor,
    Keyring,
    Witness,
    head_problem,
    row_problem,
    scope_problems,
    walk,
)
from memsvc.storage.integrity.codec import MEMORY_FIELDS, row_mac
from memsvc.storage.integrity.keys import (
    KEYRING_FILE,
    key_id,
    load_keyring,
    parse_key,
    rotate_key_file,
)

KEY = bytes(range(32))
RING = Keyring.of(KEY)
AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def memory_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "user_id": "alice", "agent_id": None,
        "session_id": "s1", "kind": "fact", "text": "Alice lives in Lyon", "subject": "alice",
        "predicate": "lives_in", "object": "Lyon", "entities": ["Alice", "Lyon"],
        "metadata": {"source": "chat", "tags": ["home"]}, "valid_from": AT, "valid_to": None,
        "created_at": AT, "updated_at": AT, "invalidated_at": None,
        "source_message_ids": ["m1"], "extractor": "rules", "extractor_version": "2",
        "confidence": 0.9, "status": "active", "superseded_by": None, "importance": 0.5,
        "content_hash": "h" * 64, "version": 1,
    }
    values.update(changes)
    return values


def mac(values: dict[str, Any], **where: Any) -> str:
    place = {"store_id": "store", "tenant": "t", "scope": "alice", "seq": 3, **where}
    return row_mac(KEY, "memory", values=values, **place)


def other_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    if isinstance(value, bool) or value is None:
        return "x"
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return value + "!"


@pytest.mark.parametrize("field", MEMORY_FIELDS)
def test_every_signed_field_changes_the_mac(field: str) -> None:
    values = memory_values()
    assert mac(memory_values(**{field: other_value(values[field])})) != mac(values)


@pytest.mark.parametrize("where", [{"tenant": "u"}, {"scope": "bob"}, {"seq": 4},
                                   {"store_id": "another"}])
def test_owner_position_and_store_change_the_mac(where: dict[str, Any]) -> None:
    assert mac(memory_values(), **where) != mac(memory_values())


def test_the_mac_ignores_what_reads_change_and_how_times_are_zoned() -> None:
    values = memory_values()
    counted = {**values, "access_count": 7, "last_accessed_at": AT, "pk": 99}
    paris = memory_values(created_at=AT.astimezone(timezone(timedelta(hours=2))))
    assert mac(counted) == mac(values) == mac(paris)


def chain_of(n: int) -> tuple[ChainWriter, list[str]]:
    writer = ChainWriter(RING, "store", lambda tenant, scope: None)
    macs = [writer.sign("memory", "t", "alice", memory_values(id=f"m{i}", text=f"fact {i}"),
                        event="insert").mac for i in range(n)]
    return writer, macs


def test_chain_entries_link_and_the_head_counts() -> None:
    writer, macs = chain_of(3)
    [head] = writer.changed_heads()
    assert [e.seq for e in writer.entries] == [1, 2, 3]
    assert [e.digest for e in writer.entries] == macs
    assert (head.seq, head.tag, head.memories) == (3, writer.entries[-1].tag, 3)
    assert head_problem(RING, "store", head) is None
    assert walk(RING, "store", head, writer.entries) == []


def test_walk_finds_a_missing_an_edited_and_a_reordered_entry() -> None:
    writer, _ = chain_of(4)
    [head] = writer.changed_heads()
    e = writer.entries
    assert walk(RING, "store", head, [e[0], e[2], e[3]])  # one missing
    forged = type(e[1])(**{**e[1].__dict__, "event": "delete"})
    assert walk(RING, "store", head, [e[0], forged, e[2], e[3]])
    assert walk(RING, "store", head, [e[0], e[2], e[1], e[3]])


def test_head_edits_fail_its_mac() -> None:
    writer, _ = chain_of(2)
    [head] = writer.changed_heads()
    head.memories = 1
    assert head_problem(RING, "store", head) == "head MAC mismatch"
    assert head_problem(Keyring.of(b"k" * 32), "store", head) is not None  # unknown key


def test_scope_problems_catch_truncation_extra_rows_and_rollback() -> None:
    writer, _ = chain_of(3)
    [head] = writer.changed_heads()
    last = (3, head.tag)
    ok = scope_problems(head, last=last, counts={"memories": 3}, entries=3,
                        witnessed=(3, head.tag))
    assert ok == []
    assert scope_problems(head, last=(2, writer.entries[1].tag), counts={"memories": 3})
    assert scope_problems(head, last=last, counts={"memories": 2})  # a row deleted
    assert scope_problems(head, last=last, counts={"memories": 4})  # a row forged
    assert scope_problems(head, last=last, counts={}, entries=2)  # an entry deleted
    assert "rolled back" in scope_problems(head, last=last, counts={}, witnessed=(5, "t"))[0]
    assert "replaced" in scope_problems(head, last=last, counts={}, witnessed=(3, "t"))[0]
    # the witness saw entry 2; the store went on to 3: fine if entry 2 is the one it saw
    assert scope_problems(head, last=last, counts={}, witnessed=(2, writer.entries[1].tag),
                          tag_at_witness=writer.entries[1].tag) == []
    assert scope_problems(head, last=last, counts={}, witnessed=(2, "other"),
                          tag_at_witness=writer.entries[1].tag)
    assert scope_problems(None, last=None, counts={"memories": 1})  # rows without a head


def test_erase_prunes_and_moves_the_chain_on() -> None:
    writer, _ = chain_of(3)
    before = writer.head("t", "alice").tag
    writer.erase("t", "alice")
    [head] = writer.changed_heads()
    assert (head.base, head.base_tag, head.seq, head.memories) == (3, before, 4, 0)
    assert [e.event for e in writer.entries] == ["erase"]
    assert walk(RING, "store", head, writer.entries) == []
    assert scope_problems(head, last=(4, head.tag), counts={"memories": 0}, entries=1) == []


def test_row_problem_names_each_failure() -> None:
    values = memory_values()
    good = mac(values)
    row = {**values, "chain_seq": 3, "mac": good, "mac_key": key_id(KEY)}
    place = {"store_id": "store", "tenant": "t", "scope": "alice"}
    assert row_problem(RING, "memory", values=row, chain_digest=good, **place) is None
    assert "MAC mismatch" in str(row_problem(RING, "memory", values={**row, "text": "x"},
                                             chain_digest=good, **place))
    assert "last recorded" in str(row_problem(RING, "memory", values=row, chain_digest="0",
                                              **place))
    assert "unknown key" in str(row_problem(RING, "memory", values={**row, "mac_key": "zz"},
                                            chain_digest=good, **place))
    assert row_problem(RING, "memory", values={**row, "mac": None}, chain_digest=good,
                       **place) == "not signed"


def test_monitor_counts_every_refusal_and_flags_scopes() -> None:
    from memsvc.storage.integrity import Finding

    monitor = IntegrityMonitor()
    finding = Finding("t", "alice", "memory", "m1", "MAC mismatch")
    assert isinstance(monitor.refuse(finding), IntegrityError)
    monitor.refuse(finding)
    monitor.flag(Finding("t", "bob", "chain", None, "rolled back"))
    assert monitor.scope_error("t", "bob") is not None and monitor.scope_error("t", "x") is None
    summary = monitor.summary()
    assert (summary["ok"], summary["refused"], summary["flagged_scopes"]) == (False, 2, 1)


@pytest.mark.parametrize("text", [KEY.hex(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                                  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"])
def test_keys_are_read_as_hex_or_base64(text: str) -> None:
    assert parse_key(text) == KEY


def test_short_keys_are_refused() -> None:
    with pytest.raises(IntegrityError):
        parse_key("abcd")


def test_the_key_file_is_made_once_private_and_rotation_keeps_the_old_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMSVC_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("MEMSVC_INTEGRITY_KEY", raising=False)
    first = load_keyring()
    assert load_keyring().current_id == first.current_id
    assert stat.S_IMODE(os.stat(tmp_path / "integrity.key").st_mode) == 0o600
    old, new = rotate_key_file()
    ring = load_keyring()
    assert (old, new) == (first.current_id, ring.current_id) and old != new
    assert ring.get(old) == first.current  # the old key still verifies
    assert stat.S_IMODE(os.stat(tmp_path / KEYRING_FILE).st_mode) == 0o600
    monkeypatch.setenv("MEMSVC_INTEGRITY_KEY", KEY.hex())
    assert load_keyring().current_id == key_id(KEY)
    with pytest.raises(IntegrityError):  # an env key is rotated by whoever sets it
        rotate_key_file()


def test_the_witness_only_moves_forward_across_writers(tmp_path: Path) -> None:
    one, two = Witness("s", tmp_path), Witness("s", tmp_path)
    one.advance([("t", "alice", 5, "a5")])
    two.advance([("t", "alice", 4, "a4"), ("t", "bob", 1, "b1")])  # a slower writer
    assert Witness("s", tmp_path).load() == {("t", "alice"): (5, "a5"), ("t", "bob"): (1, "b1")}
    one.replace([("t", "alice", 2, "a2")])
    assert Witness("s", tmp_path).load() == {("t", "alice"): (2, "a2")}
    assert stat.S_IMODE(os.stat(one.path).st_mode) == 0o600
    with one.path.open("a") as fh:
        fh.write('["t", "alice", 9, "a9')  # a crash mid-append: skipped, the witness lags
    assert Witness("s", tmp_path).load() == {("t", "alice"): (2, "a2")}


def test_the_witness_log_is_compacted(tmp_path: Path) -> None:
    witness = Witness("s", tmp_path)
    for seq in range(1, 2001):
        witness.advance([("t", "alice", seq, "x" * 64)])
    assert witness.path.stat().st_size < 64 * 1024 + 200  # not 2000 lines of ~90 bytes
    assert Witness("s", tmp_path).load() == {("t", "alice"): (2000, "x" * 64)}
