"""One line, not a traceback: how every `memsvc` command reports a bad file, path or input.

The SDK's typed errors (`MemsvcError`) already print as ``error (code): message``; a file
that is missing, a folder where a file was expected, bytes that are not UTF-8, JSON that is
not JSON, a URL that is not one: these come from Python or a library, and used to print a
traceback. `OneLineErrors` is the group class of the `memsvc` command, so every subcommand
(including `keys`, `llm`, `eval`) runs inside it; each such error becomes one line on stderr
and exit code 2, like a usage error. Anything else is a bug and still shows its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from memsvc.model.errors import MemsvcError

EXIT_BAD_INPUT = 2
_err = Console(stderr=True)


def describe(exc: BaseException) -> tuple[str, str]:
    """(code, message) of an error a user's input caused, as the CLI prints it."""
    if isinstance(exc, MemsvcError):
        return exc.code, exc.message
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return "io_error", f"{exc.strerror or exc}{where}"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_encoding", f"not UTF-8 (bad byte at offset {exc.start})"
    return "invalid_input", str(exc) or type(exc).__name__


def _input_errors() -> tuple[type[BaseException], ...]:
    import httpx  # only to name its errors: a malformed URL given to --base-url

    return (MemsvcError, OSError, ValueError, httpx.InvalidURL)


class OneLineErrors(typer.core.TyperGroup):
    """The `memsvc` group: input errors of any subcommand end as one line and exit 2."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        # typer.Exit, Abort and usage errors are not among these: they pass untouched
        try:
            return super().invoke(ctx)
        except _input_errors() as exc:
            code, message = describe(exc)
            _err.print(f"[red]error[/red] ({code}): {escape(message)}", highlight=False,
                       soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from exc
