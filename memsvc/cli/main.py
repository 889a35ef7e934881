"""The `memsvc` command: each command is a thin call of the `Memory` method of the same name.

`memsvc search "..." --user-id u` is `Memory().search("...", user_id="u")`; errors are the
SDK's typed exceptions, printed as one line with exit code 2; so are bad files, paths and
values of any command (memsvc/cli/errors.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from memsvc.cli.errors import OneLineErrors
from memsvc.model.errors import InvalidInputError, MemsvcError
from memsvc.model.records import MemoryRecord, SearchResponse
from memsvc.sdk.io import batches
from memsvc.sdk.memory import Memory
from memsvc.sdk.operations import Surface

# OneLineErrors: a bad file, path or input of any command is one line and exit 2
app = typer.Typer(help="memsvc: long-term memory for AI agents.", no_args_is_help=True,
                  cls=OneLineErrors)
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)
T = TypeVar("T")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite file or postgresql+psycopg:// URL "
                 "(default: $MEMSVC_DB or a file in the user data dir)"),
]
UserOption = Annotated[str | None, typer.Option("--user-id", "-u")]
AgentOption = Annotated[str | None, typer.Option("--agent-id", "-a")]
SessionOption = Annotated[str | None, typer.Option("--session-id", "-s")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
KindsOption = Annotated[list[str] | None, typer.Option("--kind", help="Repeat for several")]
ArchivedOption = Annotated[bool, typer.Option(help="Also memories archived as faded")]
MinTrustOption = Annotated[str, typer.Option(
    help="Least trusted memories shown: user, agent, or external (also tool/document ones)")]

# The operation each command runs, and where it knowingly differs from the SDK;
# tests/memsvc/test_sdk_spec.py checks them against memsvc/sdk/operations.py. `--db` and
# `--json` are the commands' own.
_OWN = frozenset({"db", "as_json"})
COMMANDS: dict[str, Surface] = {
    "add": Surface("add", renamed={"text": "messages"}, extra=_OWN | {"name", "role"},
                   defaults={"infer": True}),  # on the command line, extraction is the point
    "search": Surface("search", extra=_OWN),
    "get": Surface("get", extra=_OWN),
    "list": Surface("get_all", extra=_OWN),
    "delete": Surface("delete", extra=_OWN),
    "review": Surface("review", extra=_OWN),
    "history": Surface("history", extra=_OWN),
    "stats": Surface("stats", extra=_OWN),
    "export": Surface("export", extra=_OWN | {"output"}),
    "import": Surface("import_records", renamed={"source": "records"},
                      extra=_OWN | {"batch_size"}),
    "consolidate": Surface("consolidate", renamed={"step": "steps"}, extra=_OWN,
                           omitted=frozenset({"config", "progress"})),
}
# Operations with no command (reached through the SDK, REST or MCP).
NOT_IN_CLI = frozenset({"infer", "update", "delete_all", "reset", "context", "chat",
                        "messages"})


@contextmanager
def _memory(db: str | None) -> Iterator[Memory]:
    try:
        with Memory(db) as memory:
            yield memory
    except MemsvcError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(2) from exc


def _parse_json(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--{name} is not valid JSON: {exc.msg}", field=name) from exc


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def _short_time(record: MemoryRecord) -> str:
    return record.valid_from.strftime("%Y-%m-%d %H:%M") if record.valid_from else ""


def print_search(response: SearchResponse) -> None:
    table = Table(title=f"“{response.query}”", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("found by")
    table.add_column("kind")
    table.add_column("when")
    table.add_column("memory")
    for i, hit in enumerate(response.results, start=1):
        found_by = ", ".join(
            f"{name}#{rank}" for name, rank in sorted(hit.channel_ranks.items())
        )
        table.add_row(
            str(i), f"{hit.score:.4f}", found_by, hit.memory.kind.value,
            _short_time(hit.memory), hit.memory.text,
        )
        for related in hit.related:  # same source messages, folded into this hit
            table.add_row("", "", "", related.memory.kind.value, _short_time(related.memory),
                          f"[dim]↳ {related.memory.text}[/dim]")
    console.print(table)
    console.print(f"[dim]{response.timing_ms.get('total', 0):.1f} ms[/dim]")


def _run(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except MemsvcError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(2) from exc


@app.command()
def add(
    text: Annotated[str, typer.Argument(help="What happened (one user message)")],
    user_id: UserOption = None,
    agent_id: AgentOption = None,
    session_id: SessionOption = None,
    name: Annotated[str | None, typer.Option(help="Speaker name")] = None,
    role: Annotated[str, typer.Option(help="Message role")] = "user",
    metadata: Annotated[str | None, typer.Option(help="JSON object")] = None,
    timestamp: Annotated[str | None, typer.Option(help="ISO-8601 time of the message")] = None,
    infer: Annotated[bool, typer.Option("--infer/--no-infer")] = True,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a message and the memories extracted from it."""
    with _memory(db) as m:
        message: dict[str, Any] = {"role": role, "content": text}
        if name:
            message["name"] = name
        result = _run(
            lambda: m.add(
                [message], user_id=user_id, agent_id=agent_id, session_id=session_id,
                metadata=_parse_json(metadata, "metadata"), timestamp=timestamp, infer=infer,
            )
        )
        if as_json:
            _print_json(result.model_dump(mode="json"))
            return
        for change in result.results:
            console.print(
                f"{change.event.value:<10} {change.kind.value:<10} {change.id}  {change.text}"
            )


@app.command()
def search(
    query: str,
    user_id: UserOption = None,
    agent_id: AgentOption = None,
    session_id: SessionOption = None,
    limit: Annotated[int, typer.Option("--limit", "-k")] = 10,
    filters: Annotated[str | None, typer.Option(help="JSON filter object")] = None,
    kinds: KindsOption = None,
    as_of: Annotated[str | None, typer.Option(help="What was valid at this ISO time")] = None,
    plan: Annotated[str | None, typer.Option(help="Recipe: fast, balanced, deep")] = None,
    now: Annotated[str | None, typer.Option(help="The question's date, ISO-8601 (for "
                                            "'last May' in the query)")] = None,
    include_archived: ArchivedOption = False,
    group: Annotated[bool, typer.Option(
        "--group/--flat", help="One hit per source message(s), the others as related")] = True,
    min_trust: MinTrustOption = "agent",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search a scope's memories (hybrid: vector + BM25, fused)."""
    with _memory(db) as m:
        response = _run(
            lambda: m.search(
                query, user_id=user_id, agent_id=agent_id, session_id=session_id,
                filters=_parse_json(filters, "filters"), kinds=kinds, limit=limit, as_of=as_of,
                plan=plan, now=now, include_archived=include_archived, group=group,
                min_trust=min_trust,
            )
        )
        if as_json:
            _print_json(response.model_dump(mode="json"))
        else:
            print_search(response)


@app.command()
def get(memory_id: str, db: DbOption = None) -> None:
    """Show one memory."""
    with _memory(db) as m:
        _print_json(_run(lambda: m.get(memory_id)).model_dump(mode="json"))


@app.command("list")
def list_(
    user_id: UserOption = None,
    agent_id: AgentOption = None,
    session_id: SessionOption = None,
    limit: Annotated[int, typer.Option("--limit", "-k")] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    filters: Annotated[str | None, typer.Option(help="JSON filter object")] = None,
    kinds: KindsOption = None,
    include_inactive: Annotated[bool, typer.Option("--all")] = False,
    include_archived: ArchivedOption = False,
    status: Annotated[str | None, typer.Option(
        help="Only memories of this status (e.g. quarantined, for review)")] = None,
    min_trust: MinTrustOption = "agent",
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a scope's memories, a page at a time (Memory.get_all)."""
    with _memory(db) as m:
        page = _run(
            lambda: m.get_all(
                user_id=user_id, agent_id=agent_id, session_id=session_id,
                filters=_parse_json(filters, "filters"), kinds=kinds, limit=limit,
                cursor=cursor, include_inactive=include_inactive,
                include_archived=include_archived, status=status, min_trust=min_trust,
            )
        )
        if as_json:
            _print_json(page.model_dump(mode="json"))
            return
        table = Table(title=f"{page.total} memories")
        for col in ("id", "kind", "status", "when", "text"):
            table.add_column(col)
        for r in page.items:
            table.add_row(r.id, r.kind.value, r.status.value, _short_time(r), r.text)
        console.print(table)
        if page.next_cursor:
            console.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def delete(
    memory_id: str,
    hard: Annotated[bool, typer.Option("--hard", help="Erase from every index")] = False,
    db: DbOption = None,
) -> None:
    """Delete a memory (soft by default)."""
    with _memory(db) as m:
        _run(lambda: m.delete(memory_id, hard=hard))
        console.print(f"deleted {memory_id}{' (hard)' if hard else ''}")


@app.command()
def review(
    memory_id: str,
    action: Annotated[str, typer.Argument(help="release (active again) or delete")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide on a quarantined memory: release it or delete it (Memory.review)."""
    with _memory(db) as m:
        record = _run(lambda: m.review(memory_id, action))
        if as_json:
            _print_json(record.model_dump(mode="json"))
            return
        console.print(f"{memory_id}: {record.status.value}")


@app.command()
def history(memory_id: str, db: DbOption = None) -> None:
    """Every change of a memory, oldest first."""
    with _memory(db) as m:
        entries = _run(lambda: m.history(memory_id))
        _print_json([e.model_dump(mode="json") for e in entries])


@app.command()
def stats(db: DbOption = None) -> None:
    """Counts by kind and status, index sizes, and whether the indexes agree with the rows."""
    with _memory(db) as m:
        _print_json({**m.stats().model_dump(), "consistency": m.store.consistency()})


@app.command("export")
def export_(
    output: Annotated[Path, typer.Argument(help="JSONL file to write ('-' for stdout)")],
    user_id: UserOption = None,
    agent_id: AgentOption = None,
    session_id: SessionOption = None,
    include_inactive: Annotated[bool, typer.Option(
        "--include-inactive/--active-only", help="Also deleted and superseded memories")] = True,
    full: Annotated[bool, typer.Option(
        "--full/--memories-only", help="Also the raw messages and the memories' history "
        "(a whole-store move, e.g. SQLite to PostgreSQL)")] = False,
    db: DbOption = None,
) -> None:
    """Write memories (and their messages and history) as JSON lines (all of the tenant when
    no scope is given)."""
    with _memory(db) as m:
        out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
        count = 0
        try:
            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task("exporting", total=None)
                for record in _run(
                    lambda: list(
                        m.export(user_id=user_id, agent_id=agent_id, session_id=session_id,
                                 include_inactive=include_inactive, full=full)
                    )
                ):
                    out.write(record.model_dump_json() + "\n")
                    count += 1
                    progress.advance(task)
        finally:
            if out is not sys.stdout:
                out.close()
        err_console.print(f"exported {count} records")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="JSONL file written by `memsvc export`")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 256,
    db: DbOption = None,
) -> None:
    """Load an export: memories, messages, history (what is already present is skipped;
    vectors are recomputed; the store signs every row itself)."""
    lines = source.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                err_console.print(f"[red]error[/red]: line {number} is not JSON: {exc.msg}")
                raise typer.Exit(2) from exc
    totals = {"imported": 0, "skipped": 0, "messages": 0, "history": 0}
    with _memory(db) as m, Progress(console=err_console) as progress:
        task = progress.add_task("importing", total=len(records))
        for chunk in batches(records, batch_size):
            result = _run(lambda chunk=chunk: m.import_records(chunk))  # type: ignore[misc]
            for key in totals:
                totals[key] += result.get(key, 0)
            progress.advance(task, len(chunk))
    console.print(f"imported {totals['imported']} memories, {totals['messages']} messages, "
                  f"{totals['history']} history entries; skipped {totals['skipped']} "
                  "(already present)")


@app.command()
def consolidate(
    user_id: UserOption = None,
    agent_id: AgentOption = None,
    now: Annotated[str | None, typer.Option(help="Reference time, ISO-8601 (default: now)")] = None,
    step: Annotated[
        list[str] | None,
        typer.Option("--step", help="Only these steps (repeat): retry, merge, summaries, "
                     "decay, profile"),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Offline upkeep: retry failed extractions, merge duplicates, summarise, archive, profile."""
    with _memory(db) as m:
        with Progress(console=err_console, transient=True) as progress:
            tasks: dict[str, Any] = {}

            def advance(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                progress.update(tasks[name], completed=done)

            report = _run(
                lambda: m.consolidate(
                    user_id=user_id, agent_id=agent_id, now=now, steps=step, progress=advance
                )
            )
        if as_json:
            _print_json(report.model_dump(mode="json"))
            return
        table = Table("what", "count")
        for field in ("scopes", "retried", "retry_failures", "merged", "summaries_added",
                      "summaries_updated", "archived", "restored", "profiles_added",
                      "profiles_updated"):
            table.add_row(field, str(getattr(report, field)))
        console.print(table)
        for change in report.changes:
            first_line = change.text.splitlines()[0] if change.text else ""
            console.print(f"{change.event.value:<8} {change.kind.value:<10} {change.id}  "
                          f"{first_line[:80]}  [dim]{change.reason or ''}[/dim]")
        console.print(f"{report.changed} memories changed")


@app.command()
def demo(
    db: DbOption = None,
    user_id: Annotated[str, typer.Option("--user-id", "-u")] = "demo-alice",
) -> None:
    """Load the demo conversation and run a few searches over it."""
    from memsvc.cli.demo import DEMO_QUERIES, load_demo

    with _memory(db) as m:
        turns = load_demo(m, user_id=user_id)
        console.print(
            f"Loaded {turns} demo turns for user [bold]{user_id}[/bold] into {m.settings.db_path}"
        )
        for query in DEMO_QUERIES:
            print_search(m.search(query, user_id=user_id, limit=3))


# The other command groups, each in its own module (their heavy imports load only when run):
# `eval` (benchmarks), `serve`/`mcp`/`keys` (server), `llm` (local vLLM), `db postgres`
# (embedded PostgreSQL), `verify` (tamper audit), `migrate-store` (copy between backends).
from memsvc.cli import db, evals, llm, migrate, server, verify  # noqa: E402

for _group in (evals, server, llm, db, verify, migrate):
    _group.register(app)


if __name__ == "__main__":
    app()
