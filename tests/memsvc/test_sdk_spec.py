"""Drift: every surface of the SDK agrees with its one definition, memsvc/sdk/operations.py.

The four classes must have each operation with the spec's parameters (names, kinds,
defaults; `Memory` also the types); REST must serve each operation at its path with the
same parameters and defaults; the CLI commands and MCP tools must match the spec except
where they declare a difference (`Surface`). Adding a parameter in one place only fails here.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from memsvc import AsyncMemory, Memory
from memsvc.cli.main import COMMANDS, NOT_IN_CLI
from memsvc.cli.main import app as cli_app
from memsvc.embedding.embedder import SentenceTransformerEmbedder
from memsvc.model.settings import Settings
from memsvc.sdk.client import AsyncMemoryClient, MemoryClient
from memsvc.sdk.operations import OPERATIONS, REQUIRED, Operation, Surface
from memsvc.serving.app import create_app
from memsvc.serving.mcp_server import TOOLS, build_mcp
from memsvc.serving.routers import REST_ONLY_PARAMS, REST_ONLY_ROUTES

CLASSES = [Memory, AsyncMemory, MemoryClient, AsyncMemoryClient]
LIFECYCLE = {"close"}


def signature_drift(cls: type, op: Operation) -> list[str]:
    """How `cls`'s method for `op` differs from the spec (empty when it does not)."""
    method = getattr(cls, op.name, None)
    if method is None:
        return [f"{cls.__name__} has no {op.name}"]
    actual = list(inspect.signature(method).parameters.values())[1:]  # without self
    expected = list(op.signature().parameters.values())
    shape = [(p.name, p.kind, p.default) for p in actual]
    want = [(p.name, p.kind, p.default) for p in expected]
    return [] if shape == want else [f"{cls.__name__}.{op.name}: {shape} != {want}"]


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_has_exactly_the_operations_with_their_signatures(cls: type) -> None:
    assert _public(cls) - LIFECYCLE == {op.name for op in OPERATIONS}
    problems = [p for op in OPERATIONS for p in signature_drift(cls, op)]
    assert not problems, "\n".join(problems)
    awaitable = cls in (AsyncMemory, AsyncMemoryClient)
    for op in OPERATIONS:
        assert inspect.iscoroutinefunction(getattr(cls, op.name)) is awaitable, op.name
        assert getattr(cls, op.name).__doc__, op.name


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_memory_types_are_the_spec_types(op: Operation) -> None:
    hints = typing.get_type_hints(getattr(Memory, op.name))
    for param in op.params:
        assert hints[param.name] == param.type, (op.name, param.name)
    assert hints["return"] == (type(None) if op.returns is None else op.returns), op.name


def test_the_drift_checks_can_fail() -> None:
    class Drifted(MemoryClient):
        def search(self, query: str, *, user_id: str | None = None,  # type: ignore[override]
                   limit: int = 20) -> Any:
            raise NotImplementedError

    assert signature_drift(Drifted, next(o for o in OPERATIONS if o.name == "search"))
    assert signature_drift(MemoryClient, next(o for o in OPERATIONS if o.name == "search")) == []
    surface = Surface("get", renamed={"id": "memory_id"})
    assert surface.drift({"id": REQUIRED}) == []
    assert surface.drift({"memory_id": REQUIRED, "hard": False}) == [
        "'hard' is not a parameter of get"]
    assert "delete parameter 'hard' is not offered" in Surface("delete").drift(
        {"memory_id": REQUIRED})
    assert "'limit' defaults to 5, messages to 1000" in Surface("messages").drift(
        {"user_id": None, "agent_id": None, "session_id": None, "limit": 5})


# -- REST ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory,
            embedder: SentenceTransformerEmbedder) -> Iterator[dict[str, Any]]:
    db = Path(tmp_path_factory.mktemp("spec")) / "spec.db"
    memory = Memory(settings=Settings(db_path=db), embedder=embedder)
    yield create_app(memory).openapi()
    memory.close()


def _rest_params(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """{name: default} of a route's path, query and body parameters (REQUIRED if none; an
    optional field the schema gives no default defaults to None)."""
    route = openapi["paths"][path][method.lower()]
    offered = {p["name"]: (REQUIRED if p.get("required") else p["schema"].get("default"))
               for p in route.get("parameters", [])}
    content = route.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        schema = content["schema"]
        ref = schema.get("$ref") or next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
        model = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]
        for name, prop in model.get("properties", {}).items():
            required = name in model.get("required", [])
            offered[name] = REQUIRED if required else prop.get("default")
    return offered


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_rest_serves_each_operation_with_its_parameters(openapi: dict[str, Any],
                                                        op: Operation) -> None:
    assert op.method.lower() in openapi["paths"].get(op.path, {}), (op.method, op.path)
    offered = _rest_params(openapi, op.method, op.path)
    for name in REST_ONLY_PARAMS.get(op.name, ()):
        offered.pop(name)
    remote = {p.name: p.default for p in op.params if op.where(p) != "local"}
    assert offered == remote


def test_every_rest_route_is_an_operation_or_declared(openapi: dict[str, Any]) -> None:
    served = {(method.upper(), path) for path, item in openapi["paths"].items()
              if path.startswith("/v1/") for method in item}
    assert served == {(op.method, op.path) for op in OPERATIONS} | REST_ONLY_ROUTES


# -- MCP and CLI -----------------------------------------------------------------------------

def test_mcp_tools_match_the_spec_and_carry_its_flags() -> None:
    server = build_mcp(lambda ctx: None)  # type: ignore[arg-type,return-value]
    tools = {t.name: t for t in asyncio.run(server.list_tools())}
    assert set(tools) == set(TOOLS)
    for name, surface in TOOLS.items():
        schema = tools[name].input_schema
        offered = {k: (REQUIRED if k in schema.get("required", []) else v.get("default"))
                   for k, v in schema["properties"].items()}
        assert surface.drift(offered) == [], name
        op = next(o for o in OPERATIONS if o.name == surface.operation)
        hints = tools[name].annotations
        assert hints is not None
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (
            op.read_only, op.destructive, op.idempotent), name


def test_cli_commands_match_the_spec() -> None:
    group: Any = typer.main.get_command(cli_app)
    not_operations = {"demo", "serve", "worker", "mcp", "eval", "keys", "llm", "db", "verify",
                      "migrate-store"}
    assert set(group.commands) == set(COMMANDS) | not_operations
    assert {s.operation for s in COMMANDS.values()} | NOT_IN_CLI == {o.name for o in OPERATIONS}
    for name, surface in COMMANDS.items():
        offered = {p.name: (REQUIRED if p.required else p.default)
                   for p in group.commands[name].params}
        assert surface.drift(offered) == [], name


def test_destructive_operations_are_flagged_and_never_plain_gets() -> None:
    flagged = {op.name for op in OPERATIONS if op.destructive}
    assert flagged == {"delete", "delete_all", "reset", "review"}  # review may delete
    for op in OPERATIONS:
        assert not (op.read_only and op.destructive), op.name
        assert op.method != "GET" or op.read_only, op.name
