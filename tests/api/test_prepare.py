"""POST /api/chat/conversations/{id}/prepare: the channel and every member exist in Stream
(docs/reference/app-contract.md#prepare)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation, OutboxMessage
from onecrew_chat.stream.client import StreamUser
from onecrew_chat.sync.queue import provision_dedupe_key
from tests.api.conversation_rows import (  # noqa: F401 (private_emulator_server is a fixture)
    add_conversation,
    failed_pair,
    private_emulator_server,
    provision_rows,
    stream_down,
    unprovisioned_pair,
)
from tests.conftest import deadline_for, make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, wait_until

URL = "/api/chat/conversations/{}/prepare"


@pytest.fixture
def settings(sqlite_only_url, emulator, emulator_server, request):
    """SQLite unless a class asks for both databases."""
    return make_settings(sqlite_only_url, emulator_server.base_url, provision_deadline_s=deadline_for(request))


async def stored(session, conversation: Conversation) -> Conversation:
    """The conversation row as committed by the request."""
    return await session.scalar(
        select(Conversation).where(Conversation.id == conversation.id).execution_options(populate_existing=True)
    )


class TestNoStreamCall:
    """Counted on an emulator only this test's app calls, so an earlier test's straggler cannot count."""

    @pytest.fixture
    def settings(self, sqlite_only_url, private_emulator_server):
        return make_settings(sqlite_only_url, private_emulator_server.base_url)

    async def test_ready_and_verified_makes_no_stream_call(self, client, session, private_emulator_server):
        emulator = private_emulator_server.emulator
        me, other = await add_users(session, 2)
        conversation = await add_conversation(session, Identity.user(me), Identity.user(other))
        response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "data": {
                "id": conversation.channel_id,
                "chat_status": "ready",
                "members": [f"onecrew_user_{me}", f"onecrew_user_{other}"],
            },
        }
        assert emulator.count() == 0


async def test_acting_company_is_inferred_from_membership(client, session, emulator):
    owner, other = await add_users(session, 2)
    company = await add_company(session, owner=owner)
    conversation = await add_conversation(
        session, Identity.user(other), Identity.company(company), chat_status="provisioning", verified=False
    )
    response = await client.post(URL.format(conversation.channel_id), headers=auth(owner))
    assert response.status_code == 200
    assert response.json()["data"]["chat_status"] == "ready"
    channel = emulator.get_channel("messaging", conversation.channel_id)
    assert set(channel["members"]) == {f"onecrew_user_{other}", f"onecrew_company_{company}"}
    assert emulator.get_user(f"onecrew_company_{company}")["role"] == "user"


async def test_not_found_and_bad_ids(client, session):
    me, a, b = await add_users(session, 3)
    hidden = await add_conversation(session, Identity.user(a), Identity.user(b))
    for conversation_id, status in (
        (hidden.channel_id, 404),
        ("user_user-" + "f" * 32, 404),
        ("bad.id", 400),
        ("x" * 200, 400),
    ):
        response = await client.post(URL.format(conversation_id), headers=auth(me))
        assert response.status_code == status
        assert response.json()["success"] is False and isinstance(response.json()["error"], str)


async def test_401(client):
    response = await client.post(URL.format("user_user-" + "0" * 32))
    assert response.status_code == 401 and response.json()["error"] == "Invalid or expired token"


async def test_stream_refusing_the_channel_is_a_502_with_words_as_on_create(client, session, emulator):
    me, other, conversation = await unprovisioned_pair(session)
    emulator.faults.set_error_rate("GetOrCreateChannel", 1.0, status=400)
    response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
    assert response.status_code == 502
    assert response.json()["code"] == "stream_error"
    assert response.json()["error"].startswith("Stream refused to prepare the channel")


class TestAdoptedChannel:
    """Verified once, persisted (both databases); counted on an emulator only this test's app calls."""

    @pytest.fixture
    def settings(self, database_url, private_emulator_server):
        return make_settings(database_url, private_emulator_server.base_url)

    async def test_adopted_channel_is_verified_once_and_missing_members_added(
        self, client, session, app, private_emulator_server
    ):
        emulator = private_emulator_server.emulator
        me, other = await add_users(session, 2)
        owner = await add_user(session, "Owner")
        company = await add_company(session, "Lolo Academy", owner=owner)
        # An older-scheme channel that Stream holds with only one of its two members.
        channel_id = f"user_company-{'ab' * 16}"
        stream = app.state.runtime.stream
        await stream.upsert_users(
            [StreamUser(id=f"onecrew_user_{me}", name="Amr (set by the old backend)", image=None, custom={})]
        )
        await stream.get_or_create_channel(
            "messaging", channel_id, created_by_id=f"onecrew_user_{me}", member_ids=[f"onecrew_user_{me}"]
        )
        conversation = await add_conversation(
            session, Identity.user(me), Identity.company(company), channel_id=channel_id, verified=False
        )
        emulator.clear_requests()

        response = await client.post(URL.format(channel_id), headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat_status"] == "ready"
        assert set(emulator.get_channel("messaging", channel_id)["members"]) == {
            f"onecrew_user_{me}",
            f"onecrew_company_{company}",
        }
        assert (await stored(session, conversation)).stream_verified_at is not None

        calls = emulator.count()
        again = await client.post(URL.format(channel_id), headers=auth(me))
        assert again.status_code == 200
        assert emulator.count() == calls, "verified once: the next prepare makes no Stream call"


class TestHealing:
    """Provisioning and verification state is persisted: both databases."""

    @pytest.fixture
    def settings(self, database_url, emulator, emulator_server, request):
        return make_settings(database_url, emulator_server.base_url, provision_deadline_s=deadline_for(request))

    @pytest.mark.short_deadline
    async def test_stream_down_answers_200_provisioning_and_queues_the_work(self, client, session, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        stream_down(emulator, 500)
        response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat_status"] == "provisioning"
        rows = (await session.scalars(select(OutboxMessage))).all()
        assert [(r.kind, r.payload["conversation_id"]) for r in rows] == [("conversation.provision", conversation.id)]

        emulator.faults.reset()

        async def healed() -> bool:
            response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
            return response.json()["data"]["chat_status"] == "ready"

        # A loaded machine may need more than the 0.3 s deadline: the app prepares again, as it does on each open.
        await wait_until(healed, what="a prepare to answer ready once Stream is back")
        assert set(emulator.get_channel("messaging", conversation.channel_id)["members"]) == {
            f"onecrew_user_{me}",
            f"onecrew_user_{other}",
        }

    async def test_a_failed_conversation_is_tried_inline_once(self, client, session, emulator):
        me, other, conversation = await failed_pair(session)
        response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat_status"] == "ready"
        assert set(emulator.get_channel("messaging", conversation.channel_id)["members"]) == {
            f"onecrew_user_{me}",
            f"onecrew_user_{other}",
        }
        assert (await stored(session, conversation)).chat_status == "ready"

    @pytest.mark.short_deadline
    async def test_a_failed_conversation_stream_cannot_heal_goes_back_to_provisioning(self, client, session, emulator):
        me, other, conversation = await failed_pair(session)
        stream_down(emulator, 500)
        response = await client.post(URL.format(conversation.channel_id), headers=auth(me))
        assert response.status_code == 200
        assert response.json()["data"]["chat_status"] == "provisioning"
        assert (await stored(session, conversation)).chat_status == "provisioning"
        key = provision_dedupe_key(conversation.id)
        assert await provision_rows(session) == [(conversation.id, "dead", key), (conversation.id, "pending", key)]


class TestConcurrentPrepares:
    """The app fires prepare on every open and after every create: concurrent runs take turns on the row."""

    @pytest.fixture
    def settings(self, postgres_only_url, emulator, emulator_server):
        # Deadline and HTTP timeout far from a loaded machine's healthy calls: a retry would blur the count.
        return make_settings(
            postgres_only_url, emulator_server.base_url, provision_deadline_s=15.0, stream_timeout_s=10.0
        )

    async def test_concurrent_prepares_and_gets_make_one_set_of_stream_calls(self, client, session, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        emulator.faults.set_latency(20)  # every run overlaps the first one's Stream calls
        responses = await asyncio.gather(
            *(client.post(URL.format(conversation.channel_id), headers=auth(me)) for _ in range(5)),
            *(client.get(f"/api/chat/conversations/{conversation.channel_id}", headers=auth(me)) for _ in range(5)),
        )
        assert [r.status_code for r in responses] == [200] * 10
        assert {r.json()["data"]["chat_status"] for r in responses[:5]} == {"ready"}
        assert {r.json()["data"]["chat"]["status"] for r in responses[5:]} == {"ready"}
        # One run's calls (10 runs without the claim); a budget of one retried call for a loaded machine.
        assert emulator.count("GetOrCreateChannel") <= 2, emulator.count("GetOrCreateChannel")
        assert emulator.count("UpdateUsers") <= 2, emulator.count("UpdateUsers")


class TestBehindARunHoldingTheClaim:
    """A GET or prepare waits for another run's provisioning claim only within the deadline, on both databases."""

    DEADLINE_S = 0.5

    @pytest.fixture
    def settings(self, database_url, emulator, emulator_server):
        return make_settings(database_url, emulator_server.base_url, provision_deadline_s=self.DEADLINE_S)

    async def test_get_and_prepare_answer_the_stored_status_within_the_deadline(self, client, session, app, emulator):
        me, other, conversation = await unprovisioned_pair(session)
        # A slow run (create, worker) holds the claim: taken in its own short transaction, no lock held.
        held_until = utcnow() + timedelta(seconds=60)
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(provision_lease_token="another-run", provision_lease_until=held_until)
        )
        await session.commit()
        started = time.monotonic()
        prepared, shown = await asyncio.wait_for(
            asyncio.gather(
                client.post(URL.format(conversation.channel_id), headers=auth(me)),
                client.get(f"/api/chat/conversations/{conversation.channel_id}", headers=auth(me)),
            ),
            timeout=45,
        )
        elapsed = time.monotonic() - started
        # It waited for the claim about the deadline, then answered: far less than the holder's hold (60 s), with
        # room for a loaded machine.
        assert self.DEADLINE_S * 0.8 < elapsed < 30.0
        assert prepared.status_code == shown.status_code == 200
        assert prepared.json()["data"]["chat_status"] == "provisioning"
        assert shown.json()["data"]["chat"]["status"] == "provisioning"
        # The run holding the claim owns the job (it has, or leaves, its outbox row); nothing reached Stream from here.
        assert await provision_rows(session) == []
        assert emulator.get_channel("messaging", conversation.channel_id) is None
