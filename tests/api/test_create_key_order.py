"""Concurrent group creates sharing members in different orders, on PostgreSQL: every one answers 2xx.

A create's participant rows go in one statement in key order, so the count trigger (migration 0012) takes the
members' profile_conversation_count rows once, in sorted order: two creates sharing members wait for each other
instead of each holding a counter the other needs next (a deadlock, which PostgreSQL breaks by failing one of
them: a 503 for a request that did nothing wrong). The app still sees the acting identity first.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select

from onecrew_chat.models import ConversationParticipant, ProfileConversationCount
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import auth

URL = "/api/chat/conversations"
CREATORS = 8
MEMBERS = 20
ROUNDS = 4


@pytest.fixture
def settings(postgres_only_url, emulator, emulator_server):
    """Row locks as in production: PostgreSQL only. A pool for every creator, and a deadline far above what the
    creates need on a loaded 2-core machine: this test is about who waits for whom, not about the deadline."""
    return make_settings(
        postgres_only_url,
        emulator_server.base_url,
        provision_deadline_s=15.0,
        db_pool_size=CREATORS,
        db_max_overflow=0,
    )


async def test_groups_sharing_members_in_shuffled_orders_all_succeed_and_count_right(client, session):
    shuffle = random.Random(14)  # seeded: a failure replays with the same orders
    creators = await add_users(session, CREATORS, "Creator")
    members = await add_users(session, MEMBERS, "Member")
    groups: dict[str, int] = {}  # profile id -> groups it is in
    for round_ in range(ROUNDS):
        orders = [shuffle.sample(members, MEMBERS) for _ in creators]
        answers = await asyncio.gather(
            *(
                client.post(
                    URL,
                    json={"conversation_type": "group", "participant_ids": order, "name": f"Round {round_} #{n}"},
                    headers=auth(creator),
                )
                for n, (creator, order) in enumerate(zip(creators, orders, strict=True))
            )
        )

        assert [a.status_code for a in answers] == [200] * CREATORS, {a.text[:300] for a in answers if a.is_error}
        for creator, order, answer in zip(creators, orders, answers, strict=True):
            shown = [p["participant_id"] for p in answer.json()["data"]["participants"]]
            assert shown[0] == creator, "the acting identity comes first, as before"
            assert sorted(shown) == sorted([creator, *order])
            for profile in shown:
                groups[profile] = groups.get(profile, 0) + 1

    rows = dict(
        (
            await session.execute(
                select(ConversationParticipant.participant_id, func.count()).group_by(
                    ConversationParticipant.participant_id
                )
            )
        ).all()
    )
    counted = dict(
        (
            await session.execute(
                select(ProfileConversationCount.participant_id, ProfileConversationCount.conversations)
            )
        ).all()
    )
    assert rows == groups
    assert counted == groups
    # What the app reads: the list's total of a member in every group.
    listed = await client.get(URL, headers=auth(members[0]))
    assert listed.status_code == 200, listed.text[:300]
    assert listed.json()["data"]["pagination"]["total"] == ROUNDS * CREATORS
