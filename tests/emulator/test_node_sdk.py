"""The npm stream-chat server client against the emulator, driven from Node (the `node_sdk`
fixture of conftest.py installs it, or skips saying why)."""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import KEY, NODE_DIR, SECRET

pytestmark = pytest.mark.node


def test_npm_stream_chat_server_client(node_sdk, base_url, emu):
    result = subprocess.run(
        [node_sdk, "server_client.js", base_url, KEY, SECRET], cwd=NODE_DIR, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["queried"] == ["js-ann", "js-bob"] and seen["kind"] == "user"
    assert seen["members"] == ["js-ann", "js-bob"]
    assert seen["addError"]["code"] == 4 and seen["addError"]["status"] == 400
    assert seen["addError"]["message"] == (
        'StreamChat error code 4: UpdateChannel failed with error: "The following users are '
        "involved in channel update operation, but don't exist: [js-ghost-1,js-ghost-2]. Please "
        'create the user objects before setting up the channel."'
    )
    assert seen["messageText"] == "from node" and seen["channelName"] == "JS room"
    assert seen["deleted"] is True
    assert {r.dialect for r in emu.requests} == {"v1"}
