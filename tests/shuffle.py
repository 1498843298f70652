"""`pytest --shuffle SEED`: run the modules, and the tests within each module, in an order drawn
from SEED (`--shuffle reverse`: the collected order reversed), to show that no test depends on one before it.

Tests stay together with their module, so that module fixtures are still set up once. Without `--shuffle` the
plugin changes nothing.
"""

from __future__ import annotations

import random

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle",
        default=None,
        metavar="SEED",
        help="run modules and the tests in each in an order drawn from SEED ('reverse': collected order reversed)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = config.getoption("--shuffle")
    if seed is None:
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    if seed == "reverse":
        groups = [list(reversed(group)) for group in reversed(groups)]
    else:
        chance = random.Random(seed)
        chance.shuffle(groups)
        for group in groups:
            chance.shuffle(group)
    items[:] = [item for group in groups for item in group]


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("--shuffle")
    return f"test order: --shuffle {seed}" if seed is not None else None
