"""A gateway in front of Stream answering 502 in its own words (`{"message": ...}`) is a passing failure: creates
answer as for Stream down (408, provisioning), the worker retries instead of dead-lettering, and once Stream is
back every conversation is ready with one channel. Dead letters a passing failure left behind heal by themselves."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

from onecrew_chat.api.app import create_app
from onecrew_chat.composition import build_jobs, revive_dead_letters
from onecrew_chat.identity import ChatStatus
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.outbox import repository, worker
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth, wait_until

URL = "/api/chat/conversations"
GATEWAY_502 = {"message": "Bad Gateway: no healthy upstream"}
# What the worker recorded for a 502 `{"message": ...}` before failures were classified by their status.
LEGACY_RECORD = "StreamRequestError: GetOrCreateChannel: unexpected answer from Stream: KeyError('code')"


def _settings(database_url, emulator_server, *, run_worker: bool):
    return make_settings(
        database_url,
        emulator_server.base_url,
        run_worker=run_worker,
        provision_deadline_s=0.3,
        stream_timeout_s=0.4,
        worker_poll_s=0.05,
        # The periodic jobs are driven by the test (revive) or not wanted (reconcile would also heal channels).
        reconcile_interval_s=0,
    )


@pytest.fixture
async def running(database_url, emulator, emulator_server):
    """The app with its own worker running."""
    application = create_app(_settings(database_url, emulator_server, run_worker=True))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def still(database_url, emulator, emulator_server):
    """The app without a worker: the test decides when rows run."""
    application = create_app(_settings(database_url, emulator_server, run_worker=False))
    async with application.router.lifespan_context(application):
        yield application


def _roomy_deadline(runtime) -> None:
    """Stream is back: the worker's runs get a deadline a loaded machine cannot miss (0.3 s made the outage fast)."""
    runtime.settings = runtime.settings.model_copy(update={"provision_deadline_s": 15.0})


async def _rows(runtime) -> tuple[list[Conversation], list[OutboxMessage]]:
    async with runtime.sessionmaker() as session:
        conversations = list((await session.scalars(select(Conversation))).all())
        rows = list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())
    return conversations, rows


async def _create_all(app, emulator, count: int) -> tuple[list[str], list[httpx.Response]]:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        caller, *others = await add_users(session, count + 1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        responses = [
            await client.post(
                URL, json={"conversation_type": "user_user", "participant_ids": [other]}, headers=auth(caller)
            )
            for other in others
        ]
    return others, responses


def _assert_one_channel_each(emulator, conversations: list[Conversation]) -> None:
    """Every conversation ready, its channel in Stream once, with both members: 0 lost, 0 duplicated."""
    assert [c.chat_status for c in conversations] == ["ready"] * len(conversations)
    assert emulator.channel_count() == len(conversations)
    for conversation in conversations:
        channel = emulator.get_channel(conversation.channel_type, conversation.channel_id)
        assert len(channel["members"]) == 2


async def test_a_gateway_502_in_its_own_words_is_passing_and_heals_when_stream_is_back(running, emulator):
    runtime = running.state.runtime
    emulator.faults.set_error_rate("*", 1.0, status=502, body=GATEWAY_502)
    with capture_logs() as logs:
        others, responses = await _create_all(running, emulator, 4)
        # As for Stream down: the documented timeout the app retries, not a final 502 stream_error.
        for response in responses:
            assert response.status_code == 408, response.text
            assert response.json()["code"] == "provisioning_timeout" and response.headers["retry-after"]

        async def retried_twice() -> bool:
            _, rows = await _rows(runtime)
            return all(r.status == "pending" and r.attempts >= 2 for r in rows)

        await wait_until(retried_twice, timeout=30, what="the worker to retry every row at least twice")
        conversations, rows = await _rows(runtime)
    assert {c.chat_status for c in conversations} == {"provisioning"}
    assert not [e for e in logs if e["event"] in ("outbox.dead", "conversation.provisioning_failed")]
    assert any(r.status == 502 for r in emulator.requests), "the gateway's 502 must have been met"

    emulator.faults.reset()  # Stream (and the gateway) are back
    _roomy_deadline(runtime)
    repository.kick(runtime)

    async def drained() -> bool:
        conversations, rows = await _rows(runtime)
        return all(c.chat_status == "ready" for c in conversations) and all(r.status == "done" for r in rows)

    await wait_until(drained, timeout=30, what="the worker to provision every conversation")
    conversations, _ = await _rows(runtime)
    assert len(conversations) == len(others)
    _assert_one_channel_each(emulator, conversations)


async def test_dead_letters_of_a_passing_failure_are_revived_once_stream_answers(still, emulator):
    runtime = still.state.runtime
    emulator.faults.set_error_rate("*", 1.0, status=502, body=GATEWAY_502)
    others, responses = await _create_all(still, emulator, 3)
    assert [r.status_code for r in responses] == [408] * 3
    # What the worker did before 502s were classified by their status: dead letters, conversations failed.
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(OutboxMessage).values(status="dead", attempts=1, last_error=LEGACY_RECORD))
        await session.execute(update(Conversation).values(chat_status=ChatStatus.FAILED))
        # A refusal no retry fixes stays dead for an operator.
        session.add(
            OutboxMessage(
                kind="conversation.provision",
                payload={"conversation_id": "not-a-conversation"},
                dedupe_key="conversation.provision:not-a-conversation",
                status="dead",
                attempts=1,
                last_error="StreamRequestError: GetOrCreateChannel HTTP 400 code 4: created_by_id is required",
            )
        )

    # While Stream is still down nothing churns: the rows wait for Stream to answer.
    assert await revive_dead_letters(runtime) == 0
    _, rows = await _rows(runtime)
    assert [r.status for r in rows] == ["dead"] * 4

    emulator.faults.reset()
    with capture_logs() as logs:
        assert await revive_dead_letters(runtime) == 3
    assert any(e["event"] == "outbox.revived" for e in logs)
    conversations, rows = await _rows(runtime)
    assert {c.chat_status for c in conversations} == {"provisioning"}, "failed conversations are provisioning again"
    _roomy_deadline(runtime)
    while await worker.run_once(runtime, build_jobs(runtime.settings)):
        pass
    conversations, rows = await _rows(runtime)
    assert [r.status for r in rows] == ["done", "done", "done", "dead"]
    assert len(conversations) == len(others)
    _assert_one_channel_each(emulator, conversations)
    assert await revive_dead_letters(runtime) == 0, "a refusal is never revived"
