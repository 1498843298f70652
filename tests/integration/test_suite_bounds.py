"""The suite's own bounds on PostgreSQL connections (tests/conftest.py): small pools, and a test's leftovers found."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from onecrew_chat import dbadmin
from onecrew_chat.db import make_engine, make_sessionmaker
from onecrew_chat.models import Base, OutboxMessage, User
from tests.conftest import TEST_MAX_OVERFLOW, TEST_POOL_SIZE, make_settings
from tests.factories import add_user
from tests.support import wait_until


def test_test_apps_have_small_pools(emulator_server):
    settings = make_settings("postgresql://postgres@127.0.0.1:5432/unused", emulator_server.base_url)
    assert settings.db_pool_size + settings.db_max_overflow == TEST_POOL_SIZE + TEST_MAX_OVERFLOW <= 15


async def test_a_connection_left_open_is_counted_and_can_be_ended(postgres_only_url):
    assert await dbadmin.other_connections(postgres_only_url) == 0
    engine = make_engine(url=postgres_only_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            assert await dbadmin.other_connections(postgres_only_url) == 1  # in use
        assert await dbadmin.other_connections(postgres_only_url) == 1  # back in the pool: still open
        await dbadmin.end_other_connections(postgres_only_url)

        async def ended() -> bool:  # the server ends the backend just after the call returns
            return await dbadmin.other_connections(postgres_only_url) == 0

        await wait_until(ended, what="the pooled connection to be ended")
    finally:
        await engine.dispose()


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_each_test_gets_an_empty_database_with_restarted_ids(database_url, turn):
    """Whichever of the two runs second finds no row of the other and ids that start again at 1."""
    engine = make_engine(url=database_url)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions() as db:
            for table in Base.metadata.sorted_tables:
                assert (await db.execute(select(func.count()).select_from(table))).scalar_one() == 0, table.name
            user_id = await add_user(db, f"Left by the {turn}")
            db.add(OutboxMessage(kind="suite.check", payload={"turn": turn}))
            await db.commit()
            ids = (await db.execute(select(OutboxMessage.id))).scalars().all()
            assert ids == [1]
            assert await db.get(User, user_id) is not None
    finally:
        await engine.dispose()


_RUNTIMES_SEEN: list[object] = []


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_tests_sharing_an_app_each_get_a_runtime_and_state_of_their_own(app, client, turn):
    """The `app` fixture reuses the FastAPI app; whichever test runs second finds nothing the other left on it."""
    assert not hasattr(app.state, "left_by"), f"app.state still holds what the {app.state.left_by} test set"
    runtime = app.state.runtime
    assert all(runtime is not seen for seen in _RUNTIMES_SEEN), "a runtime (engine, caches) of an earlier test"
    assert (await client.get("/healthz")).status_code == 200
    app.state.left_by = turn
    _RUNTIMES_SEEN.append(runtime)


@pytest.mark.parametrize("turn", ["first", "second"])
async def test_a_route_one_test_adds_to_the_app_is_not_there_for_the_next(app, client, turn):
    assert (await client.get("/test/added")).status_code == 404
    app.add_api_route("/test/added", lambda: {"added_by": turn}, methods=["GET"])
    assert (await client.get("/test/added")).json() == {"added_by": turn}
