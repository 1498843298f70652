"""Stream refusing our credentials pauses the worker: nothing is dead-lettered or marked failed, /readyz and
the metrics say so, and the queue resumes by itself once Stream accepts us again."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from onecrew_chat.api.app import create_app
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.outbox import worker
from onecrew_chat.outbox.status import worker_status
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth, wait_until

URL = "/api/chat/conversations"


@pytest.fixture
async def app_with_worker(database_url, emulator, emulator_server):
    """The app with its own worker running (a probe every 0.2 s while paused)."""
    settings = make_settings(database_url, emulator_server.base_url, run_worker=True, worker_pause_probe_s=0.2)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def _rows(runtime) -> tuple[list[Conversation], list[OutboxMessage]]:
    async with runtime.sessionmaker() as session:
        conversations = list((await session.scalars(select(Conversation))).all())
        rows = list((await session.scalars(select(OutboxMessage))).all())
    return conversations, rows


async def test_a_refused_secret_pauses_the_queue_and_a_fixed_one_resumes_it(app_with_worker, emulator):
    runtime = app_with_worker.state.runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_with_worker), base_url="http://t") as client:
        async with runtime.sessionmaker() as session:
            caller, *others = await add_users(session, 5)
        emulator.faults.set_error_rate("*", 1.0, status=401)  # e.g. a rotated secret: every call is refused
        with capture_logs() as logs:
            for other in others:
                response = await client.post(
                    URL, json={"conversation_type": "user_user", "participant_ids": [other]}, headers=auth(caller)
                )
                assert response.status_code == 502, response.text  # the request itself says Stream refused us
            worker.kick(runtime)
            await wait_until(lambda: worker_status(runtime).paused, timeout=30, what="the worker to pause")
            # While paused it probes (and is refused) several times; nothing is given up on.
            calls = emulator.count()
            await wait_until(lambda: emulator.count() >= calls + 3, timeout=30, what="the paused worker to probe again")
            conversations, rows = await _rows(runtime)
            ready = await client.get("/readyz")
            metrics_text = (await client.get("/metrics")).text

        assert [c.chat_status for c in conversations] == ["provisioning"] * len(others)
        assert {r.status for r in rows} == {"pending"} and all(r.attempts == 0 for r in rows), "no attempt counted"
        assert not [e for e in logs if e["event"] in ("outbox.dead", "conversation.provisioning_failed")]
        paused_alerts = [e for e in logs if e["event"] == "outbox.paused"]
        assert len(paused_alerts) == 1 and paused_alerts[0]["log_level"] == "critical" and paused_alerts[0]["alert"]
        assert ready.status_code == 503 and "worker paused" in ready.json()["error"]
        assert "onecrew_worker_paused 1.0" in metrics_text

        emulator.faults.reset()  # the secret is fixed
        with capture_logs() as logs:

            async def all_ready() -> bool:
                conversations, rows = await _rows(runtime)
                return all(c.chat_status == "ready" for c in conversations) and all(r.status == "done" for r in rows)

            await wait_until(all_ready, timeout=20, what="the resumed queue to provision every conversation")
        assert any(e["event"] == "outbox.resumed" for e in logs)
        assert not worker_status(runtime).paused
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "onecrew_worker_paused 0.0" in (await client.get("/metrics")).text
    conversations, _ = await _rows(runtime)
    for conversation in conversations:
        assert len(emulator.get_channel("messaging", conversation.channel_id)["members"]) == 2
