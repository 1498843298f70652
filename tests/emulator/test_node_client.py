"""The npm stream-chat client SDK, at the OneCrew app's version, against the emulator as the app
uses it: user tokens signed as our service signs them, the /connect WebSocket, watching, events.

The channel and users are made server-side with getstream, as our service makes them.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from getstream.models import ChannelInput, ChannelMemberRequest, UserRequest

from stream_emulator import operations as op

from .conftest import KEY, NODE_DIR

pytestmark = pytest.mark.node


def _run(node: str, script: str, base_url: str, config: dict) -> dict:
    result = subprocess.run(
        [node, script, base_url, KEY, json.dumps(config)], cwd=NODE_DIR, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_app_chat_flow_through_the_client_sdk(node_sdk, base_url, emu, gs):
    gs.upsert_users(UserRequest(id="ann", name="Ann"), UserRequest(id="bob"), UserRequest(id="eve"))
    channel = gs.chat.channel("messaging", "crew-room")
    channel.get_or_create(
        data=ChannelInput(
            created_by_id="ann", members=[ChannelMemberRequest(user_id="ann"), ChannelMemberRequest(user_id="bob")]
        )
    )
    for n in range(1, 26):
        channel.send_message(message={"text": f"m{n}", "user_id": "ann" if n % 2 else "bob"})
    tokens = {user: gs.create_token(user, expiration=3600) for user in ("ann", "bob", "eve")}

    seen = _run(node_sdk, "client_app.js", base_url, {"tokens": tokens, "cid": "messaging:crew-room"})

    assert seen["connected"] == {"ann": "ann", "bob": "bob", "annOnline": True}
    assert seen["listed"] == ["messaging:crew-room"]
    # The newest page, then the one before it, then forward again from the oldest of that.
    assert seen["firstPage"] == [f"m{n}" for n in range(16, 26)]
    assert seen["olderPage"] == [f"m{n}" for n in range(6, 16)]
    assert seen["newerPage"] == [f"m{n}" for n in range(7, 12)]
    assert seen["bobWatch"] == {"members": ["ann", "bob"], "watchers": ["ann", "bob"], "membership": "bob"}
    assert seen["messageNew"] == {"text": "hello bob", "user": "ann", "cid": "messaging:crew-room"}
    assert seen["typing"] == "bob" and seen["typingStop"] == "bob"
    assert seen["read"] == "bob" and seen["markReadTotal"] == 0
    assert seen["reaction"] == {"type": "love", "counts": {"love": 1}}
    assert seen["reactionDeleted"] == "love"
    assert seen["updated"] == "hello bob (edited)"
    assert seen["notYours"]["code"] == 17 and seen["notYours"]["status"] == 403
    assert seen["deleted"] == "deleted"
    assert seen["markUnread"] == 1
    assert seen["notification"] == "while bob looks elsewhere"
    # A user missing from the channel cannot open it, and does not see it listed.
    assert seen["eveWatch"]["code"] == 17 and seen["eveWatch"]["status"] == 403
    assert (
        "User 'eve' with role 'user' is not allowed to perform action ReadChannel in scope 'messaging'"
        in seen["eveWatch"]["message"]
    )
    assert seen["eveList"] == []
    assert seen["added"] == {"eve": "messaging:crew-room", "bob": "eve"}
    assert seen["eveWatchAfterAdd"] == "eve"
    assert seen["renamed"] == "Renamed"
    assert seen["bobCapabilities"] == {"send": True, "deleteAny": False}
    assert seen["annDeleteAnyAfterRename"] is False
    assert seen["devices"] == ["bob-phone-token"]
    assert seen["upload"] == {"status": 200, "type": "image/png", "body": "\x89PNG fake image bytes"}
    assert seen["dropped"] == 1 and seen["reconnectedWithNewId"] is True
    assert seen["afterReconnect"] == "after the reconnect"
    assert seen["presence"] is False
    # The whole flow used nothing the emulator does not serve.
    assert [r.path for r in emu.requests if r.operation == op.UNKNOWN] == []
    assert emu.get_user("bob")["online"] is False
