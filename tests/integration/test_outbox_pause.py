"""Stream refusing our credentials pauses the worker: nothing is dead-lettered or marked failed, /readyz and
the metrics say so, and the queue resumes by itself once Stream accepts us again."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from onecrew_chat.api.app import create_app
from onecrew_chat.composition import revive_dead_letters
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.outbox import repository
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth, service_auth, wait_until

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
            repository.kick(runtime)
            await wait_until(lambda: runtime.worker_status.paused, timeout=30, what="the worker to pause")
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
        assert not runtime.worker_status.paused
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "onecrew_worker_paused 0.0" in (await client.get("/metrics")).text
    conversations, _ = await _rows(runtime)
    for conversation in conversations:
        assert len(emulator.get_channel("messaging", conversation.channel_id)["members"]) == 2


async def test_a_server_message_sent_while_our_secret_is_refused_waits_and_is_sent_once_it_is_fixed(
    app_with_worker, emulator
):
    runtime = app_with_worker.state.runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_with_worker), base_url="http://t") as client:
        async with runtime.sessionmaker() as session:
            sender, other = await add_users(session, 2)
        created = await client.post(
            URL, json={"conversation_type": "user_user", "participant_ids": [other]}, headers=auth(sender)
        )
        assert created.status_code == 200, created.text
        channel_id = created.json()["data"]["id"]

        async def provisioned() -> bool:  # inline, or by the worker on a machine too loaded for the deadline
            conversations, _ = await _rows(runtime)
            return [c.chat_status for c in conversations] == ["ready"]

        await wait_until(provisioned, timeout=20, what="the conversation to be provisioned")
        body = {"id": f"welcome-{other}", "sender": {"type": "user", "id": sender}, "text": "Welcome"}
        emulator.faults.set_error_rate("*", 1.0, status=401)  # the secret was rotated under us
        with capture_logs() as logs:
            response = await client.post(
                f"/api/internal/conversations/{channel_id}/messages", json=body, headers=service_auth()
            )
            assert response.status_code == 200, response.text
            assert response.json()["data"]["status"] == "queued"
            await wait_until(lambda: runtime.worker_status.paused, timeout=10, what="the worker to pause")
            _, rows = await _rows(runtime)
        message_rows = [r for r in rows if r.kind == "message.send"]
        assert [(r.status, r.attempts) for r in message_rows] == [("pending", 0)], "kept, no attempt counted"
        assert not [e for e in logs if e["event"] == "outbox.dead"]
        assert emulator.get_channel("messaging", channel_id)["messages"] == []

        # What the inline send left before a 401 kept the row: a dead letter (it heals too once the secret works).
        earlier = dict(message_rows[0].payload) | {"message_id": f"earlier-{other}", "text": "Earlier"}
        async with runtime.sessionmaker() as session, session.begin():
            session.add(
                OutboxMessage(
                    kind="message.send",
                    payload=earlier,
                    dedupe_key=f"message.send:earlier-{other}",
                    status="dead",
                    attempts=1,
                    last_error="StreamRequestError: SendMessage HTTP 401 code 43: JWTAuth error: signature is not valid",
                )
            )
        assert await revive_dead_letters(runtime) == 0, "nothing revived while the secret is still refused"

        emulator.faults.reset()  # the secret is fixed
        assert await revive_dead_letters(runtime) == 1

        async def sent() -> bool:
            _, rows = await _rows(runtime)
            return [r.status for r in rows if r.kind == "message.send"] == ["done", "done"]

        await wait_until(sent, timeout=20, what="the resumed worker to send both messages")
        messages = emulator.get_channel("messaging", channel_id)["messages"]
        assert sorted((m["id"], m["text"]) for m in messages) == sorted(
            [(body["id"], "Welcome"), (earlier["message_id"], "Earlier")]
        )
