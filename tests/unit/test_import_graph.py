"""The package import graph, built from the source: no cycle, imports only down the layers, and the outbox imports
nothing above the database.

Every import counts: module level, inside functions, under TYPE_CHECKING, and "onecrew_chat.x" strings (the
targets of importlib). A node of the cycle check is a top-level package or module of onecrew_chat (api, sync,
outbox, db, ...); the layer check looks at each module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onecrew_chat
from tests.imports import imported_names

ROOT = Path(onecrew_chat.__file__).parent
# What the generic outbox may use: the database, the models, logging, metrics, errors and settings.
OUTBOX_MAY_IMPORT = {"outbox", "db", "models", "logging", "metrics", "errors", "config"}

# The layers, top first (docs/architecture.md): a module may import its own layer and those below, never one above.
# The outbox worker is the loop the entry points run; the rest of the outbox (the rows, the wake-up, jobs, status)
# sits below sync beside the Stream gateway and the runtime that holds both. Every module not named here (config,
# db, models, errors, identity, ...) is the kernel, the bottom layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("api", "cli", "composition", "outbox.worker"),
    ("accounts", "conversations", "webhooks", "observability"),
    ("sync",),
    ("outbox", "stream", "runtime"),
)
KERNEL_RANK = 0


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
    package = ".".join(("onecrew_chat", *path.relative_to(ROOT).parent.parts))
    return imported_names(path.read_text(), package, importlib_prefix="onecrew_chat.")


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


def module_of(path: Path) -> str:
    """`sync.reconcile.run` for src/onecrew_chat/sync/reconcile/run.py (a package is its __init__)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    """The layer of a module of onecrew_chat (dotted, without the prefix): the longest name in LAYERS that holds it."""
    best, best_rank = "", KERNEL_RANK
    for index, layer in enumerate(LAYERS):
        for name in layer:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, best_rank = name, len(LAYERS) - index
    return best_rank


def _existing(module: str) -> str | None:
    """The longest prefix of `module` (onecrew_chat.x.y.name) that is a module or package of onecrew_chat."""
    parts = module.split(".")
    if parts[0] != "onecrew_chat":
        return None
    while len(parts) > 1:
        relative = Path(*parts[1:])
        if (ROOT / relative).is_dir() or (ROOT / relative).with_suffix(".py").is_file():
            return ".".join(parts[1:])
        parts.pop()
    return None


def module_imports() -> dict[str, set[str]]:
    """module -> the modules of onecrew_chat it imports (dotted, without the prefix)."""
    edges: dict[str, set[str]] = {}
    for unit, path in _source_files():
        if unit == "__init__":
            continue
        found = {module for name in _imported(path) if (module := _existing(name)) is not None}
        edges.setdefault(module_of(path), set()).update(found)
    return edges


def upward(edges: dict[str, set[str]]) -> list[str]:
    """`importer -> imported` for every import of a module in a higher layer than the importer's."""
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if rank(b) > rank(a))


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


def test_layers_are_ranked_as_documented():
    assert rank("api.routes.token") > rank("accounts.tokens") > rank("sync.reconcile.run") > rank("outbox.repository")
    assert rank("outbox.worker") == rank("cli.main") and rank("outbox.jobs") == rank("stream.client") > rank("db")
    assert rank("runtime") == rank("stream") and rank("models") == rank("errors") == KERNEL_RANK


def test_an_upward_import_is_found():
    edges = {
        "sync.mirror": {"accounts.access", "db"},
        "api.app": {"sync.queue"},
        "outbox.repository": {"outbox.worker"},
    }
    assert upward(edges) == ["outbox.repository -> outbox.worker", "sync.mirror -> accounts.access"]
    assert {"sync.channels", "db"} <= module_imports()["conversations.create"]


def test_no_module_imports_a_layer_above_its_own():
    assert upward(module_imports()) == []
