"""Two API instances on one PostgreSQL database: a webhook applied through one drops the other's cached count."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx

from onecrew_chat.api.app import create_app
from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.webhooks.body import sign
from tests.api.conversation_rows import add_conversation
from tests.api.test_webhooks import message_new
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import STREAM_SECRET, auth, new_id, wait_until

UNREAD = "/api/chat/conversations/unread-count?profile_type=user"
# Far longer than the test: a count that changes can only come from the cross-process invalidation.
TTL_S = 3600.0


async def test_a_webhook_through_one_instance_invalidates_the_other_instances_cached_count(
    postgres_only_url, emulator, emulator_server
):
    settings = make_settings(postgres_only_url, emulator_server.base_url, unread_cache_ttl_s=TTL_S)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://t")))
        receiver, reader = clients
        async with app.state.runtime.sessionmaker() as session:
            me, other = await add_users(session, 2)
            at = utcnow() - timedelta(minutes=5)
            conversation = await add_conversation(
                session,
                Identity.user(me),
                Identity.user(other),
                last_message_at=at,
                read_at={Identity.user(me): at, Identity.user(other): at},
            )

        async def count() -> dict:
            return (await reader.get(UNREAD, headers=auth(me))).json()["data"]

        assert (await count())["unread_count"] == 0
        assert await count() == {**(await count()), "unread_count": 0, "cached": True}

        event = message_new(conversation.channel_id, Identity.user(other).stream_id, "hi", utcnow())
        body = json.dumps(event).encode()
        delivered = await receiver.post(
            "/api/chat/webhooks/stream",
            content=body,
            headers={
                "X-Signature": sign(body, STREAM_SECRET),
                "X-Webhook-Id": new_id(),
                "Content-Type": "application/json",
            },
        )
        assert delivered.json()["data"]["status"] == "applied", delivered.text

        async def reader_sees_the_message() -> bool:
            return (await count())["unread_count"] == 1

        await wait_until(reader_sees_the_message, timeout=30, what="the other instance's count to drop its cache")
