"""Per-request Stream call counts in `conversation.created` (`make soak` found one create logging 130 calls when
they were a difference of a process-wide counter; the gateway now counts each request's own)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from tests.conftest import make_settings
from tests.factories import add_user
from tests.support import auth

URL = "/api/chat/conversations"
CONCURRENT = 6


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    """PostgreSQL, so that the creates really overlap."""
    return make_settings(postgres_only_url, emulator_server.base_url)


async def test_concurrent_creates_each_log_only_their_own_stream_calls(client, session, emulator):
    users = [await add_user(session, f"User {n}") for n in range(2 * CONCURRENT)]
    emulator.faults.set_latency(150)  # every create overlaps the others' Stream calls
    emulator.clear_requests()

    with capture_logs() as logs:
        responses = await asyncio.gather(
            *(
                client.post(
                    URL,
                    json={"conversation_type": "user_user", "participant_ids": [users[2 * n + 1]]},
                    headers=auth(users[2 * n]),
                )
                for n in range(CONCURRENT)
            )
        )

    assert [r.status_code for r in responses] == [200] * CONCURRENT
    logged = [entry["stream_calls"] for entry in logs if entry["event"] == "conversation.created"]
    assert len(logged) == CONCURRENT
    assert sum(logged) == emulator.count(), f"logged {logged}, Stream saw {emulator.count()} calls in all"
