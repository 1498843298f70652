"""A catch-up adoption while the app creates groups of the same members, on PostgreSQL: nothing deadlocks.

An adoption batch writes up to 100 conversations in one transaction. Their participant rows go in last, all in
key order (sync.writes), so the counter locks the batch takes follow the same global order as a live
create's: neither holds a counter the other needs next (a deadlock would fail the run or answer the app 503).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select

from onecrew_chat.models import ConversationParticipant, ProfileConversationCount
from onecrew_chat.sync.cutover.run import import_channels
from tests.conftest import make_settings
from tests.factories import add_users
from tests.old_backend import OldChannel, seed_channel, stream_user
from tests.support import auth

URL = "/api/chat/conversations"
CREATORS = 6
MEMBERS = 20
OLD_GROUPS = 300  # three adoption batches
MAX_ROUNDS = 60  # creates go on while the adoption runs, at most this many rounds


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    """Row locks as in production: PostgreSQL only; a connection for every creator and the adoption."""
    return make_settings(
        postgres_only_url,
        emulator_server.base_url,
        provision_deadline_s=15.0,
        db_pool_size=CREATORS + 2,
        db_max_overflow=0,
    )


async def test_adoption_and_creates_sharing_members_all_succeed_and_count_right(app, client, session, emulator):
    shuffle = random.Random(7)  # seeded: a failure replays with the same orders
    creators = await add_users(session, CREATORS, "Creator")
    members = await add_users(session, MEMBERS, "Member")
    for user_id in [*creators, *members]:
        stream_user(emulator, f"onecrew_user_{user_id}", "x")
    for n in range(OLD_GROUPS):
        chosen = shuffle.sample(members, shuffle.randint(3, 8))
        stream_ids = [f"onecrew_user_{m}" for m in chosen]
        seed_channel(emulator, OldChannel(f"group-old-{n}", stream_ids, name=f"Old {n}"))

    adoption = asyncio.create_task(import_channels(app.state.runtime))
    rounds = 0
    while rounds < MAX_ROUNDS and (rounds == 0 or not adoption.done()):
        answers = await asyncio.gather(
            *(
                client.post(
                    URL,
                    json={"conversation_type": "group", "participant_ids": shuffle.sample(members, MEMBERS)},
                    headers=auth(creator),
                )
                for creator in creators
            )
        )
        assert [a.status_code for a in answers] == [200] * CREATORS, {a.text[:300] for a in answers if a.is_error}
        rounds += 1
    report = await adoption

    assert len(report.groups) == OLD_GROUPS
    assert all(s["channel_id"].startswith("group-") and "already known" in s["reason"] for s in report.skipped), (
        "only the groups the app just created are skipped"
    )
    rows = select(ConversationParticipant.participant_id, func.count()).group_by(ConversationParticipant.participant_id)
    counted = select(ProfileConversationCount.participant_id, ProfileConversationCount.conversations)
    assert dict((await session.execute(counted)).all()) == dict((await session.execute(rows)).all())
