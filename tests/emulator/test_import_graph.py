"""The emulator's import graph, built from the source: no cycle, every import points down its layers, and
nothing from onecrew_chat.

Every import counts: module level, inside functions and under TYPE_CHECKING. A node is one module
("app", "handlers.channels"). The layers, bottom first, are the architecture a reader should see:
the model and its machinery know nothing of calls; the Emulator holds one app's model; a Call is one
request against it; handlers serve calls; the transports (HTTP routing, the WebSocket, the admin path)
and the entry points sit on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import stream_emulator
from tests.imports import imported_names

ROOT = Path(stream_emulator.__file__).parent
PACKAGE = "stream_emulator"

# Bottom first; a module may import its own layer (without a cycle) and the layers below it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"clock", "errors", "operations", "channel_types", "faults", "requestlog", "hub"}),
    frozenset({"state", "auth", "filters", "ratelimit", "webhooks", "persistence", "capabilities", "dialects"}),
    frozenset({"emulator"}),
    frozenset({"call", "permissions", "events"}),
    frozenset({f"handlers.{path.stem}" for path in (ROOT / "handlers").glob("*.py")}),
    frozenset({"router", "realtime", "admin", "app"}),
    frozenset({"server", "cli", "__init__", "__main__"}),
)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported_by(path: Path) -> Iterator[str]:
    return imported_names(path.read_text(), ".".join((PACKAGE, *path.relative_to(ROOT).parent.parts)))


def _own_module(module: str, known: set[str]) -> str | None:
    """The emulator module a dotted name refers to (a name imported from a module maps to that module)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    name = ".".join(parts[1:])
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or "__init__"


def import_graph() -> dict[str, set[str]]:
    """module -> the other emulator modules it imports (a package's own __init__ is not an edge)."""
    paths = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
    known = set(paths)
    edges: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        for module in _imported_by(path):
            other = _own_module(module, known)
            if other is not None and other != name and not other.endswith("__init__"):
                edges[name].add(other)
    return edges


def a_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path that ends where it starts ([] when there is none)."""
    try:
        tuple(TopologicalSorter(edges).static_order())
    except CycleError as error:
        return list(error.args[1])
    return []


def _layer(module: str) -> int:
    for rank, members in enumerate(LAYERS):
        if module in members:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS where it belongs")


def test_the_graph_sees_the_imports_it_should():
    edges = import_graph()
    assert {"emulator", "router", "realtime"} <= edges["app"]
    assert {"call", "events", "handlers.pagination"} <= edges["handlers.channels"]


def test_imports_under_type_checking_and_inside_functions_count():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .app import EmulatorApp\n"
        "def serve():\n    from ..server import EmulatorServer\n"
    )
    names = set(imported_names(source, f"{PACKAGE}.handlers"))
    assert {f"{PACKAGE}.handlers.app", f"{PACKAGE}.server.EmulatorServer"} <= names


def test_cycles_are_found():
    assert sorted(set(a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == ["a", "b", "c"]
    assert a_cycle({"a": {"b"}, "b": set()}) == []


def test_the_emulator_has_no_import_cycle():
    cycle = a_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_every_import_points_down_the_layers():
    upward = sorted(
        f"{module} -> {other}"
        for module, others in import_graph().items()
        for other in others
        if _layer(other) > _layer(module)
    )
    assert upward == []


def test_the_emulator_imports_nothing_from_the_app():
    offenders = sorted(
        _module_name(path)
        for path in ROOT.rglob("*.py")
        if any(module.split(".")[0] == "onecrew_chat" for module in _imported_by(path))
    )
    assert offenders == []
