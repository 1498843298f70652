"""The PostgreSQL pool pings only connections that sat idle (db.ping_idle_connections), and recovers from cut ones."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from onecrew_chat.api.errors import is_retryable
from onecrew_chat.database_url import driver_target
from onecrew_chat.db import PING_AFTER_IDLE_S, idle_pings, make_engine, ping_idle_connections
from onecrew_chat.db_counters import attach_counters
from tests.support import wait_until

pytestmark = pytest.mark.postgres


def _engine(url: str, idle_s: float):
    target = driver_target(url)
    engine = create_async_engine(target.url, connect_args=target.connect_args, pool_size=1, max_overflow=0)
    ping_idle_connections(engine, idle_s)
    return engine


async def _backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def _cut(url: str, pid: int) -> None:
    """Terminate a server process, as a database restart or a proxy's idle timeout would, and wait until it is gone."""
    admin = make_engine(url=url)
    try:
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

            async def gone() -> bool:
                alive = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                return alive == 0

            await wait_until(gone, timeout=30, what=f"backend {pid} to end")
    finally:
        await admin.dispose()


def test_make_engine_pings_connections_idle_for_five_seconds(postgres_only_url):
    engine = make_engine(url=postgres_only_url)
    pings = idle_pings(engine)
    assert pings is not None and pings.idle_s == PING_AFTER_IDLE_S == 5.0
    assert idle_pings(make_engine(url="sqlite://")) is None


async def test_a_connection_in_steady_use_is_not_pinged(postgres_only_url):
    engine = _engine(postgres_only_url, idle_s=3600)
    try:
        counters = attach_counters(engine)
        pids = {await _backend_pid(engine) for _ in range(5)}
        assert len(pids) == 1  # the same pooled connection each time
        assert (counters.pool_checkouts, counters.pings) == (5, 0)
        assert counters.round_trips == 5 + counters.transactions + counters.commits + counters.rollbacks
    finally:
        await engine.dispose()


async def test_an_idle_connection_cut_by_the_server_is_pinged_and_replaced_before_use(postgres_only_url):
    engine = _engine(postgres_only_url, idle_s=0)  # every connection counts as idle
    try:
        counters = attach_counters(engine)
        first = await _backend_pid(engine)  # a new connection: not pinged
        assert counters.pings == 0
        await _cut(postgres_only_url, first)
        second = await _backend_pid(engine)  # pinged, the ping fails, the pool reconnects: the query works
        assert second != first
        assert counters.pings == 1
        assert await _backend_pid(engine) == second and counters.pings == 2  # pinged again, and alive
    finally:
        await engine.dispose()


async def test_a_connection_cut_while_in_steady_use_fails_one_statement_then_the_pool_recovers(postgres_only_url):
    engine = _engine(postgres_only_url, idle_s=3600)
    try:
        first = await _backend_pid(engine)
        await _cut(postgres_only_url, first)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert is_retryable(failed.value)  # what the app answers 503 database_unavailable, Retry-After: 1
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
