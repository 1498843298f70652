"""`onecrew-chat worker`'s /healthz and /readyz follow its outbox loop: not started, running, failing because the
database refuses it, recovered, stopped. Over real HTTP on loopback, against a PostgreSQL database of its own."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from onecrew_chat import dbadmin
from onecrew_chat.composition import run_worker
from onecrew_chat.db import upgrade_database
from onecrew_chat.observability.worker_http import start_metrics_server
from onecrew_chat.runtime import build_runtime
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.support import wait_until


@pytest.fixture
def own_database(postgres_url):
    """A migrated PostgreSQL database of this test's own, which the test may make refuse connections."""
    name = f"onecrew_worker_health_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(dbadmin.create_database(PG_ADMIN_URL, name))
    upgrade_database(url)
    yield name, url
    asyncio.run(dbadmin.drop_database(PG_ADMIN_URL, name))


async def _refuse_connections(name: str, refuse: bool) -> None:
    allow = "false" if refuse else "true"
    await dbadmin.admin_execute(PG_ADMIN_URL, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allow}')
    if refuse:  # and cut the connections the worker's pool holds, as a database restart would
        await dbadmin.admin_execute(
            PG_ADMIN_URL,
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )


def _ready_gauges(text: str) -> dict[str, float]:
    return {
        sample.labels["check"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "onecrew_ready"
    }


async def test_the_workers_health_and_readiness_follow_its_loop(own_database, emulator, emulator_server):
    name, url = own_database
    runtime = build_runtime(make_settings(url, emulator_server.base_url, worker_poll_s=0.05, reconcile_interval_s=0))
    server = await start_metrics_server(runtime, "127.0.0.1", 0)
    stop = asyncio.Event()
    loop_task: asyncio.Task[None] | None = None
    # capture_logs: the failing rounds' tracebacks are kept as events, not rendered (rich rendering with locals, the
    # unconfigured default, takes seconds a traceback on a loaded machine and holds the event loop meanwhile).
    try:
        with capture_logs() as logs:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                # The HTTP side is up before the loop: neither alive nor ready yet.
                health, ready = await http.get("/healthz"), await http.get("/readyz")
                assert health.status_code == 503 and "not started" in health.json()["error"]
                assert ready.status_code == 503 and ready.json()["code"] == "not_ready"

                loop_task = asyncio.create_task(run_worker(runtime, stop))

                async def answers(path: str, status: int) -> bool:
                    return (await http.get(path)).status_code == status

                await wait_until(lambda: answers("/readyz", 200), timeout=15, what="the worker to be ready")
                assert (await http.get("/healthz")).status_code == 200
                assert _ready_gauges((await http.get("/metrics")).text) == {"worker": 1.0, "database": 1.0}

                # The database refuses the worker: its rounds fail and /readyz says so (healthz waits for the bound).
                await _refuse_connections(name, refuse=True)
                await wait_until(lambda: answers("/readyz", 503), timeout=15, what="the worker to be not ready")
                reasons = (await http.get("/readyz")).json()["error"]
                assert "database not reachable" in reasons, reasons
                await wait_until(
                    lambda: runtime.worker_status.failing_since is not None, timeout=15, what="a failed round"
                )
                assert "last round failed" in (await http.get("/readyz")).json()["error"]
                assert _ready_gauges((await http.get("/metrics")).text) == {"worker": 0.0, "database": 0.0}
                assert (await http.get("/healthz")).status_code == 200, "a database outage is no reason to restart"

                await _refuse_connections(name, refuse=False)
                await wait_until(lambda: answers("/readyz", 200), timeout=20, what="the worker to be ready again")

                stop.set()  # the loop ends (as it does when it crashes): not alive any more
                await asyncio.wait_for(loop_task, timeout=10)
                health = await http.get("/healthz")
                assert health.status_code == 503 and "stopped" in health.json()["error"]
                assert (await http.get("/readyz")).status_code == 503
    finally:
        stop.set()
        if loop_task is not None and not loop_task.done():
            loop_task.cancel()
        await server.stop()
        await runtime.close()
    assert any(event["event"] == "outbox.round_failed" for event in logs)
