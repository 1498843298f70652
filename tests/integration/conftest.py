"""Runtimes (database + Stream gateway on the emulator) for tests that drive the service below HTTP."""

from __future__ import annotations

import pytest

from onecrew_chat.runtime import build_runtime
from tests.conftest import make_settings, marked_overrides


@pytest.fixture
async def runtime(request, database_url, emulator, emulator_server):
    """A runtime on the test database (both kinds) with the emulator as Stream (and the test's `app_settings`)."""
    rt = build_runtime(make_settings(database_url, emulator_server.base_url, **marked_overrides(request)))
    yield rt
    await rt.close()


@pytest.fixture
async def sqlite_runtime(request, sqlite_only_url, emulator, emulator_server):
    """The same on SQLite alone, for what the database does not change."""
    rt = build_runtime(make_settings(sqlite_only_url, emulator_server.base_url, **marked_overrides(request)))
    yield rt
    await rt.close()
