"""Liveness, readiness (database and Stream, each within ~1 s, reasons in words) and Prometheus metrics."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from tests.conftest import make_settings
from tests.support import JWT_SECRET, SERVICE_TOKEN, STREAM_SECRET


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
    assert {name: check["status"] for name, check in body["data"]["checks"].items()} == {"database": "ok", "stream": "ok"}
    assert emulator.count("GetApp") == 1  # readiness really asked Stream


async def test_healthz_answers_while_the_database_is_unreachable(tmp_path, emulator_server):
    # A directory where the SQLite file should be: every connection fails.
    settings = make_settings(f"sqlite:///{tmp_path}", emulator_server.base_url)
    async with client_for(settings) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"success": True, "data": {"status": "ok"}})
    assert ready.status_code == 503
    body = ready.json()
    assert body["success"] is False and body["code"] == "not_ready"
    assert body["error"].startswith("database not reachable: ")
    assert "stream" not in body["error"]  # Stream itself is fine
    assert_no_secrets(ready)


async def test_readyz_is_503_with_the_reason_when_stream_is_down(sqlite_only_url):
    settings = make_settings(sqlite_only_url, closed_port_url())
    async with client_for(settings) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
    assert response.json()["error"].startswith("stream not reachable: ")
    assert "database" not in response.json()["error"]
    assert_no_secrets(response)


@pytest.mark.parametrize("status", [500, 401])
async def test_readyz_is_503_when_stream_answers_with_an_error(sqlite_only_url, emulator, emulator_server, status):
    emulator.faults.set_error_rate("GetApp", 1.0, status=status)
    async with client_for(make_settings(sqlite_only_url, emulator_server.base_url)) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"].startswith("stream not reachable: ")
    assert_no_secrets(response)


async def test_readyz_gives_a_slow_stream_about_one_second(sqlite_only_url, emulator, emulator_server):
    emulator.faults.set_latency(6000)
    async with client_for(make_settings(sqlite_only_url, emulator_server.base_url, stream_timeout_s=10.0)) as http:
        started = time.monotonic()
        response = await http.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"] == "stream not reachable: no answer within 1 s"
    assert 0.9 < elapsed < 4.0  # about 1 s, far from Stream's 6 s


async def test_metrics_are_prometheus_text(client, emulator):
    await client.get("/readyz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE onecrew_stream_calls_total counter" in response.text
    assert 'onecrew_stream_calls_total{operation="GetApp"' in response.text
    assert "# TYPE onecrew_outbox_dead_total counter" in response.text
