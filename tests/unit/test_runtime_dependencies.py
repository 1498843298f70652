"""What `pip install .` (the Dockerfile's production install) brings is enough for the product code.

The dev extras install more (the test suite's tools), so a test passing here proves nothing about production unless
it looks at the runtime dependency set itself: pyproject's [project].dependencies and, transitively, what each of
those requires (with the extras asked for), read from the installed distributions' metadata.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

import onecrew_chat

ROOT = Path(__file__).resolve().parents[2]


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """Every distribution `pip install .` installs: the runtime dependencies and what they require, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(text), "") for text in project["dependencies"]]
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = _name(requirement.name)
        for wanted in requirement.extras or {""}:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            names.add(name)
            for text in importlib.metadata.requires(name) or []:
                todo.append((Requirement(text), wanted))
    return names


def third_party_imports() -> set[str]:
    """The top-level modules src/onecrew_chat imports that are neither the standard library nor our own."""
    ours = {"onecrew_chat", "stream_emulator"}
    modules: set[str] = set()
    for path in Path(onecrew_chat.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ours and m != "__future__"}


def test_a_production_install_can_verify_rs256_and_es256():
    """PyJWT needs cryptography for RS256/ES256; without it they are unknown algorithms (issue 14)."""
    closure = runtime_closure()
    assert "pyjwt" in closure and "cryptography" in closure, sorted(closure)


def test_every_module_the_product_code_imports_comes_with_a_production_install():
    closure = runtime_closure()
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: providers.get(module)
        for module in third_party_imports()
        if not any(_name(dist) in closure for dist in providers.get(module, []))
    }
    assert not missing, f"imported by src/onecrew_chat but only in the dev extras (or nowhere): {missing}"
