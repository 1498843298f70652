"""Several 1,000-member groups created at once, Stream's limits enforced (10 UpdateChannel a second): each create
answers 200 (ready, or the documented provisioning state), and the worker finishes the rest, with no dead letter."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from onecrew_chat.models import OutboxMessage
from tests.api.test_core_guarantees import drain_outbox
from tests.factories import add_user, add_users
from tests.support import auth

URL = "/api/chat/conversations"
GROUPS, SIZE = 5, 1000


@pytest.mark.slow
async def test_five_groups_of_a_thousand_at_once_all_end_in_stream_with_every_member(app, client, session, limited):
    me = await add_user(session, "Organiser")
    members = await add_users(session, SIZE - 1, "Crew")
    bodies = [{"conversation_type": "group", "participant_ids": members, "name": f"Crew {n}"} for n in range(GROUPS)]

    responses = await asyncio.gather(*(client.post(URL, json=body, headers=auth(me)) for body in bodies))

    # An unkeyed group still provisioning at the deadline answers 200 with chat.status "provisioning"
    # (conversations/create.py, retry_finds_it): a group sent again would be a new group.
    assert {r.status_code for r in responses} == {200}, {r.text[:300] for r in responses if r.status_code != 200}
    assert {r.json()["data"]["chat"]["status"] for r in responses} <= {"ready", "provisioning"}
    ids = [r.json()["data"]["id"] for r in responses]
    await drain_outbox(app.state.runtime)
    for channel_id in ids:
        channel = limited.get_channel("messaging", channel_id)
        assert channel is not None and len(set(channel["members"])) == SIZE
    adds = [r for r in limited.requests if r.operation == "UpdateChannel"]
    # 9 additions of 100 per group (its create holds the first 100), each in its turn: no 429 to wait out (a budget
    # of 2 for a loaded machine). What a run got in is not sent again by the next; a call the deadline cut off after
    # Stream applied it may be (a budget of one per group).
    assert sum(r.status == 429 for r in adds) <= 2, sum(r.status == 429 for r in adds)
    assert sum(r.status < 400 for r in adds) <= GROUPS * 10, sum(r.status < 400 for r in adds)
    dead = await session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "dead"))
    assert dead == 0
