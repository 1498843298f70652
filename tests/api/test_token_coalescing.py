"""A login wave: the identity upserts of concurrent first-time token requests reach Stream together."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from onecrew_chat.identity import Identity
from onecrew_chat.sync.coalescer import coalescer
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth, identities_sent, in_stream

WAVE = 1000


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    # Timeouts far from a loaded machine's healthy calls: a batch is sent when it is full, not cut by a clock.
    return make_settings(postgres_only_url, emulator_server.base_url, provision_deadline_s=30.0, stream_timeout_s=10.0)


async def test_a_thousand_new_users_asking_for_tokens_at_once_cost_at_most_twelve_upsert_calls(
    app, client, session, emulator
):
    users = await add_users(session, WAVE)
    # "At once" means within about a second; a loaded test machine can pause far longer between two of 1,000
    # requests, so the batches may fill for longer here than in production.
    batches = coalescer(app.state.runtime)
    batches.queue_quiet_s = batches.queue_max_s = 30.0

    responses = await asyncio.gather(*(client.post("/api/chat/token", headers=auth(user)) for user in users))

    assert {r.status_code for r in responses} == {200}, {r.text for r in responses if r.status_code != 200}
    # No token waited for Stream: each is signed locally and the app's connectUser creates the user itself.
    assert {r.headers["X-Stream-Calls"] for r in responses} == {"0"}
    await identities_sent(app)
    assert all(emulator.get_user(Identity.user(user).stream_id) is not None for user in users)
    # 10 full batches; a budget of 2 more for a call retried or a batch cut short on a loaded machine (1,000 without
    # the coalescer).
    assert emulator.count("UpdateUsers") <= WAVE // 100 + 2, f"{emulator.count('UpdateUsers')} upsert calls"
    # Each request still counts only what it needed: a second token for a fresh identity makes no call.
    calls = emulator.count()
    again = await client.post("/api/chat/token", headers=auth(users[0]))
    assert again.status_code == 200 and emulator.count() == calls


async def test_a_lone_first_token_answers_at_once_and_its_identity_follows_in_one_call(app, client, session, emulator):
    [user] = await add_users(session, 1)
    response = await client.post("/api/chat/token", headers=auth(user))
    assert response.status_code == 200
    await in_stream(emulator, Identity.user(user).stream_id)
    await identities_sent(app)
    assert emulator.count("UpdateUsers") == 1


async def test_a_create_right_after_a_token_shares_its_queued_upsert(app, client, session, emulator):
    me, other = await add_users(session, 2)
    batches = coalescer(app.state.runtime)
    batches.queue_quiet_s = batches.queue_max_s = 30.0  # the batch is still open however slowly the create arrives
    assert (await client.post("/api/chat/token", headers=auth(me))).status_code == 200
    body = {"conversation_type": "user_user", "participant_ids": [other]}
    created = await client.post("/api/chat/conversations", json=body, headers=auth(me))
    assert created.status_code == 200 and created.json()["data"]["chat"]["status"] == "ready", created.text
    # The create waited for the batch the token had opened (and added the other person to it): one call for both.
    assert emulator.count("UpdateUsers") == 1
    channel = emulator.get_channel("messaging", created.json()["data"]["id"])
    assert len(channel["members"]) == 2


async def test_identities_still_queued_when_the_process_stops_go_to_the_outbox(settings, session, emulator):
    from sqlalchemy import select

    from onecrew_chat.api.app import create_app
    from onecrew_chat.models import OutboxMessage

    [user] = await add_users(session, 1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        batches = coalescer(app.state.runtime)
        batches.queue_quiet_s = batches.queue_max_s = 60.0  # the batch is still open when the process stops
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            assert (await http.post("/api/chat/token", headers=auth(user))).status_code == 200
        assert not batches.idle
    # Stopped: nothing was sent, and the identity waits in the outbox for the worker.
    assert emulator.count("UpdateUsers") == 0
    rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "identity.sync"))).all()
    assert [row.payload for row in rows] == [{"stream_id": Identity.user(user).stream_id}]
