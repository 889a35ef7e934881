"""API keys: hashed at rest, tenant-mapped, revocable; the CLI; the bind rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memsvc.cli import app
from memsvc.model.errors import InvalidInputError, NotFoundError
from memsvc.serving.server import LOOPBACK, plan_bind
from memsvc.storage.keys import ApiKeyStore
from memsvc.storage.sqlite import SQLiteStore


@pytest.fixture
def keys(tmp_path: Path) -> ApiKeyStore:
    return ApiKeyStore(SQLiteStore(tmp_path / "keys.db", embedding_dim=384).engine)


def test_only_the_hash_is_stored(keys: ApiKeyStore) -> None:
    info, key = keys.create("ci-bot", "acme")
    assert key.startswith("msk_") and len(key) > 40
    with keys.engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys").all()]
    flat = " ".join(str(v) for row in rows for v in row)
    assert key not in flat
    assert hashlib.sha256(key.encode()).hexdigest() in flat
    assert info.prefix == key[:12]


def test_resolve_and_revoke(keys: ApiKeyStore) -> None:
    info_a, key_a = keys.create("a", "tenant-a")
    _, key_b = keys.create("b", "tenant-b")
    assert keys.resolve(key_a) == "tenant-a"
    assert keys.resolve(key_b) == "tenant-b"
    assert keys.resolve(key_a + "x") is None
    assert keys.resolve("") is None
    assert keys.count_active() == 2
    keys.revoke(info_a.prefix)  # by prefix, as `keys list` shows it
    assert keys.resolve(key_a) is None
    assert keys.resolve(key_b) == "tenant-b"
    assert [k.name for k in keys.list()] == ["b"]
    assert {k.name for k in keys.list(include_revoked=True)} == {"a", "b"}
    with pytest.raises(NotFoundError):
        keys.revoke("no-such-key")


def test_revoke_from_another_process_is_seen_after_the_cache_window(keys: ApiKeyStore) -> None:
    info, key = keys.create("a", "t")
    assert keys.resolve(key) == "t"
    other = ApiKeyStore(keys.engine)  # e.g. the CLI, with its own cache
    other.revoke(info.id)
    keys.clear_cache()  # what CACHE_SECONDS of waiting does
    assert keys.resolve(key) is None


def test_bad_names_are_refused(keys: ApiKeyStore) -> None:
    for name, tenant in (("", "t"), ("n", ""), ("n", "x" * 200), ("n", "a\x00b")):
        with pytest.raises(InvalidInputError):
            keys.create(name, tenant)
    assert keys.list(include_revoked=True) == []


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "laptop", "--tenant", "acme", "--db", db])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("msk_")
    listed = runner.invoke(app, ["keys", "list", "--db", db])
    assert "laptop" in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
    store = SQLiteStore(tmp_path / "cli.db", embedding_dim=384)
    assert ApiKeyStore(store.engine).resolve(key) == "acme"
    revoked = runner.invoke(app, ["keys", "revoke", key[:12], "--db", db])
    assert revoked.exit_code == 0, revoked.output
    assert ApiKeyStore(store.engine).resolve(key) is None
    missing = runner.invoke(app, ["keys", "revoke", "nope", "--db", db])
    assert missing.exit_code == 2


def test_bind_rule() -> None:
    open_plan = plan_bind("0.0.0.0", active_keys=0)
    assert open_plan.host == LOOPBACK and not open_plan.require_keys
    assert "127.0.0.1 only" in open_plan.notice and "ignoring --host 0.0.0.0" in open_plan.notice
    keyed = plan_bind("0.0.0.0", active_keys=2)
    assert keyed.host == "0.0.0.0" and keyed.require_keys


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a LISTEN socket on `port`, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(".".join(str(int(host_hex[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_serve_without_keys_binds_loopback_and_says_so(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memsvc.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--db", str(tmp_path / "serve.db")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "127.0.0.1 only" in out and "ignoring --host 0.0.0.0" in out
    assert f"http://127.0.0.1:{port}/docs" in out and f"http://127.0.0.1:{port}/mcp" in out
