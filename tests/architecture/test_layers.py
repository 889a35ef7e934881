"""The floors of the house, enforced: imports point one way and never form a circle.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at
the top of a module: both are a dependency a newcomer has to know about. The order of floors
is DEVELOPERS.md's map; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
# installed name of each top-level folder (pyproject.toml, [tool.setuptools.package-dir])
FOLDERS = {
    "memsvc": "memsvc",
    "extractors": "memsvc.extractors",
    "retrievers": "memsvc.retrievers",
    "storage": "memsvc.storage",
    "serving": "memsvc.serving",
    "evals": "memsvc.evals",
}
# ground floor first; a package may import its own modules and anything on a lower floor
FLOORS: list[tuple[str, ...]] = [
    ("memsvc.model",),
    ("memsvc.text", "memsvc.embedding", "memsvc.llm"),
    ("memsvc.storage",),
    ("memsvc.extractors", "memsvc.retrievers"),
    ("memsvc.write",),
    ("memsvc.consolidate",),
    ("memsvc.sdk",),
    ("memsvc.serving", "memsvc.integrations", "memsvc.compat"),
    ("memsvc.evals",),
    ("memsvc.cli",),  # the roof: the command line wires serve, mcp, workers and evals
]
FLOOR_OF = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if "migrations" in parts:
                continue  # Alembic revisions import only SQLAlchemy and Alembic
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    """The floor package a module belongs to: `memsvc.sdk.memory` → `memsvc.sdk`."""
    for depth in (2, 3):
        candidate = ".".join(module.split(".")[:depth])
        if candidate in FLOOR_OF:
            return candidate
    return module


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name in MODULES}


def test_every_module_is_on_a_floor() -> None:
    homeless = sorted(m for m in MODULES if m != "memsvc" and _package(m) not in FLOOR_OF)
    assert not homeless, f"modules on no floor (add them to FLOORS and DEVELOPERS.md): {homeless}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "memsvc"))
def test_imports_point_down(module: str) -> None:
    own = _package(module)
    upward = sorted(
        target
        for target in _imports(MODULES[module], top_level_only=False)
        if _package(target) != own
        and target != "memsvc"
        and FLOOR_OF.get(_package(target), -1) >= FLOOR_OF[own]
    )
    assert not upward, f"{module} (floor {own}) imports from its own floor or above: {upward}"


def test_nothing_outside_storage_imports_a_backend() -> None:
    # the embedded PostgreSQL server is a process to start for development, not a store
    backends = {
        m for m in MODULES if m.startswith(("memsvc.storage.sqlite", "memsvc.storage.postgres"))
    } - {"memsvc.storage.postgres.server"}
    offenders = sorted(
        (module, target)
        for module, path in MODULES.items()
        if _package(module) != "memsvc.storage"
        for target in _imports(path, top_level_only=False)
        if target in backends
    )
    assert not offenders, f"backend modules imported outside storage/: {offenders}"


def test_no_import_cycles() -> None:
    graph = nx.DiGraph()
    for module, path in MODULES.items():
        for target in _imports(path, top_level_only=True):
            if target != module and not module.startswith(target + "."):
                graph.add_edge(module, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_every_package_is_installed() -> None:
    """A sub-package missing from pyproject's explicit list works in the editable checkout
    and vanishes from a wheel; catch it here rather than in a user's install."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    found = set()
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert sorted(found - set(config["packages"])) == []
