"""/metrics reports what the database says in every process (no worker runs in these apps), plus Stream headroom."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from onecrew_chat.db import utcnow
from onecrew_chat.models import ChannelDrift, OutboxMessage, ReconcileRun, WorkerHeartbeat
from onecrew_chat.observability import collector
from tests.api.test_health import client_for, closed_port_url
from tests.conftest import make_settings


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


async def test_outbox_reconcile_drift_and_workers_come_from_the_database(client, session, settings):
    assert settings.run_worker is False  # an API-only process: nobody else sets these gauges
    now = utcnow()
    session.add_all(
        [
            OutboxMessage(kind="identity.sync", payload={}, status="pending", created_at=now - timedelta(seconds=600)),
            OutboxMessage(kind="identity.sync", payload={}, status="pending", created_at=now - timedelta(seconds=5)),
            OutboxMessage(kind="identity.sync", payload={}, status="dead", created_at=now - timedelta(days=2)),
            OutboxMessage(kind="identity.sync", payload={}, status="done", created_at=now - timedelta(days=3)),
            ChannelDrift(channel_type="messaging", channel_id="a", kind="member_removed", detail={}),
            ChannelDrift(channel_type="messaging", channel_id="b", kind="member_removed", detail={}, resolved_at=now),
            ReconcileRun(finished_at=now - timedelta(hours=1), drift={"identity_missing": 0, "channel_missing": 2}),
            ReconcileRun(finished_at=now - timedelta(hours=2), drift={"identity_missing": 9}),
            WorkerHeartbeat(worker_id="w1", hostname="h", pid=1, started_at=now, last_seen_at=now),
            WorkerHeartbeat(worker_id="w0", hostname="h", pid=2, started_at=now, last_seen_at=now - timedelta(hours=1)),
        ]
    )
    await session.commit()

    text = (await client.get("/metrics")).text
    assert value(text, "onecrew_outbox_pending") == 2
    assert 600 <= value(text, "onecrew_outbox_oldest_pending_age_seconds") < 3600
    assert value(text, "onecrew_outbox_dead_letters") == 1
    assert abs(value(text, "onecrew_reconcile_last_run_timestamp_seconds") - (now - timedelta(hours=1)).timestamp()) < 1
    assert value(text, "onecrew_reconcile_drift", kind="channel_missing") == 2
    assert value(text, "onecrew_reconcile_drift", kind="identity_missing") == 0
    assert value(text, "onecrew_channel_drift_open", kind="member_removed") == 1
    assert value(text, "onecrew_workers_seen") == 1
    assert value(text, "onecrew_database_metrics_up") == 1


async def test_an_empty_database_reports_zeros(client):
    text = (await client.get("/metrics")).text
    for name in (
        "onecrew_outbox_pending",
        "onecrew_outbox_oldest_pending_age_seconds",
        "onecrew_outbox_dead_letters",
        "onecrew_reconcile_last_run_timestamp_seconds",
        "onecrew_workers_seen",
    ):
        assert value(text, name) == 0, name
    assert value(text, "onecrew_reconcile_drift", kind="channel_missing") is None  # no run, no drift series


async def test_scrapes_within_the_cache_period_read_the_database_once(app, session):
    runtime = app.state.runtime
    await collector.refresh_metrics(runtime, cache_s=3600)
    session.add(OutboxMessage(kind="identity.sync", payload={}, status="dead"))
    await session.commit()
    await collector.refresh_metrics(runtime, cache_s=3600)
    assert REGISTRY.get_sample_value("onecrew_outbox_dead_letters") == 0  # cached
    await collector.refresh_metrics(runtime, cache_s=0)
    assert REGISTRY.get_sample_value("onecrew_outbox_dead_letters") == 1


async def test_metrics_answer_when_the_database_does_not(tmp_path, emulator_server):
    # A directory where the SQLite file should be: every connection fails.
    async with client_for(make_settings(f"sqlite:///{tmp_path}", emulator_server.base_url)) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert value(response.text, "onecrew_database_metrics_up") == 0


async def test_stream_rate_limit_headroom_per_operation(client, emulator):
    assert (await client.get("/readyz")).status_code == 200  # one GetApp call
    text = (await client.get("/metrics")).text
    limit = value(text, "onecrew_stream_rate_limit_limit", operation="GetApp")
    remaining = value(text, "onecrew_stream_rate_limit_remaining", operation="GetApp")
    assert limit and 0 <= remaining < limit
    assert (
        value(text, "onecrew_stream_rate_limit_reset_timestamp_seconds", operation="GetApp") > utcnow().timestamp() - 1
    )
    assert value(text, "onecrew_stream_up") == 1  # Stream's health is its own gauge, not a readiness check
    assert value(text, "onecrew_ready", check="database") == 1


async def test_stream_auth_failures_are_counted(sqlite_only_url, emulator, emulator_server):
    settings = make_settings(
        sqlite_only_url, emulator_server.base_url, stream_api_secret="not-the-stream-secret-0123456789abcdef"
    )
    async with client_for(settings) as http:
        before = value((await http.get("/metrics")).text, "onecrew_stream_auth_failures_total", operation="GetApp") or 0
        # A wrong secret does not make this instance unready (it keeps serving); Stream's health says down.
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["data"]["stream"]["status"] == "down"
        text = (await http.get("/metrics")).text
    assert value(text, "onecrew_stream_auth_failures_total", operation="GetApp") == before + 1
    assert value(text, "onecrew_stream_up") == 0


async def test_the_stream_gauge_follows_an_unreachable_stream(sqlite_only_url):
    async with client_for(make_settings(sqlite_only_url, closed_port_url())) as http:
        assert (await http.get("/readyz")).status_code == 200
        text = (await http.get("/metrics")).text
    assert value(text, "onecrew_stream_up") == 0
    assert value(text, "onecrew_ready", check="database") == 1
