"""Creating conversations while Stream misbehaves: slow visibility, 5xx, 429, lost answers, and Stream down."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from onecrew_chat.composition import build_jobs
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.outbox import worker
from onecrew_chat.sync.mirror_record import sync_identities
from tests.conftest import make_settings
from tests.factories import add_company, add_user
from tests.support import auth

URL = "/api/chat/conversations"


@pytest.fixture
def settings(database_url, emulator, emulator_server, request):
    """Both databases; a test may ask for another provisioning deadline with @pytest.mark.parametrize("deadline").

    The default deadline (10 s) leaves a loaded machine room to finish after a faulty call; the HTTP timeout (2 s,
    production's) ends a held call long before it, and a healthy call never comes near it.
    """
    deadline = getattr(getattr(request.node, "callspec", None), "params", {}).get("deadline", 10.0)
    return make_settings(database_url, emulator_server.base_url, provision_deadline_s=deadline, stream_timeout_s=2.0)


@pytest.fixture
async def pair(session):
    """A user unknown to Stream and a company with an owner: the original bug report's (docs/reference/origin.md)."""
    user = await add_user(session, "Amr")
    owner = await add_user(session, "Owner")
    company = await add_company(session, "Lolo Academy", owner=owner)
    return user, company


async def create(client, user: str, company: str):
    """The user starts a conversation with the company."""
    return await client.post(
        URL, json={"conversation_type": "user_company", "participant_ids": [company]}, headers=auth(user)
    )


async def assert_one_right_channel(session, emulator, channel_id: str, user: str, company: str) -> None:
    """Exactly one conversation and one channel, holding both members."""
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert emulator.channel_count() == 1
    channel = emulator.get_channel("messaging", channel_id)
    assert sorted(channel["members"]) == sorted([Identity.user(user).stream_id, Identity.company(company).stream_id])


async def test_users_that_become_visible_late_are_repaired_and_retried(client, session, emulator, pair):
    user, company = pair
    emulator.faults.set_visibility_delay(150)
    response = await create(client, user, company)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["chat"]["status"] == "ready"  # within the deadline, else it would say "provisioning"
    assert emulator.count("GetOrCreateChannel") >= 2, "the first create must have met the visibility delay"
    await assert_one_right_channel(session, emulator, data["id"], user, company)


async def test_server_errors_are_retried_with_backoff(client, session, emulator, pair):
    user, company = pair
    emulator.faults._random.seed(3)  # deterministic draws of the 50% error rate
    emulator.faults.set_error_rate("GetOrCreateChannel", 0.5, status=503)
    emulator.faults.set_error_rate("UpdateUsers", 0.5, status=500)
    response = await create(client, user, company)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    assert any(r.status >= 500 for r in emulator.requests), "the fault must have been hit"
    await assert_one_right_channel(session, emulator, response.json()["data"]["id"], user, company)


async def test_rate_limits_wait_for_the_reset_inside_the_deadline(client, session, emulator, pair):
    user, company = pair
    emulator.faults.rate_limit_burst("GetOrCreateChannel", count=2, reset_in_s=0.3)
    response = await create(client, user, company)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    assert sum(1 for r in emulator.requests if r.status == 429) == 2
    await assert_one_right_channel(session, emulator, response.json()["data"]["id"], user, company)


@pytest.mark.parametrize("operation", ["UpdateUsers", "GetOrCreateChannel"])
async def test_a_lost_answer_after_the_write_is_retried_without_duplicates(client, session, emulator, pair, operation):
    user, company = pair
    emulator.faults.timeout_after_write(operation, count=1, hold_s=120)
    response = await create(client, user, company)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    # The held call and its retry (a budget of one more for a healthy call slower than the timeout under load).
    assert 2 <= emulator.count(operation) <= 3, emulator.count(operation)
    await assert_one_right_channel(session, emulator, response.json()["data"]["id"], user, company)


@pytest.mark.parametrize("deadline", [0.4])
async def test_with_stream_down_the_answer_is_a_timeout_the_app_retries_and_the_worker_finishes_it(
    client, app, session, emulator, pair, deadline
):
    user, company = pair
    emulator.faults.set_error_rate("*", 1.0, status=503)
    started = time.monotonic()
    response = await create(client, user, company)
    # The app never reads chat.status: a 200 would send it to a channel that is not there. It retries a create
    # on "timeout" in the error (docs/reference/app-contract.md#the-apps-retries-of-a-create), and its ApiClient
    # calls a timed-out call a 408.
    assert response.status_code == 408, response.text
    # Without a deadline the retries would go on for as long as Stream is down; the bound is loose for a busy CI.
    assert time.monotonic() - started < 30.0
    body = response.json()
    assert body["success"] is False and body["code"] == "provisioning_timeout"
    assert "timeout" in body["error"] and response.headers["retry-after"] == "1"
    conversation = await session.scalar(select(Conversation))
    assert conversation.chat_status == "provisioning" and conversation.channel_id in body["error"]
    assert emulator.channel_count() == 0
    message = await session.scalar(select(OutboxMessage))
    assert message.kind == "conversation.provision" and message.status == "pending"

    again = await create(client, user, company)  # the app's retry: same conversation, no second row
    assert again.status_code == 408 and again.json()["code"] == "provisioning_timeout"
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1

    emulator.faults.reset()
    assert await worker.run_once(app.state.runtime, build_jobs(app.state.runtime.settings)) == 1
    session.expire_all()
    conversation = await session.scalar(select(Conversation))
    assert conversation.chat_status == "ready" and conversation.stream_verified_at is not None
    assert (await session.scalar(select(OutboxMessage))).status == "done"
    ready = await create(client, user, company)  # the app's next retry opens the same, now working, channel
    assert ready.status_code == 200 and ready.json()["data"]["id"] == conversation.channel_id
    assert ready.json()["data"]["chat"]["status"] == "ready"
    await assert_one_right_channel(session, emulator, conversation.channel_id, user, company)


@pytest.mark.parametrize("deadline", [0.4])
async def test_an_unkeyed_group_past_the_deadline_is_answered_200_provisioning_not_a_408_that_makes_another(
    client, session, emulator, pair, deadline
):
    user, company = pair
    other = await add_user(session, "Third")
    emulator.faults.set_error_rate("*", 1.0, status=503)
    body = {"conversation_type": "group", "participant_ids": [company, other], "name": "Night shoot"}

    unkeyed = await client.post(URL, json=body, headers=auth(user))
    # Sent again, the same group body makes a second group: a 408 would invite exactly that.
    assert unkeyed.status_code == 200, unkeyed.text
    assert unkeyed.json()["data"]["chat"]["status"] == "provisioning"
    # With a key, the retry finds the same group: the timeout the app retries is safe there.
    keyed = await client.post(URL, json=body, headers={**auth(user), "Idempotency-Key": "group-night-shoot-1"})
    assert keyed.status_code == 408 and keyed.json()["code"] == "provisioning_timeout", keyed.text
    again = await client.post(URL, json=body, headers={**auth(user), "Idempotency-Key": "group-night-shoot-1"})
    assert again.status_code == 408
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 2


@pytest.mark.parametrize("deadline", [3.0])
async def test_the_apps_retry_finishes_the_channel_itself_once_stream_is_back(
    client, session, emulator, pair, deadline
):
    user, company = pair
    emulator.faults.set_error_rate("*", 1.0, status=503)
    first = await create(client, user, company)
    assert first.status_code == 408, first.text
    emulator.faults.reset()
    retry = await create(client, user, company)  # no worker run: the retry provisions inline, idempotently
    assert retry.status_code == 200, retry.text
    data = retry.json()["data"]
    assert data["chat"]["status"] == "ready" and data["id"] in first.json()["error"]
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
    await assert_one_right_channel(session, emulator, data["id"], user, company)


@pytest.mark.parametrize("deadline", [3.0])
async def test_a_timeout_is_not_replayed_for_the_same_idempotency_key(client, session, emulator, pair, deadline):
    user, company = pair
    headers = {**auth(user), "Idempotency-Key": "create-once-please"}
    body = {"conversation_type": "user_company", "participant_ids": [company]}
    emulator.faults.set_error_rate("*", 1.0, status=503)
    first = await client.post(URL, json=body, headers=headers)
    assert first.status_code == 408, first.text
    emulator.faults.reset()
    retry = await client.post(URL, json=body, headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["data"]["chat"]["status"] == "ready"
    replay = await client.post(URL, json=body, headers=headers)  # now the ready answer is the one kept
    assert replay.status_code == 200 and replay.json() == retry.json()


async def test_a_request_stream_refuses_is_a_502_with_a_stable_code(client, session, emulator, pair):
    user, company = pair
    emulator.faults.set_error_rate("UpdateUsers", 1.0, status=400)
    response = await create(client, user, company)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == "stream_error"
    assert "UpdateUsers" in body["error"]
    assert "secret" not in body["error"].lower()
    # the conversation is recorded with its outbox row, so nothing is half-created without a way to finish it
    assert (await session.scalar(select(OutboxMessage))).status == "pending"


class TestEveryStreamCallSharesTheDeadline:
    """The deadline bounds the whole request: repairs, and waits for the conversation row, included."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        """A deadline (3 s, room for a loaded machine's healthy calls) and a far longer HTTP timeout (60 s), so that
        only the deadline can explain an answer well before it."""
        return make_settings(sqlite_only_url, emulator_server.base_url, provision_deadline_s=3.0, stream_timeout_s=60.0)

    async def test_a_repair_upsert_that_hangs_is_cut_off_at_the_deadline(self, client, app, session, emulator):
        a, b = await add_user(session, "A"), await add_user(session, "B")
        await sync_identities(
            app.state.runtime.sessionmaker, app.state.runtime.stream, [Identity.user(a), Identity.user(b)]
        )
        await session.commit()
        with emulator.lock:
            del emulator.state.users[Identity.user(b).stream_id]  # Stream lost it; the mirror still says fresh
        emulator.faults.timeout_after_write("UpdateUsers", count=1, hold_s=120)
        started = time.monotonic()
        response = await client.post(
            URL, json={"conversation_type": "user_user", "participant_ids": [b]}, headers=auth(a)
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 408, response.text
        assert response.json()["code"] == "provisioning_timeout"
        assert emulator.count("GetOrCreateChannel") == 1, "the channel call met the lost user"
        # The HTTP timeout (60 s) and the hold (120 s) are far away: a quicker answer means the deadline cut it off.
        assert elapsed < 30.0, f"the repair upsert ran past the deadline: {elapsed:.2f}s"
