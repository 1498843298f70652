"""GET /api/internal/status: the operator's one screen, for the service token only; problems in words."""

from __future__ import annotations

from datetime import timedelta

from onecrew_chat.db import utcnow
from onecrew_chat.models import OutboxMessage, ReconcileRun, WorkerHeartbeat
from tests.api.test_health import assert_no_secrets, client_for, closed_port_url
from tests.conftest import make_settings
from tests.support import auth, new_id, service_auth


async def test_needs_the_service_token(client):
    assert (await client.get("/api/internal/status")).status_code == 401
    response = await client.get("/api/internal/status", headers=auth(new_id()))
    assert response.status_code == 401
    assert response.json()["success"] is False


async def test_all_well_when_a_worker_beats_and_nothing_waits(client, session, emulator, emulator_server):
    now = utcnow()
    session.add(WorkerHeartbeat(worker_id="w1", hostname="h", pid=7, started_at=now, last_seen_at=now))
    session.add(ReconcileRun(finished_at=now - timedelta(minutes=5), drift={"channel_missing": 1}))
    await session.commit()

    response = await client.get("/api/internal/status", headers=service_auth())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["problems"] == [] and data["ok"] is True
    assert data["mode"] == "production"
    assert data["database"]["reachable"] and data["database"]["migrated"]
    assert data["database"]["migration"] == data["database"]["head"]
    assert data["stream"] | {"ms": None} == {
        "configured": True,
        "target": emulator_server.base_url.rstrip("/"),
        "base_url": emulator_server.base_url.rstrip("/"),
        "reachable": True,
        "credentials": "ok",
        "ms": None,
        "error": None,
    }
    assert emulator.count("GetApp") == 1
    assert data["outbox"] == {"pending": 0, "oldest_pending_age_s": None, "dead": 0}
    assert data["reconcile"]["drift"] == {"channel_missing": 1}
    assert 290 <= data["reconcile"]["age_s"] <= 900
    assert data["workers_recent"] == 1
    assert data["workers"][0]["worker_id"] == "w1" and data["workers"][0]["recent"] is True
    assert_no_secrets(response)


async def test_problems_name_what_to_do(client, session):
    now = utcnow()
    session.add_all(
        [
            OutboxMessage(kind="identity.sync", payload={}, status="dead"),
            OutboxMessage(kind="identity.sync", payload={}, status="pending", created_at=now - timedelta(hours=1)),
            WorkerHeartbeat(
                worker_id="gone",
                hostname="h",
                pid=7,
                started_at=now - timedelta(hours=3),
                last_seen_at=now - timedelta(hours=2),
            ),
        ]
    )
    await session.commit()

    data = (await client.get("/api/internal/status", headers=service_auth())).json()["data"]
    assert data["ok"] is False
    problems = " | ".join(data["problems"])
    assert "1 dead outbox message(s): see `onecrew-chat outbox list`" in problems
    assert "the oldest outbox message has waited 360" in problems  # 3600 s and a few
    assert "no worker seen recently" in problems
    assert data["outbox"]["pending"] == 1 and data["outbox"]["oldest_pending_age_s"] >= 3600
    assert data["workers"][0]["recent"] is False and data["workers_recent"] == 0


async def test_wrong_stream_secret_is_reported_as_rejected(sqlite_only_url, emulator, emulator_server):
    settings = make_settings(
        sqlite_only_url, emulator_server.base_url, stream_api_secret="wrong-stream-secret-0123456789abcdef"
    )
    async with client_for(settings) as http:
        response = await http.get("/api/internal/status", headers=service_auth())
    stream = response.json()["data"]["stream"]
    assert (stream["reachable"], stream["credentials"]) == (True, "rejected")
    assert stream["error"].startswith("401 ")
    assert any(
        p.startswith("Stream rejected STREAM_API_KEY/STREAM_API_SECRET (401")
        for p in response.json()["data"]["problems"]
    )
    assert "wrong-stream-secret" not in response.text


async def test_unreachable_stream_and_database_are_reported_not_raised(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path}", closed_port_url())  # a directory: no database either
    async with client_for(settings) as http:
        response = await http.get("/api/internal/status", headers=service_auth())
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["database"]["reachable"] is False and data["database"]["error"]
    assert data["stream"]["reachable"] is False and data["stream"]["credentials"] == "unknown"
    assert data["outbox"] is None and data["reconcile"] is None
    assert any(p.startswith("database not reachable: ") for p in data["problems"])
    assert any(p.startswith("Stream not reachable at http://127.0.0.1:") for p in data["problems"])
