"""The OneCrew app's own Stream SDK (npm stream-chat at the app's version, driven from Node) against our
service and the emulator over real HTTP: tokens from /api/chat/token, the conversation our create made,
messages and events over the /connect WebSocket, paging back, and our unread count following through the
webhook. The original bug report's failure (docs/reference/origin.md) from the app's side: a channel missing a
member cannot be opened by that member's client; the one our service made can."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from stream_chat import StreamChatAsync

from onecrew_chat.stream.client import StreamGateway
from tests.emulator.conftest import NODE_DIR, node_sdk  # noqa: F401 - the fixture, shared with tests/emulator
from tests.integration.test_message_loop import served, unread_is  # noqa: F401 - the served app fixture
from tests.support import STREAM_KEY, STREAM_SECRET, auth, new_id, service_auth, wait_until

pytestmark = pytest.mark.node


def run_app(node: str, base_url: str, config: dict) -> dict:
    result = subprocess.run(
        [node, "app_flow.js", base_url, STREAM_KEY, json.dumps(config)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


async def test_the_app_sdk_on_a_conversation_our_service_created(node_sdk, served, emulator_server, emulator):  # noqa: F811
    sender, reader, outsider = new_id(), new_id(), new_id()
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        for user_id in (sender, reader, outsider):
            put = await http.put(f"/api/internal/users/{user_id}", json={"name": "Crew"}, headers=service_auth())
            assert put.status_code == 200, put.text
        gateway = StreamGateway(STREAM_KEY, STREAM_SECRET, emulator_server.base_url)
        try:
            await gateway.update_app_settings(webhook_url=f"{served.base_url}/api/chat/webhooks/stream")
        finally:
            await gateway.close()

        tokens, users = {}, {}
        for role, user_id in (("sender", sender), ("reader", reader), ("outsider", outsider)):
            issued = await http.post("/api/chat/token?profile_type=user", headers=auth(user_id))
            assert issued.status_code == 200, issued.text
            tokens[role], users[role] = issued.json()["data"]["token"], issued.json()["data"]["user_id"]
        created = await http.post(
            "/api/chat/conversations",
            json={"conversation_type": "user_user", "participant_ids": [reader]},
            headers=auth(sender),
        )
        assert created.status_code == 200, created.text
        channel_id = created.json()["data"]["id"]

        # The original bug report's failure: the same pair's channel as a backend that left the reader out made it.
        async with StreamChatAsync(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url, timeout=5.0) as chat:
            broken = chat.channel("messaging", "left-out", {"members": [users["sender"]]})
            await broken.create(users["sender"])

        async def unread(user_id: str) -> int:
            response = await http.get("/api/chat/conversations/unread-count?profile_type=user", headers=auth(user_id))
            assert response.status_code == 200
            return response.json()["data"]["unread_count"]

        assert await unread(reader) == 0
        config = {"tokens": tokens, "users": users, "channelId": channel_id, "brokenChannelId": "left-out"}
        seen = run_app(node_sdk, emulator_server.base_url, {**config, "phase": "send"})
        assert seen["received"] == ["one", "two", "three"]
        assert seen["pages"] == [["two", "three"], ["one"]]
        for refusal in (seen["outsider"], seen["missingMember"]):
            assert refusal["code"] == 17 and refusal["status"] == 403
            assert "is not allowed to perform action ReadChannel in scope 'messaging'" in refusal["message"]
        await wait_until(lambda: unread_is(unread, reader, 1), timeout=10, what="the reader's unread count to rise")

        seen = run_app(node_sdk, emulator_server.base_url, {**config, "phase": "read"})
        assert seen == {"unreadBefore": 3, "unreadAfter": 0}
        await wait_until(lambda: unread_is(unread, reader, 0), timeout=10, what="the reader's unread count to fall")
