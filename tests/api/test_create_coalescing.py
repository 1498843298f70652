"""Creates of brand-new pairs share identity upserts with every other request of the process (sync/coalescer.py),
paced by Stream's rate limits instead of each making its own UpdateUsers call."""

from __future__ import annotations

import asyncio

import pytest

from onecrew_chat.identity import Identity
from tests.factories import add_users
from tests.support import auth

URL = "/api/chat/conversations"
PAIRS = 50


def upserts(emulator) -> tuple[int, int]:
    """(accepted, refused) UpdateUsers calls."""
    calls = [r for r in emulator.requests if r.operation == "UpdateUsers"]
    return sum(r.status < 400 for r in calls), sum(r.status == 429 for r in calls)


@pytest.mark.long_deadline
async def test_fifty_concurrent_creates_of_new_pairs_share_a_few_upsert_calls_within_the_limits(
    client, session, limited
):
    users = await add_users(session, 2 * PAIRS, "New")
    pairs = list(zip(users[::2], users[1::2], strict=True))

    responses = await asyncio.gather(
        *(
            client.post(URL, json={"conversation_type": "user_user", "participant_ids": [b]}, headers=auth(a))
            for a, b in pairs
        )
    )

    assert {r.status_code for r in responses} == {200}, {r.text[:200] for r in responses if r.status_code != 200}
    assert {r.json()["data"]["chat"]["status"] for r in responses} == {"ready"}
    assert all(limited.get_user(Identity.user(user).stream_id) is not None for user in users)
    accepted, refused = upserts(limited)
    # One call per create would be 50 (5 s of Stream's allowance); the 100 identities fit in one call.
    assert accepted <= 10, f"{accepted} UpdateUsers calls for {PAIRS} creates of new pairs"
    assert refused <= 2, f"{refused} UpdateUsers calls refused: the batches were not paced by the limits"


async def test_a_create_whose_upsert_batch_stream_refuses_waits_for_the_reset_and_answers_ready(
    client, session, limited
):
    a, b = await add_users(session, 2, "Refused")
    limited.faults.rate_limit_burst("UpdateUsers", count=1, reset_in_s=0.3)

    response = await client.post(URL, json={"conversation_type": "user_user", "participant_ids": [b]}, headers=auth(a))

    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    assert upserts(limited) == (1, 1)
    assert limited.get_user(Identity.user(b).stream_id) is not None
