"""CLI commands of the benchmarks: `memsvc eval locomo|longmemeval`.

Kept apart from memsvc/cli/main.py (the SDK's operations); `register(app)` adds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Retrieval benchmarks (LoCoMo, LongMemEval).", no_args_is_help=True)


@eval_app.command("locomo")
def eval_locomo(
    path: Annotated[Path, typer.Argument(help="A LoCoMo JSON file or a folder of them")],
    mode: Annotated[str, typer.Option(help="raw (infer=False) or infer (infer=True)")] = "raw",
    out_dir: Annotated[Path, typer.Option(help="Where results are written")] = Path(
        "evals/results"
    ),
) -> None:
    """Evidence recall@k of LoCoMo questions; writes evals/results/locomo-<mode>.json."""
    from memsvc.evals import locomo

    raise typer.Exit(locomo.main([str(path), "--mode", mode, "--out", str(out_dir)]))


@eval_app.command("longmemeval")
def eval_longmemeval(
    path: Annotated[Path, typer.Argument(help="A LongMemEval JSON file")],
    mode: Annotated[str, typer.Option(help="raw (infer=False) or infer (infer=True)")] = "raw",
    out_dir: Annotated[Path, typer.Option(help="Where results are written")] = Path(
        "evals/results"
    ),
) -> None:
    """Session- and turn-level recall@k on LongMemEval-format data."""
    from memsvc.evals import longmemeval

    raise typer.Exit(longmemeval.main([str(path), "--mode", mode, "--out", str(out_dir)]))


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
