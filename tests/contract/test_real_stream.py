"""Against real Stream, opt-in (tests/contract/README.md): the reads the service relies on answer as the emulator does."""

from __future__ import annotations

import os
import uuid

import pytest

from onecrew_chat.config import Settings
from onecrew_chat.stream.client import StreamGateway

KEY = os.environ.get("STREAM_CONTRACT_KEY")
SECRET = os.environ.get("STREAM_CONTRACT_SECRET")

pytestmark = [
    pytest.mark.contract,
    pytest.mark.skipif(not (KEY and SECRET), reason="set STREAM_CONTRACT_KEY and STREAM_CONTRACT_SECRET to run"),
]


@pytest.fixture
async def gateway():
    settings = Settings(
        mode="development",  # Stream alone (production would need every setting)
        stream_api_key=KEY,
        stream_api_secret=SECRET,
        stream_base_url=os.environ.get("STREAM_CONTRACT_BASE_URL", "https://chat.stream-io-api.com"),
        stream_timeout_s=10.0,
    )
    client = StreamGateway.from_settings(settings)
    yield client
    await client.close()


async def test_credentials_are_accepted(gateway):
    await gateway.ping()


async def test_unknown_users_and_channels_read_as_absent(gateway):
    nobody = f"onecrew_user_{uuid.uuid4()}"
    assert await gateway.query_user_ids([nobody]) == set()
    assert await gateway.get_channel("messaging", f"user_user-{uuid.uuid4().hex}") is None
