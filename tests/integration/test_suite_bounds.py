"""The suite's own bounds on PostgreSQL connections (tests/conftest.py): small pools, and a test's leftovers found."""

from __future__ import annotations

from sqlalchemy import text

from onecrew_chat import dbadmin
from onecrew_chat.db import make_engine
from tests.conftest import TEST_MAX_OVERFLOW, TEST_POOL_SIZE, make_settings
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
