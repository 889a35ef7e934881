"""`python -m memsvc.cli`: the same as the `memsvc` command."""

from memsvc.cli.main import app

app()
