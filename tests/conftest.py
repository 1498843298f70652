"""Fixtures: migrated SQLite and PostgreSQL databases, the Stream emulator over loopback, the app over HTTP."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx
import pytest

from onecrew_chat import dbadmin
from onecrew_chat.config import Settings
from onecrew_chat.db import upgrade_database
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET

PG_ADMIN_URL = os.environ.get("ONECREW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_available() -> bool:
    return asyncio.run(dbadmin.can_connect(PG_ADMIN_URL))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh, migrated PostgreSQL database for this test session (required when CI=true)."""
    if not _postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but {PG_ADMIN_URL} does not answer")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"onecrew_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    upgrade_database(url)
    yield url
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    """A migrated SQLite file for this test session."""
    path = Path(tmp_path_factory.mktemp("sqlite")) / "onecrew-chat.sqlite3"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    """Each database test runs on SQLite and on PostgreSQL; tables are emptied before each test."""
    url = request.getfixturevalue(f"{request.param}_url")
    _truncate(url)
    return url


@pytest.fixture
def sqlite_only_url(sqlite_url) -> str:
    """SQLite alone, for tests whose subject does not depend on the database."""
    _truncate(sqlite_url)
    return sqlite_url


@pytest.fixture
def postgres_only_url(postgres_url) -> str:
    """PostgreSQL alone, for concurrency tests that need real row locking."""
    _truncate(postgres_url)
    return postgres_url


def _truncate(url: str) -> None:
    asyncio.run(dbadmin.empty_all_tables(url))


@pytest.fixture(scope="session")
def emulator_server():
    """One Stream emulator over loopback HTTP for the whole session."""
    from stream_emulator import Emulator, EmulatorServer

    emu = Emulator(api_key=STREAM_KEY, api_secret=STREAM_SECRET)
    server = EmulatorServer(emu)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server):
    """The session's emulator with state, faults and request log wiped before the test."""
    emu = emulator_server.emulator
    emu.reset()
    yield emu
    emu.faults.reset()


# /readyz gives the database and Stream's ping 1 s each (routes/health.py, stream_health.py): a loaded test
# machine can take longer for a healthy answer. Tests get 30 s, except those marked real_probe_budgets.
TEST_PROBE_BUDGET_S = 30.0


@pytest.fixture(autouse=True)
def generous_probe_budgets(request, monkeypatch):
    """The readiness probes' budgets are not what most tests are about: 30 s, unless marked real_probe_budgets."""
    if request.node.get_closest_marker("real_probe_budgets"):
        return
    from onecrew_chat.api import stream_health
    from onecrew_chat.api.routes import health

    monkeypatch.setattr(health, "READY_TIMEOUT_S", TEST_PROBE_BUDGET_S)
    monkeypatch.setattr(stream_health, "PING_TIMEOUT_S", TEST_PROBE_BUDGET_S)


SHORT_DEADLINE_S = 0.3
LONG_DEADLINE_S = 15.0


def deadline_for(request) -> float:
    """0.3 s for tests marked short_deadline (Stream down or held: they expect "provisioning" quickly), 15 s for
    tests marked long_deadline (much Stream work that must finish inline even on a loaded machine), else 3 s.

    A test that expects Stream to finish must keep the full deadline: a loaded CI machine can take longer than
    0.3 s for a healthy call.
    """
    if request.node.get_closest_marker("short_deadline"):
        return SHORT_DEADLINE_S
    return LONG_DEADLINE_S if request.node.get_closest_marker("long_deadline") else 3.0


def make_settings(database_url: str, stream_base_url: str, **overrides) -> Settings:
    """Settings for a test app: the emulator as Stream, the given database, test secrets."""
    values = dict(
        database_url=database_url,
        stream_api_key=STREAM_KEY,
        stream_api_secret=STREAM_SECRET,
        stream_base_url=stream_base_url,
        jwt_secret=JWT_SECRET,
        service_token=SERVICE_TOKEN,
        run_worker=False,
        provision_deadline_s=3.0,
        stream_timeout_s=1.0,
        log_format="console",
        log_level="warning",
    )
    values.update(overrides)
    return Settings(**values)


def marked_overrides(request) -> dict:
    """The settings a test names with `@pytest.mark.app_settings(name=value, ...)`."""
    marker = request.node.get_closest_marker("app_settings")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def settings(request, database_url, emulator, emulator_server) -> Settings:
    """Settings over both databases and the emulator (the deadline as `deadline_for` says, then the test's
    `app_settings` marker)."""
    return make_settings(
        database_url,
        emulator_server.base_url,
        **{"provision_deadline_s": deadline_for(request), **marked_overrides(request)},
    )


@pytest.fixture
async def app(settings):
    """The ASGI app with its lifespan running."""
    from onecrew_chat.api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app):
    """HTTP through the whole ASGI stack (middleware, routing, error rendering)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def session(app):
    """A database session on the app's engine, for arranging and inspecting rows."""
    async with app.state.runtime.sessionmaker() as db:
        yield db
