"""Provisioning against the emulator: drifted channels, users Stream lost, and the outbox handlers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from onecrew_chat.composition import build_jobs
from onecrew_chat.conversations.create import create_conversation, record_conversation
from onecrew_chat.conversations.request import CreateConversationRequest
from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity, pair_channel_id
from onecrew_chat.models import Conversation, OutboxMessage, StreamIdentity, User
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.outbox import worker
from onecrew_chat.stream.client import StreamUser
from onecrew_chat.sync.channels import Outcome, finish, load_conversation, participant_identities, provision_deadline
from onecrew_chat.sync.mirror_record import sync_identities
from tests.api.conversation_rows import add_conversation
from tests.conftest import LONG_DEADLINE_S, make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, new_id, service_auth, wait_until

URL = "/api/chat/conversations"


@pytest.fixture
def runtime(app):
    """The app's runtime: database, settings and the Stream gateway on the emulator."""
    return app.state.runtime


async def create_pair(client, session) -> tuple[str, str, dict]:
    """A user and a company with a ready conversation; returns (user, company, data)."""
    user = await add_user(session, "Amr")
    company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
    response = await client.post(
        URL, json={"conversation_type": "user_company", "participant_ids": [company]}, headers=auth(user)
    )
    assert response.status_code == 200, response.text
    return user, company, response.json()["data"]


async def test_an_existing_channel_missing_a_member_gets_it_added(client, session, runtime, emulator):
    user = await add_user(session, "Amr")
    company = await add_company(session, "Sat Education", owner=await add_user(session, "Owner"))
    me, them = Identity.user(user), Identity.company(company)
    channel_id = pair_channel_id("user_company", me, them)
    # a channel an older backend made, holding only its creator
    await runtime.stream.upsert_users([StreamUser(id=them.stream_id, name="Sat Education")])
    await runtime.stream.get_or_create_channel(
        "messaging", channel_id, created_by_id=them.stream_id, member_ids=[them.stream_id]
    )
    emulator.clear_requests()

    with capture_logs() as logs:
        response = await client.post(
            URL, json={"conversation_type": "user_company", "participant_ids": [company]}, headers=auth(user)
        )

    assert response.status_code == 200 and response.json()["data"]["id"] == channel_id
    assert sorted(emulator.get_channel("messaging", channel_id)["members"]) == sorted([me.stream_id, them.stream_id])
    # Stream ignores the members of a get-or-create on a channel that exists: the missing one is added
    assert emulator.count("GetOrCreateChannel") == 1 and emulator.count("UpdateChannel") == 1
    repaired = [entry for entry in logs if entry["event"] == "channel.repaired"]
    assert repaired and repaired[0]["added"] == [me.stream_id]


async def test_a_user_stream_lost_is_repaired_by_exactly_its_id(client, session, runtime, emulator):
    a, b = await add_user(session, "A"), await add_user(session, "B")
    await sync_identities(runtime.sessionmaker, runtime.stream, [Identity.user(a), Identity.user(b)])
    await session.commit()
    lost = Identity.user(b).stream_id
    with emulator.lock:
        del emulator.state.users[lost]  # gone from Stream; the mirror still says fresh
    emulator.clear_requests()

    with capture_logs() as logs:
        response = await client.post(
            URL, json={"conversation_type": "user_user", "participant_ids": [b]}, headers=auth(a)
        )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["chat"]["status"] == "ready"
    assert emulator.count("UpdateUsers") == 1 and emulator.get_user(lost)["name"] == "B"
    assert emulator.count("GetOrCreateChannel") == 2
    repaired = [entry for entry in logs if entry["event"] == "identities.repaired"]
    assert repaired and repaired[0]["stream_ids"] == [lost]
    assert any(entry["event"] == "stream.retry" and entry["reason"] == "users_missing" for entry in logs)


async def test_the_provision_handler_is_idempotent(client, session, runtime, emulator):
    _user, _company, data = await create_pair(client, session)
    await session.execute(update(Conversation).values(chat_status="provisioning", stream_verified_at=None))
    await outbox.add(session, "conversation.provision", {"conversation_id": data["id"]})
    await outbox.add(session, "conversation.provision", {"conversation_id": data["id"]})
    await session.commit()
    emulator.clear_requests()

    assert await worker.run_once(runtime, build_jobs(runtime.settings)) == 2

    assert emulator.count("GetOrCreateChannel") == 1, "the second row finds the conversation ready"
    statuses = {
        m.status
        for m in await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "conversation.provision"))
    }
    assert statuses == {"done"}
    session.expire_all()
    assert (await session.scalar(select(Conversation))).chat_status == "ready"
    assert emulator.channel_count() == 1


async def test_provision_conversation_marks_ready_and_reports_calls(client, session, runtime, emulator):
    _user, _company, data = await create_pair(client, session)
    conversation = await load_conversation(session, data["id"])
    conversation.chat_status, conversation.stream_verified_at = "provisioning", None
    await session.commit()
    calls = emulator.count()
    assert (
        await finish(runtime, conversation.id, deadline=provision_deadline(LONG_DEADLINE_S), placeholder_ok=False)
        is Outcome.PROVISIONED
    )
    session.expire_all()
    conversation = await load_conversation(session, data["id"])
    assert conversation.chat_status == "ready" and conversation.stream_verified_at is not None
    assert emulator.count() - calls == 1, "identities were fresh: one channel call"
    assert conversation.provision_lease_token is None, "the claim is given back"


async def test_a_profile_change_reaches_stream_through_the_identity_sync_handler(client, session, runtime, emulator):
    user, _company, _data = await create_pair(client, session)
    response = await client.put(
        f"/api/internal/users/{user}",
        json={"name": "Amr Hassan", "image_url": None, "category": "talent"},
        headers=service_auth(),
    )
    assert response.status_code == 200, response.text
    emulator.clear_requests()

    assert await worker.run_once(runtime, build_jobs(runtime.settings)) == 1

    assert emulator.count("UpdateUsersPartial") == 1 and emulator.count("UpdateUsers") == 0
    assert emulator.get_user(Identity.user(user).stream_id)["name"] == "Amr Hassan"
    syncs = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "identity.sync"))).all()
    assert {(m.dedupe_key is None, m.status) for m in syncs} == {(False, "done"), (True, "pending")}  # + the settle


async def test_a_sender_of_the_old_profile_landing_after_the_new_one_is_overwritten_by_the_settle(
    client, session, runtime, emulator
):
    """A request read the old name, then was killed (kill -9) with its call on the wire: Stream applied the old name
    after the worker had sent the new one, and nothing recorded it. The change's second, later send repairs it."""
    user, _company, _data = await create_pair(client, session)
    stream_id = Identity.user(user).stream_id
    old_name = emulator.get_user(stream_id)["name"]
    response = await client.put(f"/api/internal/users/{user}", json={"name": "Amr Hassan"}, headers=service_auth())
    assert response.status_code == 200, response.text
    jobs = build_jobs(runtime.settings)
    assert await worker.run_once(runtime, jobs) == 1  # the change itself: Stream holds the new name
    assert emulator.get_user(stream_id)["name"] == "Amr Hassan"

    await runtime.stream.upsert_users([StreamUser(id=stream_id, name=old_name)])  # the killed request's late call
    assert await worker.run_once(runtime, jobs) == 0  # nothing due yet: the settle waits out any such sender
    session.expire_all()
    await session.execute(
        update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=utcnow())
    )  # PROFILE_SETTLE_S later
    await session.commit()
    assert await worker.run_once(runtime, jobs) == 1

    assert emulator.get_user(stream_id)["name"] == "Amr Hassan"


async def test_identity_sync_upserts_an_unmirrored_identity_and_skips_an_unknown_one(session, runtime, emulator):
    known = await add_user(session, "Known")
    await outbox.add(session, "identity.sync", {"stream_id": Identity.user(known).stream_id})
    await outbox.add(session, "identity.sync", {"stream_id": Identity.user(new_id()).stream_id})
    await session.commit()
    assert await worker.run_once(runtime, build_jobs(runtime.settings)) == 2
    assert emulator.count("UpdateUsers") == 1 and emulator.get_user(Identity.user(known).stream_id)["name"] == "Known"
    assert {m.status for m in await session.scalars(select(OutboxMessage))} == {"done"}


class TestPlaceholderPolicy:
    """ONECREW_UNKNOWN_PARTICIPANTS=placeholder: unknown ids become minimal Stream users, healed later."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url, unknown_participants="placeholder")

    async def test_an_unknown_company_becomes_a_placeholder_then_the_real_profile_heals_it(
        self, client, session, runtime, emulator
    ):
        user = await add_user(session, "Amr")
        unknown = new_id()
        response = await client.post(
            URL, json={"conversation_type": "user_company", "participant_ids": [unknown]}, headers=auth(user)
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["chat"]["status"] == "ready"
        company_part = next(p for p in data["participants"] if p["participant_type"] == "company")
        assert company_part["participant_id"] == unknown and company_part["company"] is None
        stream_id = Identity.company(unknown).stream_id
        assert emulator.get_user(stream_id)["onecrew_placeholder"] is True

        put = await client.put(
            f"/api/internal/companies/{unknown}",
            json={"name": "Lolo Academy", "logo_url": None, "subcategory": "academy"},
            headers=service_auth(),
        )
        assert put.status_code == 200, put.text
        assert await worker.run_once(runtime, build_jobs(runtime.settings)) == 1
        healed = emulator.get_user(stream_id)
        assert healed["name"] == "Lolo Academy" and "onecrew_placeholder" not in healed
        assert not (await session.get(StreamIdentity, stream_id, populate_existing=True)).placeholder

    async def test_a_placeholder_never_overwrites_a_stream_user_that_exists(self, client, session, runtime, emulator):
        user, unknown = await add_user(session, "Amr"), new_id()
        stream_id = Identity.user(unknown).stream_id
        await runtime.stream.upsert_users([StreamUser(id=stream_id, name="Connected From The App")])
        response = await client.post(
            URL, json={"conversation_type": "user_user", "participant_ids": [unknown]}, headers=auth(user)
        )
        assert response.status_code == 200, response.text
        assert emulator.get_user(stream_id)["name"] == "Connected From The App"
        assert stream_id in emulator.get_channel("messaging", response.json()["data"]["id"])["members"]
        assert await session.get(User, unknown) is None


async def test_a_dead_lettered_provisioning_marks_the_conversation_failed_until_a_create_requeues_it(
    client, session, runtime, emulator
):
    user = await add_user(session, "Amr")
    company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
    body = {"conversation_type": "user_company", "participant_ids": [company]}
    emulator.faults.set_error_rate("GetOrCreateChannel", 1.0, status=400)  # Stream refuses: no retry can fix it
    assert (await client.post(URL, json=body, headers=auth(user))).status_code == 502

    assert (
        await worker.run_once(runtime, build_jobs(runtime.settings)) == 1
    )  # the inline failure made the row due at once
    dead = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "conversation.provision"))
    assert dead.status == "dead" and "GetOrCreateChannel" in dead.last_error
    conversation = await session.scalar(select(Conversation).execution_options(populate_existing=True))
    assert conversation.chat_status == "failed", "a conversation nobody will finish must not say provisioning"

    emulator.faults.reset()
    again = await client.post(URL, json=body, headers=auth(user))
    assert again.status_code == 200, again.text
    assert again.json()["data"]["chat"]["status"] == "ready"
    rows = {
        m.id: m.status for m in await session.scalars(select(OutboxMessage).execution_options(populate_existing=True))
    }
    assert rows == {dead.id: "dead", max(rows): "done"}, "a fresh row was queued (and finished) next to the dead one"
    assert sorted(emulator.get_channel("messaging", again.json()["data"]["id"])["members"]) == sorted(
        [Identity.user(user).stream_id, Identity.company(company).stream_id]
    )


class TestLargeChannels:
    """Channels of more than 100 members, whose answers Stream truncates (SQLite: the database plays no part)."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url)

    async def test_members_a_truncated_answer_does_not_show_are_added_again_without_a_false_repair_report(
        self, session, runtime, emulator
    ):
        identities = [Identity.user(u) for u in await add_users(session, 150)]
        conversation = await add_conversation(session, *identities, chat_status="provisioning", verified=False)
        ours = [i.stream_id for i in participant_identities(conversation)]
        # An older channel whose members joined in another order: Stream's answer shows the first 100 to join.
        await runtime.stream.upsert_users([StreamUser(id=m, name=m) for m in ours[:100]])
        await runtime.stream.upsert_users([StreamUser(id=m, name=m) for m in ours[100:]])
        await runtime.stream.get_or_create_channel(
            "messaging", conversation.channel_id, created_by_id=ours[0], member_ids=ours[50:]
        )
        await runtime.stream.add_members("messaging", conversation.channel_id, ours[:50])

        await session.commit()
        with capture_logs() as logs:  # 150 identities and four Stream calls: a loaded machine needs more than 3 s
            await finish(runtime, conversation.id, deadline=provision_deadline(LONG_DEADLINE_S), placeholder_ok=False)

        assert [e for e in logs if e["event"] == "channel.repaired"] == [], "every member was there all along"
        created = [e for e in logs if e["event"] == "channel.created"]
        assert created[0]["members_added"] == 50, "the 50 the answer could not show are added again (harmless)"
        assert sorted(emulator.get_channel("messaging", conversation.channel_id)["members"]) == sorted(ours)


class TestKillPoints:
    """The process dies between or inside the two units of work: the outbox row finishes the conversation."""

    async def due_now_and_run_the_worker(self, session, runtime) -> None:
        """Time passes (the row's delay is over) and the worker runs."""
        await session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        await session.commit()
        assert await worker.run_once(runtime, build_jobs(runtime.settings)) == 1

    async def assert_finished(self, session, emulator, user: str, company: str) -> None:
        """One ready conversation whose channel holds both parties; its outbox row done."""
        conversation = await session.scalar(select(Conversation).execution_options(populate_existing=True))
        assert conversation.chat_status == "ready" and conversation.stream_verified_at is not None
        message = await session.scalar(select(OutboxMessage).execution_options(populate_existing=True))
        assert message.status == "done"
        assert sorted(emulator.get_channel("messaging", conversation.channel_id)["members"]) == sorted(
            [Identity.user(user).stream_id, Identity.company(company).stream_id]
        )

    async def test_dead_after_the_record_was_committed(self, session, runtime, emulator):
        user = await add_user(session, "Amr")
        company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
        request = CreateConversationRequest(conversation_type="user_company", participant_ids=[company])
        recorded = await record_conversation(runtime, user, request)  # ... and the process dies here
        assert recorded.conversation.chat_status == "provisioning" and emulator.count() == 0
        message = await session.scalar(select(OutboxMessage))
        assert message.status == "pending" and message.next_attempt_at > utcnow(), "left to the inline run first"
        # The conversation was inserted claimed by the request that died: its lease runs out (as a claim of a
        # request dying mid-provisioning does), then the worker finishes it.
        conversation = await session.scalar(select(Conversation))
        assert conversation.provision_lease_token == recorded.claimed and recorded.claimed is not None
        assert conversation.provision_lease_until > utcnow() + timedelta(seconds=runtime.settings.provision_deadline_s)
        await session.execute(update(Conversation).values(provision_lease_until=utcnow()))
        await self.due_now_and_run_the_worker(session, runtime)
        await self.assert_finished(session, emulator, user, company)

    # Neither the HTTP timeout nor the deadline may end the held call before the test kills the request, however
    # slow the machine (the emulator logs a held call only once it ends, so the test waits for its write).
    @pytest.mark.app_settings(stream_timeout_s=60.0, provision_deadline_s=60.0)
    async def test_dead_while_provisioning(self, session, runtime, emulator):
        user = await add_user(session, "Amr")
        company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
        # Stream applies the channel create but its answer never comes: the request is still waiting for it when
        # the process dies.
        emulator.faults.timeout_after_write("GetOrCreateChannel", count=1, hold_s=120)
        request = CreateConversationRequest(conversation_type="user_company", participant_ids=[company])
        create = asyncio.create_task(create_conversation(runtime, user, request))
        await wait_until(lambda: emulator.channel_count() == 1, what="Stream to apply the channel call (then hold it)")
        create.cancel()  # the process dies mid-provisioning: its transaction never commits
        with pytest.raises(asyncio.CancelledError):
            await create
        conversation = await session.scalar(select(Conversation))
        assert conversation.chat_status == "provisioning" and conversation.provision_lease_token is None, (
            "claim given back"
        )
        # The upsert Stream accepted before the channel call is a fact: the mirror records it.
        assert await session.scalar(select(func.count()).select_from(StreamIdentity)) == 2
        emulator.faults.reset()
        await self.due_now_and_run_the_worker(session, runtime)
        await self.assert_finished(session, emulator, user, company)
