"""`memsvc db postgres start|stop|status`: the embedded PostgreSQL server of the PostgreSQL backend.

A thin shell over `memsvc.storage.postgres.server.EmbeddedPostgres` (the same calls in Python:
``EmbeddedPostgres(dir).start()`` returns the URL). The server listens on a Unix socket only
and outlives the command; ``start`` prints the SQLAlchemy URL a store opens
(``postgresql+psycopg://postgres@/memsvc?host=...``). Imports load only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

db_app = typer.Typer(help="Databases other than the SQLite file.", no_args_is_help=True)
postgres_app = typer.Typer(help="The embedded PostgreSQL 18 + pgvector server.",
                           no_args_is_help=True)
db_app.add_typer(postgres_app, name="postgres")

DirOption = Annotated[Path | None, typer.Option(
    "--dir", help="Cluster directory (default: the user data dir's memsvc/postgres)")]


def _server(directory: Path | None) -> Any:
    from memsvc.storage.postgres.server import EmbeddedPostgres, default_data_dir

    return EmbeddedPostgres(directory or default_data_dir())


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@postgres_app.command("start")
def start(directory: DirOption = None) -> None:
    """Initialise (first time) and start the server; print its URL. Idempotent."""
    from memsvc.storage.postgres.server import EmbeddedPostgresError

    try:
        typer.echo(_server(directory).start())
    except EmbeddedPostgresError as exc:
        raise _fail(exc) from exc


@postgres_app.command("stop")
def stop(directory: DirOption = None) -> None:
    """Stop the server (fast shutdown); nothing to do when it is not running."""
    from memsvc.storage.postgres.server import EmbeddedPostgresError

    try:
        _server(directory).stop()
    except EmbeddedPostgresError as exc:
        raise _fail(exc) from exc
    typer.echo("stopped")


@postgres_app.command("status")
def status(directory: DirOption = None) -> None:
    """Print the state (and URL when running); exit code 0 when running, 3 when not."""
    server = _server(directory)
    st = server.status()
    if st.state.value != "running":
        typer.echo(f"{st.state.value}: {server.data_dir}")
        raise typer.Exit(3)
    typer.echo(f"running: pid {st.pid}, {server.url()}")


def register(app: typer.Typer) -> None:
    """Add `db` to the main `memsvc` command."""
    app.add_typer(db_app, name="db")
