"""Fixtures: migrated SQLite and PostgreSQL databases, the Stream emulator over loopback, the app over HTTP."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import State

from onecrew_chat import dbadmin
from onecrew_chat.config import Settings
from onecrew_chat.db import upgrade_database
from tests.databases import LEFTOVER_WAIT_S, PostgresDatabase, SqliteTemplate
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_KEY, STREAM_SECRET, logging_kept

# `pytest --shuffle SEED` (or `--shuffle reverse`) runs the tests in another order (tests/shuffle.py).
pytest_plugins = ("tests.shuffle",)

PG_ADMIN_URL = os.environ.get("ONECREW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Marked slow (left out by `make test-fast`): whole modules, or single tests, that start processes (the CLI, `serve`,
# workers, Node) or run for many seconds by design. Together about two thirds of the suite's time.
SLOW = (
    "tests/api/test_fuzz_openapi.py",
    "tests/api/test_no_connection_across_stream.py",
    "tests/emulator/test_node_sdk.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_import_files.py",
    "tests/integration/test_local_instances.py",
    "tests/integration/test_login_wave.py",
    "tests/integration/test_observability_cli.py",
    "tests/integration/test_progress_cli.py",
    "tests/integration/test_serve.py",
    "tests/integration/test_serve_workers.py",
    "tests/integration/test_stream_configure.py",
    "tests/integration/test_backfill.py::test_sync_identities_command",
    "tests/integration/test_import_runner.py::test_from_sql_reads_onecrew_database_with_the_default_or_a_custom_select",
    "tests/integration/test_reconcile.py::test_reconcile_command_reports_then_repairs",
)


def pytest_collection_modifyitems(config, items) -> None:
    """Mark the tests SLOW names (each entry must still name a file, so that a rename cannot drop one silently)."""
    root = Path(config.rootpath)
    missing = [entry for entry in SLOW if not (root / entry.split("::")[0]).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py SLOW names files that do not exist: {', '.join(missing)}")
    for item in items:
        if any(
            item.nodeid == entry or item.nodeid.startswith(f"{entry}::") or item.nodeid.startswith(f"{entry}[")
            for entry in SLOW
        ):
            item.add_marker(pytest.mark.slow)


def _postgres_available() -> bool:
    return asyncio.run(dbadmin.can_connect(PG_ADMIN_URL))


@pytest.fixture(scope="session")
def postgres_database() -> PostgresDatabase:
    """A fresh PostgreSQL database for this test session, migrated once (required when CI=true)."""
    if not _postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but {PG_ADMIN_URL} does not answer")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"onecrew_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    upgrade_database(url)
    yield PostgresDatabase(url)
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


@pytest.fixture(scope="session")
def postgres_url(postgres_database) -> str:
    """The session's PostgreSQL database as it is (for tests that only need the server; rows may be left by
    the test before: database_url and postgres_only_url give it empty)."""
    return postgres_database.url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> SqliteTemplate:
    """A SQLite file migrated once for this test session; each test gets a copy."""
    return SqliteTemplate(Path(tmp_path_factory.mktemp("sqlite")))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request):
    """Each database test runs on SQLite and on PostgreSQL, each time on an empty database."""
    yield request.getfixturevalue(f"{request.param}_only_url")


@pytest.fixture
def sqlite_only_url(sqlite_template):
    """SQLite alone, for tests whose subject does not depend on the database: a migrated file of the test's own."""
    path = sqlite_template.copy()
    yield SqliteTemplate.url_of(path)
    SqliteTemplate.remove(path)


@pytest.fixture
def postgres_only_url(postgres_database):
    """PostgreSQL alone, for concurrency tests that need real row locking."""
    postgres_database.prepare()
    yield postgres_database.url
    left = postgres_database.finish()
    if left:
        pytest.fail(
            f"{left} connection(s) to the test database were still open {LEFTOVER_WAIT_S:g} s after the test: "
            "a test must dispose the engines, close the runtimes and stop the servers it starts"
        )


@pytest.fixture(autouse=True)
def _rows_outside_the_fixtures(request):
    """A test that writes to the session's PostgreSQL database through `postgres_url` leaves it for the next
    test to empty (postgres_only_url, database_url)."""
    raw = "postgres_url" in request.fixturenames and "postgres_only_url" not in request.fixturenames
    database = request.getfixturevalue("postgres_database") if raw else None
    yield
    if database is not None:
        database.known_empty = False


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """No test leaves logging configured onto its own captured stderr (tests/support.logging_kept)."""
    with logging_kept():
        yield


# PostgreSQL here and in CI is a stock server (max_connections 100) that other work on the machine shares. The suite
# bounds its own use: an engine built from make_settings has at most TEST_POOL_SIZE + TEST_MAX_OVERFLOW connections,
# and a PostgreSQL test must close every connection it opened by its end (tests/databases.py, LEFTOVER_WAIT_S).
TEST_POOL_SIZE = 5
TEST_MAX_OVERFLOW = 10


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


@pytest.fixture
def limited(emulator):
    """The emulator with Stream's per-minute and per-second limits enforced (10 UpdateUsers a second), from a fresh
    window."""
    emulator.rate_limiter.reset()
    emulator.rate_limiter.enabled = True
    yield emulator
    emulator.rate_limiter.enabled = False
    emulator.rate_limiter.reset()


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
        db_pool_size=TEST_POOL_SIZE,
        db_max_overflow=TEST_MAX_OVERFLOW,
        provision_deadline_s=3.0,
        # Far from any healthy call on a loaded machine (a timeout there is a retry, and one call more); tests about
        # a timeout set their own.
        stream_timeout_s=5.0,
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


# The FastAPI apps the `app` fixture reuses, by what create_app chooses from the settings (the debug routes). FastAPI
# builds a route's request-handling state the first time a request is matched against it, tens of milliseconds
# of CPU per app that a new app per test paid again; the routes and middleware hold no state of their own.
_APPS: dict[bool, FastAPI] = {}


def _shape(app: FastAPI) -> tuple[int, ...]:
    """What a test could add to an app (a route, a middleware, a handler, an override): a changed app is not reused."""
    return (
        len(app.router.routes),
        len(app.user_middleware),
        len(app.exception_handlers),
        len(app.dependency_overrides),
    )


@pytest.fixture
async def app(settings):
    """The ASGI app with its lifespan running, on a runtime of the test's own (engine, Stream gateway, caches).

    The app object is shared between tests with the same debug routes: each test binds a new runtime built from its
    settings and a new `app.state`, so no pool, cache or row of one test reaches the next."""
    from onecrew_chat.api.app import bind_runtime, create_app
    from onecrew_chat.runtime import build_runtime

    application = _APPS.get(settings.debug_endpoints)
    if application is None:
        application = _APPS[settings.debug_endpoints] = create_app(settings)
    else:
        application.state = State()
        bind_runtime(application, settings, build_runtime(settings))
    shape = _shape(application)
    async with application.router.lifespan_context(application):
        yield application
    if _shape(application) != shape:
        del _APPS[settings.debug_endpoints]


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
