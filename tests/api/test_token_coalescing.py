"""A login wave: the identity upserts of concurrent first-time token requests reach Stream together."""

from __future__ import annotations

import asyncio

import pytest

from onecrew_chat.identity import Identity
from onecrew_chat.sync.coalescer import coalescer
from tests.api.test_core_guarantees import drain_outbox
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth

WAVE = 1000


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    # Timeouts far from a loaded machine's healthy calls: a batch is sent when it is full, not cut by a clock.
    return make_settings(postgres_only_url, emulator_server.base_url, provision_deadline_s=30.0, stream_timeout_s=10.0)


async def test_a_thousand_new_users_asking_for_tokens_at_once_cost_at_most_ten_upsert_calls(
    app, client, session, emulator
):
    users = await add_users(session, WAVE)
    # "At once" means within about a second; a loaded test machine can take far longer to read 1,000 mirror rows,
    # so the batch may wait for them longer here than the 1 s it waits in production.
    coalescer(app.state.runtime).max_wait_s = 30.0

    responses = await asyncio.gather(*(client.post("/api/chat/token", headers=auth(user)) for user in users))

    assert {r.status_code for r in responses} == {200}, {r.text for r in responses if r.status_code != 200}
    # 10 full batches; a budget of 2 more for a call retried or a batch cut short on a loaded machine (1,000 without
    # the coalescer).
    assert emulator.count("UpdateUsers") <= WAVE // 100 + 2, f"{emulator.count('UpdateUsers')} upsert calls"
    # By design a token does not wait for a batch that failed: its identity is queued, and the worker sends it.
    await drain_outbox(app.state.runtime)
    assert all(emulator.get_user(Identity.user(user).stream_id) is not None for user in users)
    # Each request still counts only what it needed: a second token for a fresh identity makes no call.
    again = await client.post("/api/chat/token", headers=auth(users[0]))
    assert again.status_code == 200 and again.headers["X-Stream-Calls"] == "0"


async def test_a_lone_first_token_is_sent_at_once(client, session, emulator):
    [user] = await add_users(session, 1)
    response = await client.post("/api/chat/token", headers=auth(user))
    assert response.status_code == 200
    assert emulator.count("UpdateUsers") == 1
    assert emulator.get_user(Identity.user(user).stream_id) is not None
