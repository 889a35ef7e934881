"""The integrity key: where it lives (never in the database), its id, and how it rotates.

Why outside the store: whoever can write the store file must not be able to re-sign what
they changed. The current key comes from `MEMSVC_INTEGRITY_KEY` (hex or base64, at least 16
bytes) or else from `<config dir>/integrity.key`, created 0600 with 32 random bytes the first
time a store is opened. Older keys live in `<config dir>/integrity-keyring.json` (0600) and
only *verify*: every MAC is stored with the id of the key that made it, so a store signed
before a rotation still reads, and `memsvc verify --rekey` re-signs it with the current key,
after which the old key can be dropped from the keyring.

Rotation, file key: `memsvc verify --rotate-key` (moves the current key into the keyring,
writes a new key file, re-signs the store). Rotation, env key: add the old key to the keyring
(`add_to_keyring`), set the new one in `MEMSVC_INTEGRITY_KEY`, run `memsvc verify --rekey`.
The config dir is `platformdirs.user_config_dir("memsvc")`, or `MEMSVC_CONFIG_DIR`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from memsvc.model.errors import IntegrityError

ENV_KEY = "MEMSVC_INTEGRITY_KEY"
ENV_CONFIG_DIR = "MEMSVC_CONFIG_DIR"
KEY_FILE = "integrity.key"
KEYRING_FILE = "integrity-keyring.json"
MIN_KEY_BYTES = 16


def config_dir() -> Path:
    """Where the key, the keyring and (by default) the witnesses live."""
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("memsvc", appauthor=False))


def key_id(key: bytes) -> str:
    """A short public name of a key, stored beside each MAC (never the key itself)."""
    return hashlib.sha256(b"memsvc-integrity-key-id\0" + key).hexdigest()[:16]


def parse_key(text: str) -> bytes:
    """A key written as hex or base64 (standard or URL-safe)."""
    text = text.strip()
    key: bytes | None = None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        try:
            padded = text + "=" * (-len(text) % 4)
            key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) < MIN_KEY_BYTES:
        raise IntegrityError(
            f"the integrity key must be hex or base64 of at least {MIN_KEY_BYTES} bytes"
        )
    return key


@dataclass(frozen=True)
class Keyring:
    """The current key (signs and verifies) and older ones (verify only), by key id."""

    current_id: str
    keys: Mapping[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def get(self, kid: str | None) -> bytes | None:
        return self.keys.get(kid) if kid else None

    @staticmethod
    def of(current: bytes, *older: bytes) -> Keyring:
        keys = {key_id(k): k for k in older}
        keys[key_id(current)] = current
        return Keyring(key_id(current), keys)


def _write_private(path: Path, text: str, *, exclusive: bool) -> bool:
    """Write `text` to `path` with mode 0600, atomically. `exclusive`: never replace an
    existing file (returns False then), so two processes creating the key agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _file_key(directory: Path) -> bytes:
    path = directory / KEY_FILE
    try:
        if not path.exists():
            _write_private(path, secrets.token_hex(32) + "\n", exclusive=True)
        return parse_key(path.read_text())
    except OSError as exc:
        raise IntegrityError(
            f"cannot read or create the integrity key {path} ({exc.strerror}): set "
            f"{ENV_KEY}, or {ENV_CONFIG_DIR} to a writable directory"
        ) from exc


def _older_keys(directory: Path) -> list[bytes]:
    path = directory / KEYRING_FILE
    if not path.exists():
        return []
    try:
        stored = json.loads(path.read_text())
        return [parse_key(text) for text in stored.get("keys", {}).values()]
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(f"the integrity keyring {path} is not readable: {exc}") from exc


def load_keyring() -> Keyring:
    """The current key (env or key file, created on first use) and the keyring's old keys."""
    directory = config_dir()
    env = os.environ.get(ENV_KEY)
    current = parse_key(env) if env else _file_key(directory)
    return Keyring.of(current, *_older_keys(directory))


def add_to_keyring(key: bytes) -> str:
    """Keep `key` for verification (after a rotation); returns its id."""
    directory = config_dir()
    path = directory / KEYRING_FILE
    stored = json.loads(path.read_text()) if path.exists() else {"keys": {}}
    stored["keys"][key_id(key)] = key.hex()
    _write_private(path, json.dumps(stored, indent=1) + "\n", exclusive=False)
    return key_id(key)


def rotate_key_file() -> tuple[str, str]:
    """A new current key in the key file, the old one kept in the keyring: (old id, new id).

    Only for the file key: a key given by `MEMSVC_INTEGRITY_KEY` is rotated by whoever sets
    the environment. Re-sign the store afterwards (`memsvc verify --rekey`).
    """
    if os.environ.get(ENV_KEY):
        raise IntegrityError(
            f"the key comes from {ENV_KEY}: add the old key to the keyring, set the new one "
            "there, then run `memsvc verify --rekey`"
        )
    directory = config_dir()
    old = _file_key(directory)
    add_to_keyring(old)
    new = secrets.token_bytes(32)
    _write_private(directory / KEY_FILE, new.hex() + "\n", exclusive=False)
    return key_id(old), key_id(new)
