"""The package import graph, built from the source: no cycle, and the outbox imports nothing above the database.

Every import counts: module level, inside functions, under TYPE_CHECKING, and "onecrew_chat.x" strings (the
targets of importlib). A node is a top-level package or module of onecrew_chat (api, sync, outbox, db, ...).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import onecrew_chat

ROOT = Path(onecrew_chat.__file__).parent
# What the generic outbox may use: the database, the models, logging, metrics, errors and settings.
OUTBOX_MAY_IMPORT = {"outbox", "db", "models", "logging", "metrics", "errors", "config"}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "onecrew_chat" else None


def _source_files() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "migrations":
            continue
        yield relative.parts[0].removesuffix(".py"), path


def _imported(path: Path) -> Iterator[str]:
    """Every onecrew_chat module this file names in an import (or as an importlib target string)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("onecrew_chat", *path.relative_to(ROOT).parent.parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("onecrew_chat."):
            yield node.value


def _exists(unit: str) -> bool:
    return (ROOT / unit).is_dir() or (ROOT / f"{unit}.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """unit -> the other units it imports."""
    edges: dict[str, set[str]] = {}
    for unit, path in _source_files():
        if unit == "__init__":
            continue
        for module in _imported(path):
            other = _unit(module)
            if other and other != unit and _exists(other):
                edges.setdefault(unit, set()).add(other)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_should():
    edges = import_graph()
    assert "db" in edges["outbox"] and "outbox" in edges["sync"] and "outbox" in edges["composition"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_outbox_imports_nothing_above_the_database():
    assert import_graph()["outbox"] <= OUTBOX_MAY_IMPORT, sorted(import_graph()["outbox"] - OUTBOX_MAY_IMPORT)
