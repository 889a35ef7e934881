"""`memsvc migrate-store SRC DST`: copy a whole store to another backend (or back).

    memsvc migrate-store ./memsvc.db postgresql+psycopg://postgres@/memsvc?host=/run/pg
    memsvc migrate-store postgresql+psycopg://... ./back.db

Every tenant's memories (vectors and all columns), messages, history and entity graph, and
every API key; the destination re-signs everything with its own integrity data. Safe to run
again (rows already copied are skipped). The copy itself is storage/transfer.py; this is its
command line: the checks that a source exists and the destination is not another store run
before anything is written, and each refusal is one line and exit 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from memsvc.model.errors import InvalidInputError

_out = Console()


def _default_dim() -> int:
    from memsvc.embedding.embedder import model_dimension
    from memsvc.model.settings import Settings, default_embedder_path

    dim = model_dimension(Settings.from_env().embedder_path or default_embedder_path())
    if dim is None:
        raise InvalidInputError("cannot tell the embedder's vector width; pass --embedding-dim",
                                field="embedding_dim")
    return dim


def migrate_store(
    src: Annotated[str, typer.Argument(
        help="Store to copy: SQLite file or postgresql+psycopg:// URL")],
    dst: Annotated[str, typer.Argument(help="Where to copy it (empty, or an earlier copy of SRC)")],
    embedding_dim: Annotated[int | None, typer.Option(
        "--embedding-dim", help="Vector width of the store (default: the embedder's)")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per transaction", min=1)] = 500,
    sample: Annotated[int, typer.Option(
        help="Memories per tenant whose record and vector are compared afterwards", min=0)] = 200,
) -> None:
    """Copy every tenant of SRC into DST, then verify counts and a sample of vectors."""
    from memsvc.storage.factory import open_store, parse_location, store_exists
    from memsvc.storage.transfer import StoreCopier, TransferMismatch

    where_src, where_dst = parse_location(src), parse_location(dst)
    if where_src == where_dst:
        raise InvalidInputError("SRC and DST are the same store", field="dst")
    if not store_exists(src):
        raise InvalidInputError(f"there is no store at {src!r}", field="src")
    store_exists(dst)  # a DST server that cannot be reached is refused before SRC is opened
    dim = embedding_dim or _default_dim()
    source = open_store(src, tenant="default", embedding_dim=dim)
    try:
        target = open_store(dst, tenant="default", embedding_dim=dim)
        try:
            with Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=_out, transient=False) as bar:
                tasks: dict[str, TaskID] = {}

                def advance(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=total)
                    bar.advance(tasks[stage], done)

                copier = StoreCopier(source, target, batch_size=batch_size, sample=sample,
                                     progress=advance)
                try:
                    report = copier.run()
                except TransferMismatch as exc:
                    _out.print(f"[red]error[/red] (verify): {exc.message}")
                    raise typer.Exit(1) from exc
        finally:
            target.close()
    finally:
        source.close()
    for table in ("memories", "messages", "history", "api_keys"):
        _out.print(f"{table}: {report.copied[table]} copied, {report.skipped[table]} "
                   "already there")
    _out.print(f"verified: {len(report.tenants)} tenant(s), counts equal, "
               f"{report.vectors_checked} vectors and records compared")


def register(app: typer.Typer) -> None:
    app.command("migrate-store")(migrate_store)
