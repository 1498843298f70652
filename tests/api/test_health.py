"""Liveness, readiness of this instance (database, migrations, worker; Stream apart, cached) and Prometheus metrics."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from onecrew_chat import version
from onecrew_chat.db import upgrade_database
from tests.conftest import make_settings
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_SECRET, wait_until


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def client_for(settings):
    """An HTTP client over an app built from these settings, lifespan running."""
    from onecrew_chat.api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app_runtime = application.state.runtime
            yield http


def assert_no_secrets(response: httpx.Response) -> None:
    for secret in (JWT_SECRET, SERVICE_TOKEN, STREAM_SECRET):
        assert secret not in response.text


async def test_readyz_is_200_when_database_and_stream_answer(client, emulator):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["data"]["status"] == "ready"
    assert {name: check["status"] for name, check in body["data"]["checks"].items()} == {"database": "ok"}
    assert body["data"]["stream"]["status"] == "up"
    assert emulator.count("GetApp") == 1  # Stream's health really was asked...
    again = await client.get("/readyz")
    assert again.status_code == 200 and again.json()["data"]["stream"]["status"] == "up"
    assert emulator.count("GetApp") == 1  # ...and is cached for a minute: probes do not spend Stream calls


async def test_healthz_answers_while_the_database_is_unreachable(tmp_path, emulator_server):
    # A directory where the SQLite file should be: every connection fails.
    settings = make_settings(f"sqlite:///{tmp_path}", emulator_server.base_url)
    async with client_for(settings) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert (health.status_code, health.json()) == (
        200,
        {"success": True, "data": {"status": "ok", "version": version()}},
    )
    assert ready.status_code == 503
    body = ready.json()
    assert body["success"] is False and body["code"] == "not_ready"
    assert body["error"].startswith("database not reachable: ")
    assert "stream" not in body["error"]  # Stream itself is fine
    assert_no_secrets(ready)


@pytest.fixture
def old_schema_url(tmp_path) -> str:
    """A SQLite database one migration behind this code."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade_database(url, "0004")
    return url


async def test_readyz_is_503_when_the_schema_is_behind_this_code(old_schema_url, emulator_server):
    url = old_schema_url
    async with client_for(make_settings(url, emulator_server.base_url)) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"].startswith("database schema at migration 0004 but this code needs ")
    assert "onecrew-chat db upgrade" in response.json()["error"]


async def test_readyz_stays_ready_when_stream_is_down_and_says_so_apart(sqlite_only_url):
    settings = make_settings(sqlite_only_url, closed_port_url())
    async with client_for(settings) as http:
        response = await http.get("/readyz")
        metrics_text = (await http.get("/metrics")).text
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "ready"
    assert data["stream"]["status"] == "down" and data["stream"]["error"]
    assert "onecrew_stream_up 0.0" in metrics_text
    assert_no_secrets(response)


@pytest.mark.parametrize("status", [500, 401])
async def test_readyz_stays_ready_when_stream_answers_with_an_error(sqlite_only_url, emulator, emulator_server, status):
    emulator.faults.set_error_rate("GetApp", 1.0, status=status)
    async with client_for(make_settings(sqlite_only_url, emulator_server.base_url)) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["stream"]["status"] == "down"
    assert_no_secrets(response)


@pytest.mark.real_probe_budgets
async def test_readyz_gives_a_slow_stream_about_one_second(sqlite_only_url, emulator, emulator_server, monkeypatch):
    from onecrew_chat.api.routes import health

    monkeypatch.setattr(health, "READY_TIMEOUT_S", 30.0)  # the database's budget is not the subject here
    emulator.faults.set_latency(60_000)
    async with client_for(make_settings(sqlite_only_url, emulator_server.base_url, stream_timeout_s=120.0)) as http:
        started = time.monotonic()
        response = await http.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["data"]["stream"]["error"] == "no answer within 1 s"
    # About 1 s: at least the budget, and far from Stream's 60 s or the 120 s HTTP timeout, however loaded the machine.
    assert 0.9 < elapsed < 30.0


async def test_readyz_shows_the_worker_of_this_process(sqlite_only_url, emulator, emulator_server):
    settings = make_settings(sqlite_only_url, emulator_server.base_url, run_worker=True)
    async with client_for(settings) as http:
        runtime = http.app_runtime

        async def worker_reported() -> bool:
            response = await http.get("/readyz")
            return response.status_code == 200 and "worker" in response.json()["data"]["checks"]

        await wait_until(worker_reported, timeout=30, what="/readyz to report the running worker")
        status = runtime.worker_status
        status.running = False  # the worker's loop died
        dead = await http.get("/readyz")
        status.running = True
        status.pause("StreamRequestError: UpsertUsers HTTP 401: invalid signature", kind="k", message_id=1)
        paused = await http.get("/readyz")
        status.resume()
    assert dead.status_code == 503 and dead.json()["error"].startswith("worker not alive")
    assert paused.status_code == 503 and paused.json()["error"].startswith(
        "worker paused: Stream refuses our credentials"
    )


async def test_metrics_are_prometheus_text(client, emulator):
    await client.get("/readyz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE onecrew_stream_calls_total counter" in response.text
    assert 'onecrew_stream_calls_total{operation="GetApp"' in response.text
    assert "# TYPE onecrew_outbox_dead_total counter" in response.text
