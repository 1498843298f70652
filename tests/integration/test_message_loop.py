"""The whole loop over real HTTP: a message sent through Stream (the emulator) reaches our webhook, raises the
other side's unread count, and marking it read brings the count back down."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest
import uvicorn
from stream_chat import StreamChatAsync

from onecrew_chat.api.app import create_app
from onecrew_chat.stream.client import StreamGateway
from tests.conftest import make_settings
from tests.support import STREAM_KEY, STREAM_SECRET, auth, new_id, service_auth, wait_until

START_TIMEOUT_S = 10.0


class AppServer:
    """onecrew-chat served by uvicorn on a free loopback port, on a thread of its own (Stream must reach it)."""

    def __init__(self, settings):
        self.app = create_app(settings)
        self.ready = threading.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.socket = sock
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on", loop="asyncio")
        ready = self.ready

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                ready.set()

            def install_signal_handlers(self):
                pass  # the test process owns the signals

        self.server = Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        if not self.ready.wait(START_TIMEOUT_S):
            raise RuntimeError("onecrew-chat did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT_S)
        self.socket.close()


@pytest.fixture
def served(database_url, emulator, emulator_server):
    """The app on loopback HTTP, over both databases, with the emulator as Stream."""
    with AppServer(make_settings(database_url, emulator_server.base_url)) as server:
        yield server


async def test_message_raises_unread_and_mark_read_lowers_it(served, emulator_server, emulator):
    sender, reader = new_id(), new_id()
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
        for user_id, name in ((sender, "Amr"), (reader, "Nour")):
            put = await http.put(f"/api/internal/users/{user_id}", json={"name": name}, headers=service_auth())
            assert put.status_code == 200, put.text

        # Point Stream's webhook at the served app, as `serve` does with its embedded emulator.
        gateway = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url)
        try:
            await gateway.update_app_settings(webhook_url=f"{served.base_url}/api/chat/webhooks/stream")
        finally:
            await gateway.close()

        token = await http.post("/api/chat/token?profile_type=user", headers=auth(sender))
        assert token.status_code == 200
        created = await http.post(
            "/api/chat/conversations",
            json={"conversation_type": "user_user", "participant_ids": [reader]},
            headers=auth(sender),
        )
        assert created.status_code == 200, created.text
        channel_id = created.json()["data"]["id"]
        assert created.json()["data"]["chat"]["status"] == "ready"

        async def unread(user_id: str) -> int:
            response = await http.get("/api/chat/conversations/unread-count?profile_type=user", headers=auth(user_id))
            assert response.status_code == 200
            return response.json()["data"]["unread_count"]

        assert await unread(reader) == 0  # cached now: only the webhook can make the next answer change

        async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=30.0) as chat:
            channel = chat.channel("messaging", channel_id)
            await channel.send_message({"text": "Hello from the loop"}, f"onecrew_user_{sender}")
            await wait_until(lambda: unread_is(unread, reader, 1), timeout=30, what="the reader's unread count to rise")
            assert await unread(sender) == 0, "the sender has read their own message"

            listed = await http.get("/api/chat/conversations?profile_type=user", headers=auth(reader))
            [conversation] = listed.json()["data"]["data"]
            assert conversation["last_message_preview"] == "Hello from the loop"
            assert conversation["last_message_at"] is not None

            await channel.mark_read(f"onecrew_user_{reader}")
            await wait_until(lambda: unread_is(unread, reader, 0), timeout=30, what="the reader's unread count to fall")

    # message.read and notification.mark_read are delivered concurrently: the count may fall on either one.
    await emulator.webhooks.wait_for_async(1, "message.read", timeout=30)
    statuses = {(d.event_type, d.status) for d in emulator.webhook_deliveries}
    assert ("message.new", 200) in statuses and ("message.read", 200) in statuses


async def unread_is(unread, user_id: str, expected: int) -> bool:
    """True when the user's unread count is `expected`."""
    return await unread(user_id) == expected
