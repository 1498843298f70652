"""The old backend still running during a cut-over: the official SDK (`stream-chat`) against the emulator.

It does what the old backend and the app's old clients do through it: upserts identities (companies as `admin`,
as it always did), starts pairs under its own id schemes with the generic name "Conversation <uuid>", posts, marks
read, reacts, and grows a group past Stream's 100 listed members. A 429 waits for the rate-limit window to pass
(the old backend is subject to the same server-side limits as the service: they share the app).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread
from typing import Any, TypeVar

from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from tests.support import SHUTDOWN_POLL_S

T = TypeVar("T")
RATE_LIMIT_WAIT_S = 61.0  # the longest a 429 can ask to wait (Stream's windows are a minute)


def old_pair_id(conversation_type: str, first: str, second: str) -> str:
    """The old backend's era-2 id: `<type>-<32 hex>` of the ids in the order it was called with (not ours)."""
    return f"{conversation_type}-{hashlib.md5(f'{first}|{second}'.encode()).hexdigest()}"


class OldBackend:
    """The old backend's Stream calls, made with the official SDK."""

    def __init__(self, chat: StreamChatAsync):
        self.chat = chat
        self.calls = 0
        self.waited_s = 0.0

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """One SDK call; a 429 waits for Stream's window to pass (bounded), then tries again."""
        deadline = time.monotonic() + RATE_LIMIT_WAIT_S
        while True:
            self.calls += 1
            try:
                return await make()
            except StreamAPIException as exc:
                if exc.status_code != 429 or time.monotonic() > deadline:
                    raise
                # The SDK's exception carries no reset: the per-second window ends at the next second, the
                # per-minute one at a minute's; try again at the next second until the deadline.
                wait = 1.0 - time.time() % 1.0 + 0.01
                self.waited_s += wait
                await asyncio.sleep(wait)  # waiting out Stream's announced rate-limit window

    async def upsert(self, users: list[dict[str, Any]]) -> None:
        """Users as the old backend sent them (its token call upserts companies with role admin)."""
        for start in range(0, len(users), 100):
            batch = users[start : start + 100]
            await self._call(lambda batch=batch: self.chat.upsert_users(batch))

    async def start_pair(self, channel_id: str, first: str, second: str) -> str:
        """A pair channel the old backend makes: its own id, the generic name."""
        data = {"members": [first, second], "name": f"Conversation {uuid.uuid4()}"}
        channel = self.chat.channel("messaging", channel_id, data)
        await self._call(lambda: channel.create(first))
        return channel_id

    async def start_group(self, channel_id: str, name: str, members: list[str]) -> None:
        """A group, created with its first 100 members, the rest added 100 per call."""
        channel = self.chat.channel("messaging", channel_id, {"members": members[:100], "name": name})
        await self._call(lambda: channel.create(members[0]))
        await self.add_members(channel_id, members[100:])

    async def add_members(self, channel_id: str, members: list[str]) -> None:
        """Members added to a channel, 100 per call."""
        channel = self.chat.channel("messaging", channel_id)
        for start in range(0, len(members), 100):
            batch = members[start : start + 100]
            await self._call(lambda batch=batch: channel.add_members(batch))

    async def post(self, channel_id: str, sender: str, text: str) -> str:
        """A message; returns its id."""
        channel = self.chat.channel("messaging", channel_id)
        response = await self._call(lambda: channel.send_message({"text": text}, sender))
        return str(response["message"]["id"])

    async def read(self, channel_id: str, reader: str) -> None:
        """The reader marks the channel read."""
        channel = self.chat.channel("messaging", channel_id)
        await self._call(lambda: channel.mark_read(reader))

    async def react(self, channel_id: str, message_id: str, user: str) -> None:
        """A reaction (Stream sends `reaction.new` to the webhook targets that take it)."""
        channel = self.chat.channel("messaging", channel_id)
        await self._call(lambda: channel.send_reaction(message_id, {"type": "like"}, user))


class WebhookRecorder:
    """The old backend's webhook endpoint on loopback: records the event types it receives, answers 200."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                import json

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event_type = json.loads(body).get("type", "")
                except ValueError:
                    event_type = ""
                with recorder._lock:
                    recorder.events.append(event_type)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stream"
        self.thread = Thread(target=self.server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S}, daemon=True)

    def received(self, event_type: str) -> int:
        """How many events of this type arrived."""
        with self._lock:
            return self.events.count(event_type)

    def __enter__(self) -> WebhookRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
