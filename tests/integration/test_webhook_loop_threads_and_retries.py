"""The webhook loop over real HTTP with Stream as it really behaves (the emulator): thread replies and thread
reads, Stream's retries with one webhook id, replays under a new id, and gzipped deliveries."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from stream_chat import StreamChatAsync

from onecrew_chat.models import Conversation, WebhookEvent
from onecrew_chat.stream.client import StreamGateway
from tests.conftest import make_settings
from tests.integration.test_message_loop import AppServer
from tests.support import STREAM_KEY, STREAM_SECRET, auth, new_id, service_auth, wait_until

UNREAD = "/api/chat/conversations/unread-count?profile_type=user"


@pytest.fixture
def served(database_url, emulator, emulator_server):
    """The app on loopback HTTP, over both databases, with the emulator as Stream (no pause between its retries)."""
    emulator.webhooks.policy.backoff_s = 0.0
    with AppServer(make_settings(database_url, emulator_server.base_url)) as server:
        yield server


class Loop:
    """Two users with a ready conversation, our webhook registered with Stream, and Stream's own client."""

    def __init__(
        self, http: httpx.AsyncClient, chat: StreamChatAsync, emulator, channel_id: str, sender: str, reader: str
    ):
        self.http, self.chat, self.emulator = http, chat, emulator
        self.channel = chat.channel("messaging", channel_id)
        self.channel_id, self.sender, self.reader = channel_id, sender, reader

    async def unread(self, user_id: str) -> int:
        response = await self.http.get(UNREAD, headers=auth(user_id))
        assert response.status_code == 200, response.text
        return response.json()["data"]["unread_count"]

    async def preview(self) -> str | None:
        listed = await self.http.get("/api/chat/conversations?profile_type=user", headers=auth(self.reader))
        [conversation] = listed.json()["data"]["data"]
        return conversation["last_message_preview"]

    async def send(self, text: str, **fields) -> dict:
        return (await self.channel.send_message({"text": text, **fields}, f"onecrew_user_{self.sender}"))["message"]

    async def delivered(self, count: int, event_type: str, where=None) -> list:
        """Wait until Stream has finished every try of `count` such events (what our service answered is known)."""
        found = await self.emulator.webhooks.wait_for_async(count, event_type, timeout=30, where=where)
        await self.emulator.webhooks.wait_idle_async(timeout=30)
        return found


@pytest.fixture
async def loop(served, emulator_server, emulator):
    sender, reader = new_id(), new_id()
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        for user_id, name in ((sender, "Amr"), (reader, "Nour")):
            put = await http.put(f"/api/internal/users/{user_id}", json={"name": name}, headers=service_auth())
            assert put.status_code == 200, put.text
        created = await http.post(
            "/api/chat/conversations",
            json={"conversation_type": "user_user", "participant_ids": [reader]},
            headers=auth(sender),
        )
        assert created.status_code == 200, created.text
        gateway = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url)
        try:
            await gateway.update_app_settings(webhook_url=f"{served.base_url}/api/chat/webhooks/stream")
        finally:
            await gateway.close()
        async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=30.0) as chat:
            yield Loop(http, chat, emulator, created.json()["data"]["id"], sender, reader)


async def test_thread_replies_never_raise_unread_nor_change_the_preview(loop):
    parent = await loop.send("Are you free tomorrow?")
    await wait_until(lambda: _is(loop.unread(loop.reader), 1), timeout=30, what="the reader's unread count to rise")
    await loop.channel.mark_read(f"onecrew_user_{loop.reader}")
    await wait_until(lambda: _is(loop.unread(loop.reader), 0), timeout=30, what="the reader's unread count to fall")

    reply = await loop.send("(only in the thread)", parent_id=parent["id"])
    [delivery] = await loop.delivered(1, "message.new", where=lambda d: d.payload["message"]["id"] == reply["id"])
    assert delivery.status == 200 and delivery.payload["message"]["type"] == "reply"
    assert await loop.unread(loop.reader) == 0, "a thread-only reply raised the channel's unread count"
    assert await loop.preview() == "Are you free tomorrow?"

    shown = await loop.send("Yes, 10 am", parent_id=parent["id"], show_in_channel=True)
    await loop.delivered(1, "message.new", where=lambda d: d.payload["message"]["id"] == shown["id"])
    assert await loop.unread(loop.reader) == 1 and await loop.preview() == "Yes, 10 am"


async def test_a_thread_read_does_not_mark_the_channel_read(loop):
    parent = await loop.send("Question")
    await loop.channel.send_message({"text": "me too", "parent_id": parent["id"]}, f"onecrew_user_{loop.reader}")
    await wait_until(lambda: _is(loop.unread(loop.reader), 1), timeout=30, what="the reader's unread count to rise")
    await loop.send("Answer in the thread", parent_id=parent["id"])
    await loop.channel.mark_read(f"onecrew_user_{loop.reader}", thread_id=parent["id"])
    [read] = await loop.delivered(1, "message.read")
    assert read.status == 200 and read.payload["thread"]["parent_message_id"] == parent["id"]
    assert await loop.unread(loop.reader) == 1, "reading the thread marked the whole channel read"


async def test_stream_retries_with_one_id_and_replays_under_a_new_id_change_nothing(loop, session):
    loop.emulator.faults.fail_webhooks(1, status=503)  # our answer to the first try is lost: Stream tries again
    message = await loop.send("Hello")
    tries = await loop.delivered(2, "message.new")
    assert [(d.attempt, d.faulted) for d in tries] == [(1, True), (2, False)]
    assert tries[0].webhook_id == tries[1].webhook_id
    assert await loop.unread(loop.reader) == 1
    assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 1, "the retry was applied twice"

    await loop.channel.mark_read(f"onecrew_user_{loop.reader}")
    await wait_until(lambda: _is(loop.unread(loop.reader), 0), timeout=30, what="the reader's unread count to fall")
    [before] = (await session.scalars(select(Conversation).execution_options(populate_existing=True))).all()
    snapshot = (before.last_message_at, before.last_message_preview)

    # The same message.new again, under a new X-Webhook-Id, after the reader read it: nothing may change.
    loop.emulator.webhooks.redeliver(tries[0])
    replays = await loop.delivered(3, "message.new")
    assert replays[-1].webhook_id != tries[0].webhook_id and replays[-1].status == 200
    assert replays[-1].payload["message"]["id"] == message["id"]
    assert await loop.unread(loop.reader) == 0, "a replayed message made a read conversation unread again"
    [after] = (await session.scalars(select(Conversation).execution_options(populate_existing=True))).all()
    assert (after.last_message_at, after.last_message_preview) == snapshot


async def test_gzipped_deliveries_verify_and_apply(loop):
    await loop.chat.update_app_settings(enable_hook_payload_compression=True)
    await loop.send("Compressed hello")
    [delivery] = await loop.delivered(1, "message.new")
    assert delivery.headers["Content-Encoding"] == "gzip" and delivery.status == 200
    assert await loop.unread(loop.reader) == 1
    assert await loop.preview() == "Compressed hello"


async def _is(value, expected) -> bool:
    return await value == expected
