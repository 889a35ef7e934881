"""`memsvc verify`: audit a store's integrity, re-sign it, rotate its key, accept a restore.

    memsvc verify [--db PATH|URL]      every finding printed; exit 1 if any, 0 if none
    memsvc verify --rekey              ... then re-sign everything with the current key
    memsvc verify --rotate-key         new key file (old one kept in the keyring), re-sign
    memsvc verify --reset-witness      the store was restored from a backup on purpose

A finding is a record or scope that the read path refuses (see memsvc.storage.integrity):
a MAC that does not match, a row the chain does not account for, a missing or extra row, a
chain or head rewritten, a store older than its witness. The audit needs no embedder. A
PostgreSQL store (`--db postgresql+psycopg://...`) is audited as the URL's role, which must
be a superuser or BYPASSRLS to see every tenant (the embedded server's `postgres` is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from memsvc.model.errors import MemsvcError

_err = Console(stderr=True)


def verify(
    db: Annotated[str | None, typer.Option(
        "--db", help="SQLite file or postgresql+psycopg:// URL (default: $MEMSVC_DB or a "
        "file in the user data dir)")] = None,
    rekey: Annotated[bool, typer.Option(
        "--rekey", help="After a clean audit, re-sign everything with the current key")] = False,
    rotate_key: Annotated[bool, typer.Option(
        "--rotate-key", help="Make a new key file (the old key stays in the keyring to "
        "verify), then re-sign")] = False,
    reset_witness: Annotated[bool, typer.Option(
        "--reset-witness", help="Accept the store as it is now as the witnessed state "
        "(after restoring a backup on purpose), then audit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Audit the integrity of a whole store (every tenant); exit 1 on any finding."""
    from memsvc.model.settings import Settings
    from memsvc.storage.factory import open_auditor
    from memsvc.storage.integrity.keys import rotate_key_file

    path = Settings.from_env(db_path=db).db_path
    shown = _shown(path)
    try:
        if rotate_key:
            old, new = rotate_key_file()
            _err.print(f"new key {new}; key {old} kept in the keyring for verification")
        auditor = open_auditor(path)
        try:
            if reset_witness:
                n = auditor.reset_witness()
                _err.print(f"witness reset to the store's current heads ({n} scopes)")
            findings = auditor.audit()
            resigned = auditor.rekey() if (rekey or rotate_key) and not findings else None
        finally:
            auditor.close()
    except MemsvcError as exc:
        _err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps({"store": shown, "findings": [str(f) for f in findings],
                          "resigned": resigned}))
    else:
        for finding in findings:
            print(f"FINDING {finding}")
        print(f"{shown}: {f'{len(findings)} finding(s)' if findings else 'intact'}")
        if resigned is not None:
            print(f"re-signed {resigned} rows with the current key")
    if findings:
        raise typer.Exit(1)


def _shown(location: Path | str) -> str:
    """The store as printed: a URL without its password."""
    text = str(location)
    if "://" not in text:
        return text
    from sqlalchemy import make_url

    return make_url(text).render_as_string(hide_password=True)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
