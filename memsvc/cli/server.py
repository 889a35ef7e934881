"""CLI commands of the server side: `memsvc serve`, `memsvc mcp`, `memsvc keys ...`.

Kept apart from memsvc/cli/main.py so the (heavy) serving imports load only for these commands;
`register(app)` adds them to the main `memsvc` command.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.table import Table

from memsvc.model.errors import MemsvcError
from memsvc.model.trust import Trust
from memsvc.sdk.memory import Memory

keys_app = typer.Typer(help="API keys of the server (each maps to a tenant).",
                       no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite file or postgresql+psycopg:// URL "
                 "(default: $MEMSVC_DB or a file in the user data dir)"),
]


def _fail(exc: MemsvcError) -> typer.Exit:
    _err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    return typer.Exit(2)


def _keys(db: str | None) -> tuple[Any, Any]:
    from memsvc.model.settings import Settings
    from memsvc.storage import open_key_store

    keys = open_key_store(Settings.from_env(db_path=db).db_path)
    return keys, keys  # (what to close, the key store): the key store owns its connection


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A label for the key (who uses it)")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the key may see")],
    db: DbOption = None,
    trust: Annotated[str, typer.Option(
        "--trust", help="Highest trust of its writes: user (default), agent or external "
                        "(a tool or document pipeline)")] = "user",
    user: Annotated[str | None, typer.Option(
        "--user", help="Bind the key to this user id: it may act for no other user")] = None,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    store, keys = _keys(db)
    try:
        info, key = keys.create(name, tenant, trust=trust, user_id=user)
    except MemsvcError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    bound = f", user {info.user_id!r}" if info.user_id else ""
    _err.print(f"created key {info.id} ({info.prefix}…) for tenant {info.tenant!r} "
               f"(trust {Trust(info.trust).name.lower()}{bound}); "
               "store it now, it is not shown again:")
    print(key)


@keys_app.command("list")
def keys_list(
    db: DbOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
) -> None:
    """The keys (never the keys themselves: id, prefix, tenant, dates)."""
    store, keys = _keys(db)
    try:
        rows = keys.list(include_revoked=all_)
    finally:
        store.close()
    table = Table()
    for col in ("id", "prefix", "name", "tenant", "trust", "user", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.id, r.prefix, r.name, r.tenant, Trust(r.trust).name.lower(),
                      r.user_id or "", r.created_at.isoformat(timespec="seconds"),
                      r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "")
    _out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id or its shown prefix")],
    db: DbOption = None,
) -> None:
    """Revoke a key (a running server stops accepting it within a few seconds)."""
    store, keys = _keys(db)
    try:
        info = keys.revoke(key_id)
    except MemsvcError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    _out.print(f"revoked {info.id} ({info.prefix}…) of tenant {info.tenant!r}")


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Bind address (127.0.0.1 unless keys exist)")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo conversation first")] =
    False,
) -> None:
    """Serve REST (/docs), MCP (/mcp) and the memory explorer (/ui) from one process."""
    from memsvc.serving.server import run

    try:
        memory = Memory(db)
    except MemsvcError as exc:
        raise _fail(exc) from exc
    with memory:
        ui_query = ""
        if demo:
            from memsvc.cli.demo import DEMO_QUERIES, DEMO_USER, load_demo

            turns = load_demo(memory)
            _out.print(f"loaded {turns} demo turns for user {DEMO_USER!r}")
            ui_query = "?" + urlencode({"user_id": DEMO_USER, "q": DEMO_QUERIES[0],
                                        "select": "first"})
        run(memory, host=host, port=port, ui_query=ui_query)


def worker(
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(help="Jobs run at once", min=1, max=64)] = 1,
    heartbeat: Annotated[float, typer.Option(
        help="Seconds between heartbeats; a worker silent for 3 is presumed dead and its "
        "jobs are retried", min=0.2, max=600)] = 10.0,
) -> None:
    """Run the background jobs (extractions, consolidations) of a PostgreSQL store; start
    as many as you like, on any machine that reaches the database."""
    from memsvc.model.settings import Settings
    from memsvc.serving.worker import NOT_A_QUEUE, run_worker
    from memsvc.storage.factory import parse_location

    location = Settings.from_env(db_path=db).db_path
    if parse_location(location).backend != "postgresql":  # checked before anything opens
        _err.print(f"error: {NOT_A_QUEUE}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    with Memory(location) as memory:
        print(f"memsvc worker on {memory.store.stats().path}", file=sys.stderr)
        run_worker(memory, concurrency=concurrency, heartbeat_seconds=heartbeat)


def mcp(
    db: DbOption = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant to serve (default: default)")] =
    None,
) -> None:
    """Serve the MCP tools over stdio (for agent hosts that launch memsvc themselves)."""
    from memsvc.serving.mcp_server import build_mcp

    try:
        memory = Memory(db, tenant=tenant)
    except MemsvcError as exc:
        raise _fail(exc) from exc
    with memory:
        print(f"memsvc MCP (stdio) on {memory.settings.db_path}", file=sys.stderr)
        build_mcp(lambda _ctx: memory).run("stdio")


def register(app: typer.Typer) -> None:
    """Add `serve`, `worker`, `mcp` and `keys` to the main `memsvc` command."""
    app.command("serve")(serve)
    app.command("mcp")(mcp)
    app.command("worker")(worker)
    app.add_typer(keys_app, name="keys")
