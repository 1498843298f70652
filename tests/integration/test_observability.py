"""Below HTTP: worker heartbeats, reconcile runs recorded for every process, the worker's metrics server, the
start-up check against Stream."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from onecrew_chat import version
from onecrew_chat.composition import run_worker
from onecrew_chat.models import ReconcileRun, WorkerHeartbeat
from onecrew_chat.observability.heartbeat import run_heartbeat, worker_identity
from onecrew_chat.observability.startup import StreamCredentialsRejected, check_stream_at_startup
from onecrew_chat.observability.worker_http import MetricsPortUnavailable, start_metrics_server
from onecrew_chat.sync.reconcile.run import reconcile
from tests.api.test_health import closed_port_url
from tests.conftest import make_settings
from tests.support import STREAM_SECRET, wait_until


async def heartbeats(runtime) -> list[WorkerHeartbeat]:
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(select(WorkerHeartbeat)))


async def test_heartbeat_is_written_every_interval_and_deleted_on_stop(runtime):
    runtime.settings = runtime.settings.model_copy(update={"worker_heartbeat_s": 0.05})
    stop = asyncio.Event()
    task = asyncio.create_task(run_heartbeat(runtime, stop))
    rows = await wait_until(lambda: heartbeats(runtime), what="the first heartbeat")
    first_seen = rows[0].last_seen_at
    assert rows[0].worker_id == worker_identity(runtime).worker_id
    await wait_until(lambda: _later(runtime, first_seen), what="a second heartbeat")
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert await heartbeats(runtime) == []


async def _later(runtime, seen) -> bool:
    rows = await heartbeats(runtime)
    return bool(rows) and rows[0].last_seen_at > seen


async def test_a_reconcile_run_records_its_time_and_drift(runtime, emulator):
    report = await reconcile(runtime, repair=False)
    async with runtime.sessionmaker() as session:
        runs = list(await session.scalars(select(ReconcileRun)))
    assert len(runs) == 1
    assert runs[0].drift == report.drift and set(runs[0].drift) == {
        "identity_missing",
        "profile_stale",
        "channel_missing",
        "member_missing",
    }


async def test_the_worker_metrics_server_answers_over_http(runtime, emulator):
    server = await start_metrics_server(runtime, "127.0.0.1", 0)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_worker(runtime, stop))
    try:
        await wait_until(lambda: runtime.worker_status is not None, what="the worker's loop to start")
        # httpx's 5 s default is not what this test is about: a loaded machine can take longer for /metrics.
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            health = await http.get("/healthz")
            metrics = await http.get("/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
        await server.stop()
    assert health.status_code == 200
    worker_id = worker_identity(runtime).worker_id
    assert health.json()["data"] == {"status": "ok", "role": "worker", "worker_id": worker_id, "version": version()}
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    names = {s.name for f in text_string_to_metric_families(metrics.text) for s in f.samples}
    assert {"onecrew_outbox_pending", "onecrew_outbox_dead_letters", "onecrew_database_metrics_up"} <= names
    with pytest.raises(httpx.ConnectError):  # stopped: the port is closed again
        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.get("/healthz")


async def test_a_taken_metrics_port_is_refused_in_words(runtime):
    first = await start_metrics_server(runtime, "127.0.0.1", 0)
    try:
        with pytest.raises(MetricsPortUnavailable, match="set ONECREW_WORKER_METRICS_PORT to another port, or 0"):
            await start_metrics_server(runtime, "127.0.0.1", first.port)
    finally:
        await first.stop()


async def test_startup_check_accepts_refuses_and_warns(sqlite_only_url, emulator, emulator_server):
    good = make_settings(sqlite_only_url, emulator_server.base_url)
    assert await check_stream_at_startup(good) is None
    assert emulator.count("GetApp") == 1

    wrong = good.model_copy(update={"stream_api_secret": "x" * 40})
    with pytest.raises(StreamCredentialsRejected) as refused:
        await check_stream_at_startup(wrong)
    message = str(refused.value)
    assert message.startswith("Stream rejected STREAM_API_KEY/STREAM_API_SECRET (401 ")
    assert message.endswith("; check them or set ONECREW_STREAM_STARTUP_CHECK=false")
    assert "x" * 40 not in message and STREAM_SECRET not in message

    wrong_key = good.model_copy(update={"stream_api_key": "not-our-key"})
    with pytest.raises(StreamCredentialsRejected, match=r"^Stream rejected STREAM_API_KEY/STREAM_API_SECRET \(401 "):
        await check_stream_at_startup(wrong_key)

    skipped = wrong.model_copy(update={"stream_startup_check": False})
    assert await check_stream_at_startup(skipped) is None
    assert emulator.count("GetApp") == 3  # the skipped check made no call

    down = make_settings(sqlite_only_url, closed_port_url())
    warning = await check_stream_at_startup(down)
    assert warning and "is not reachable" in warning and "starting anyway" in warning
