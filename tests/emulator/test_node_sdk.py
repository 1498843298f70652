"""The npm stream-chat server client against the emulator, driven from Node.

Installs stream-chat@9 into tests/emulator/node/node_modules on first use (the folder is ignored
by git) and skips, saying why, when node or npm is missing or the install fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import KEY, SECRET

NODE_DIR = Path(__file__).parent / "node"

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def node_sdk() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to drive the npm stream-chat client")
    if not (NODE_DIR / "node_modules" / "stream-chat" / "package.json").exists():
        try:
            subprocess.run(
                [npm, "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                check=True,
                timeout=300,
                capture_output=True,
                text=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            pytest.skip(f"npm install stream-chat@9 failed: {str(detail)[-500:]}")
    return node


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
