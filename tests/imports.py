"""The modules a Python source names in its imports, read from its syntax tree (for the import-graph tests)."""

from __future__ import annotations

import ast
from collections.abc import Iterator


def imported_names(source: str, package: str, importlib_prefix: str | None = None) -> Iterator[str]:
    """Every module a file of `package` names in an import, as dotted absolute names.

    `from a import b` yields both `a` and `a.b` (b may be a module or a name in a). With `importlib_prefix`, a
    string constant starting with it counts too, so an `importlib.import_module("pkg.x")` cannot hide an import.
    """
    for node in ast.walk(ast.parse(source)):
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
        elif (
            importlib_prefix is not None
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(importlib_prefix)
        ):
            yield node.value
