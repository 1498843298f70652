"""`python -m pytest -p tests.directory_times`: after the run, each test directory's wall and CPU seconds, the
1-minute load average its tests ran under, and how its wall time divides between fixture setup, the tests' own
calls and teardown (docs/testing.md, "Before and after").

CPU is this process's and its finished children's (user + sys, resource.getrusage): steady under load, where wall
time is not. PostgreSQL's own work is not in it.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

import pytest


@dataclass
class _Directory:
    tests: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    loads: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=lambda: {"setup": 0.0, "call": 0.0, "teardown": 0.0})


_directories: dict[str, _Directory] = {}


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _directory(nodeid: str) -> _Directory:
    parts = nodeid.split("::")[0].split("/")
    return _directories.setdefault("/".join(parts[:2]) if len(parts) > 2 else parts[0], _Directory())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    wall, cpu = time.perf_counter(), _cpu_s()
    yield
    directory = _directory(item.nodeid)
    directory.tests += 1
    directory.wall_s += time.perf_counter() - wall
    directory.cpu_s += _cpu_s() - cpu
    directory.loads.append(os.getloadavg()[0])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _directory(report.nodeid).phases[report.when] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_sep("=", "time per directory (wall s, CPU s, 1-minute load average mean/max)")
    for name, d in sorted(_directories.items()):
        load = f"{sum(d.loads) / len(d.loads):5.1f}/{max(d.loads):5.1f}"
        phases = "/".join(f"{d.phases[when]:.0f}" for when in ("setup", "call", "teardown"))
        terminalreporter.write_line(
            f"{name:22} {d.tests:5d} tests  wall {d.wall_s:8.1f}  cpu {d.cpu_s:8.1f}  load {load}"
            f"  setup/call/teardown {phases}"
        )
