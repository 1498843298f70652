"""No database connection, transaction or row lock is held while a request waits on Stream.

Sixty new-pair creates wait on a slow Stream (8 s a call) with a pool of five connections and no overflow. Before
the claim design each create held a pooled connection (and the conversation's row lock) across its Stream calls, so
the pool was gone and every other request queued behind the creates for seconds. Now the creates hold nothing while
they wait: a webhook for one of those very conversations and an unread count are answered while all sixty are still
waiting on Stream.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation
from tests.api.test_webhooks import deliver, message_new
from tests.conftest import make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, wait_until

URL = "/api/chat/conversations"
CREATES = 60
STREAM_LATENCY_MS = 8000
# Far below what a queue behind the pool would take (at least one Stream call, 8 s), far above a healthy answer even
# on a loaded machine.
ANSWER_BOUND_S = 4.0


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    return make_settings(
        postgres_only_url,
        emulator_server.base_url,
        db_pool_size=5,
        db_max_overflow=0,
        provision_deadline_s=60.0,
        stream_timeout_s=30.0,
    )


async def test_webhook_and_unread_count_answer_while_sixty_creates_wait_on_stream(client, session, emulator):
    users = await add_users(session, CREATES)
    company = await add_company(session, "Busy Studio", owner=await add_user(session, "Owner"))
    emulator.faults.set_latency(STREAM_LATENCY_MS)
    body = {"conversation_type": "user_company", "participant_ids": [company]}
    creates = [asyncio.create_task(client.post(URL, json=body, headers=auth(user))) for user in users]
    try:
        # Every create has recorded its conversation: from here on they are all waiting on Stream.
        await wait_until(
            lambda: _count(session),
            timeout=30,
            what="all sixty conversations to be recorded",
        )
        channel_id = await session.scalar(select(Conversation.channel_id).where(Conversation.created_by_id == users[0]))
        await session.rollback()  # the test's own session gives its connection back too
        assert not any(task.done() for task in creates), "Stream is slow: no create can have finished yet"

        sender = Identity.user(users[0]).stream_id
        webhook = deliver(client, message_new(channel_id, sender, "hello", utcnow()))
        unread = client.get(
            "/api/chat/conversations/unread-count", params={"profile_type": "user"}, headers=auth(users[1])
        )
        answered = await asyncio.wait_for(asyncio.gather(webhook, unread), timeout=ANSWER_BOUND_S)

        assert [r.status_code for r in answered] == [200, 200], [r.text for r in answered]
        assert not all(task.done() for task in creates), "answered while the creates were still waiting on Stream"
    finally:
        emulator.faults.set_latency(0)
        responses = await asyncio.gather(*creates, return_exceptions=True)
    assert {getattr(r, "status_code", r) for r in responses} == {200}, {getattr(r, "text", repr(r)) for r in responses}


async def _count(session) -> bool:
    session.expire_all()
    recorded = await session.scalar(select(func.count()).select_from(Conversation))
    await session.rollback()
    return recorded == CREATES
