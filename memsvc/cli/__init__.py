"""The `memsvc` command line: the SDK's operations plus serve, mcp, keys, llm, eval."""

from memsvc.cli.main import app

__all__ = ["app"]
