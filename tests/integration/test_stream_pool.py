"""The connection pool to Stream (stream/pool.py) against the emulator over loopback HTTP: every call answered,
connections reused and capped, expired ones replaced, and no slot lost to a failed or cancelled call."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.pool import StackPool, StackTransport
from tests.support import STREAM_KEY, STREAM_SECRET


def _pool(transport: StackTransport) -> StackPool:
    pool = transport._pool
    assert isinstance(pool, StackPool)
    return pool


async def _until(condition, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met within the deadline"
        await asyncio.sleep(0.01)  # polling interval of a deadline-bounded wait


@pytest.fixture
async def gateway(emulator, emulator_server):
    gw = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url, timeout_s=30.0)
    yield gw
    await gw.close()


async def test_concurrent_calls_all_answer_then_reuse_the_connections_they_opened(gateway, emulator):
    emulator.faults.set_latency(50)
    await asyncio.gather(*(gateway.ping() for _ in range(40)))
    transport = gateway._client("GetApp").client._transport
    assert isinstance(transport, StackTransport)
    opened = set(_pool(transport).connections)
    assert 1 <= len(opened) <= 40
    emulator.faults.set_latency(0)
    for _ in range(10):
        await gateway.ping()
    assert set(_pool(transport).connections) <= opened  # one after another: no new connection


async def test_calls_over_the_cap_wait_for_a_connection_and_all_answer(emulator, emulator_server):
    emulator.faults.set_latency(30)
    transport = StackTransport(max_connections=3, keepalive_expiry=30.0)
    async with httpx.AsyncClient(base_url=emulator_server.base_url, transport=transport, timeout=30) as http:
        answers = await asyncio.gather(*(http.get("/api/v2/app") for _ in range(20)))
        assert all(answer.status_code in (200, 401) for answer in answers)
        assert len(_pool(transport).connections) <= 3


async def test_an_expired_connection_is_replaced_not_reused(emulator, emulator_server):
    transport = StackTransport(max_connections=4, keepalive_expiry=0.0)
    async with httpx.AsyncClient(base_url=emulator_server.base_url, transport=transport, timeout=30) as http:
        for _ in range(5):
            assert (await http.get("/api/v2/app")).status_code in (200, 401)
        assert len(_pool(transport).connections) <= 1  # each call closed the expired one it found


async def test_a_call_waiting_for_a_slot_gives_up_at_the_pool_timeout(emulator, emulator_server):
    emulator.faults.set_latency(3000)
    transport = StackTransport(max_connections=1, keepalive_expiry=30.0)
    async with httpx.AsyncClient(base_url=emulator_server.base_url, transport=transport, timeout=30) as http:
        holding = asyncio.create_task(http.get("/api/v2/app"))
        await _until(lambda: _pool(transport)._slots.locked())
        with pytest.raises(httpx.PoolTimeout):
            await http.get("/api/v2/app", timeout=httpx.Timeout(30, pool=0.05))
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding


async def test_a_cancelled_call_gives_its_slot_back(emulator, emulator_server):
    emulator.faults.set_latency(3000)
    transport = StackTransport(max_connections=1, keepalive_expiry=30.0)
    async with httpx.AsyncClient(base_url=emulator_server.base_url, transport=transport, timeout=30) as http:
        holding = asyncio.create_task(http.get("/api/v2/app"))
        await _until(lambda: _pool(transport)._slots.locked())
        holding.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holding
        assert not _pool(transport)._slots.locked()
        emulator.faults.set_latency(0)
        assert (await http.get("/api/v2/app")).status_code in (200, 401)


async def test_a_refused_connection_gives_its_slot_back(emulator):
    transport = StackTransport(max_connections=1, keepalive_expiry=30.0)
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=transport, timeout=5) as http:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await http.get("/api/v2/app")
        assert not _pool(transport)._slots.locked()
        assert _pool(transport).connections == []
