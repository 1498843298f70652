"""Issue 7's guarantees over HTTP: keyed groups survive a crash, a profile PUT is never lost, SQLite serialises
concurrent creates, and a database error a retry can fix is a 503."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from onecrew_chat.api.deps import SessionDep
from onecrew_chat.composition import build_jobs
from onecrew_chat.db import utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import Conversation, IdempotencyKey
from onecrew_chat.outbox import worker
from tests.conftest import make_settings
from tests.factories import add_company, add_user, add_users
from tests.support import auth, identities_sent, new_id, service_auth, wait_until

URL = "/api/chat/conversations"


async def drain_outbox(runtime) -> None:
    """Run the worker until no due row is left (every row made due now, as if time had passed)."""
    from onecrew_chat.models import OutboxMessage

    for _ in range(10):
        async with runtime.sessionmaker() as session:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=utcnow())
            )
            await session.commit()
        if await worker.run_once(runtime, build_jobs(runtime.settings)) == 0:
            return
    raise AssertionError("the outbox did not drain in 10 rounds")


# The held channel call must still be held when the test cuts the request off: neither the HTTP timeout nor the
# deadline may end it first, however slow the machine (the emulator logs a held call only once it ends).
@pytest.mark.app_settings(stream_timeout_s=60.0, provision_deadline_s=60.0)
async def test_a_keyed_group_create_cut_off_after_its_commit_is_replayed_not_made_twice(client, session, app, emulator):
    me = await add_user(session, "Amr")
    others = await add_users(session, 3)
    key = new_id()
    body = {"conversation_type": "group", "participant_ids": others, "name": "Crew"}
    headers = {**auth(me), "Idempotency-Key": key}
    # The channel call is applied by Stream but its answer never comes: the server dies in the middle.
    emulator.faults.timeout_after_write("GetOrCreateChannel", count=1, hold_s=120)
    cut_off = asyncio.create_task(client.post(URL, json=body, headers=headers))
    await wait_until(lambda: emulator.channel_count() == 1, what="Stream to apply the channel call (then hold it)")
    cut_off.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut_off
    emulator.faults.reset()
    # Minutes pass: long past the point where a running key counts as abandoned (60 s + the deadline), and past
    # any provisioning claim the dead server held.
    await session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(minutes=5)))
    await session.execute(update(Conversation).values(provision_lease_until=utcnow() - timedelta(minutes=4)))
    await session.commit()

    retried = await client.post(URL, json=body, headers=headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["data"]["chat"]["status"] == "ready"
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1, "one group, not two"
    assert emulator.channel_count() == 1
    channel = emulator.get_channel("messaging", retried.json()["data"]["id"])
    assert len(channel["members"]) == 4
    again = await client.post(URL, json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == retried.json()


async def test_a_profile_put_racing_the_first_upsert_still_reaches_stream(client, session, app, emulator):
    user = await add_user(session, "Old Name")
    stream_id = Identity.user(user).stream_id
    # The first upsert is applied but its answer is held: the token request is still inside its deadline.
    emulator.faults.timeout_after_write("UpdateUsers", count=1, hold_s=30)
    token = asyncio.create_task(client.post("/api/chat/token", headers=auth(user)))
    await wait_until(lambda: emulator.get_user(stream_id) is not None, what="Stream to apply the first upsert")

    put = await client.put(
        f"/api/internal/users/{user}",
        json={"name": "New Name", "image_url": None, "category": "talent"},
        headers=service_auth(),
    )
    assert put.status_code == 200, put.text
    assert (await token).status_code == 200

    await drain_outbox(app.state.runtime)
    assert emulator.get_user(stream_id)["name"] == "New Name", "Stream ends with the newest profile"


async def test_reconcile_finds_and_repairs_a_profile_stream_holds_stale(client, session, app, emulator):
    from onecrew_chat.stream.client import StreamUser
    from onecrew_chat.sync.reconcile.run import reconcile

    user = await add_user(session, "Real Name")
    assert (await client.post("/api/chat/token", headers=auth(user))).status_code == 200
    await identities_sent(app)
    stream_id = Identity.user(user).stream_id
    # Changed behind our back (the old backend's "User" placeholder overwrote it).
    await app.state.runtime.stream.upsert_users([StreamUser(id=stream_id, name="User")])

    report = await reconcile(app.state.runtime, repair=True)

    assert report.drift["profile_stale"] == 1
    await drain_outbox(app.state.runtime)
    assert emulator.get_user(stream_id)["name"] == "Real Name"
    assert (await reconcile(app.state.runtime, repair=False)).total_drift == 0


class TestEmbeddedSQLite:
    """SQLite has no row locks: the claim serialises what PostgreSQL would lock."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url)

    async def test_twenty_identical_concurrent_creates_make_one_channel_call(self, client, session, emulator):
        user = await add_user(session, "Amr")
        company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
        body = {"conversation_type": "user_company", "participant_ids": [company]}

        responses = await asyncio.gather(*(client.post(URL, json=body, headers=auth(user)) for _ in range(20)))

        assert {r.status_code for r in responses} == {200}, {r.text for r in responses}
        assert {r.json()["data"]["chat"]["status"] for r in responses} == {"ready"}
        assert emulator.count("GetOrCreateChannel") == 1
        assert emulator.count("UpdateUsers") == 1


class TestDatabaseTrouble:
    """Failures a retry can fix are 503 with Retry-After, never the generic 500."""

    @pytest.fixture
    def settings(self, postgres_only_url, emulator, emulator_server):
        return make_settings(postgres_only_url, emulator_server.base_url)

    @pytest.mark.parametrize(
        "sqlstate",
        ["40P01", "40001", "55P03", "57014", "53300", "25006"],
        ids=["deadlock", "serialization", "lock_timeout", "statement_timeout", "too_many_connections", "read_only"],
    )
    async def test_a_retryable_database_error_is_503(self, app, client, sqlstate):
        async def fails(session: SessionDep) -> dict:  # a real PostgreSQL error of that class, raised by the server
            await session.execute(text(f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"))
            return {}

        app.add_api_route("/test/db-error", fails, methods=["GET"])

        response = await client.get("/test/db-error")

        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert response.json()["code"] == "database_unavailable"


async def test_each_answer_says_how_many_stream_calls_its_request_made(client, session, emulator):
    user = await add_user(session, "Amr")
    company = await add_company(session, "Lolo Academy", owner=await add_user(session, "Owner"))
    body = {"conversation_type": "user_company", "participant_ids": [company]}

    new_pair, again = [await client.post(URL, json=body, headers=auth(user)) for _ in range(2)]

    # Counted by the gateway for this request alone (two upserts in one call, then the channel), not a process total.
    assert new_pair.headers["X-Stream-Calls"] == "2"
    assert again.headers["X-Stream-Calls"] == "0"


async def test_a_keyed_create_that_died_before_recording_is_taken_over_within_seconds(client, session, app, emulator):
    from onecrew_chat.conversations import idempotency
    from onecrew_chat.conversations.create import create_conversation
    from onecrew_chat.conversations.request import CreateConversationRequest
    from onecrew_chat.errors import Conflict
    from onecrew_chat.identity import Identity

    me = await add_user(session, "Amr")
    others = await add_users(session, 2)
    key = new_id()
    body = {"conversation_type": "group", "participant_ids": others, "name": "Crew"}
    request = CreateConversationRequest.model_validate(body)
    runtime = app.state.runtime
    # The first run took the key and then stalled before recording its conversation (or its server died there).
    slow = await idempotency.claim(
        runtime, Identity.user(me).stream_id, key, idempotency.fingerprint(request.fingerprint_source())
    )
    # Twelve seconds pass: past the deadline twice plus 5 s, far sooner than the minute a retry used to wait.
    await session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(seconds=12)))
    await session.commit()

    retried = await client.post(URL, json=body, headers={**auth(me), "Idempotency-Key": key})
    assert retried.status_code == 200, retried.text

    # The stalled run wakes up and tries to record its group: the key is no longer its own, so nothing is made.
    stale = idempotency.Claim(slow.caller, slow.key, slow.claimed_at - timedelta(seconds=12))
    with pytest.raises(Conflict):
        await create_conversation(runtime, me, request, bind=stale.bind)
    assert await session.scalar(select(func.count()).select_from(Conversation)) == 1, "one group, not two"
    assert emulator.channel_count() == 1


class TestLargeGroups:
    """A large group's upserts and member batches go to Stream several at a time, not one after another."""

    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url, provision_deadline_s=10.0)

    async def test_a_group_of_450_sends_its_batches_concurrently(self, client, session, emulator):
        me = await add_user(session, "Amr")
        others = await add_users(session, 449)
        emulator.faults.set_latency(100)  # each call takes a while: sequential calls never overlap
        body = {"conversation_type": "group", "participant_ids": others, "name": "Whole crew"}

        response = await client.post(URL, json=body, headers=auth(me))

        assert response.status_code == 200, response.text
        assert len(emulator.get_channel("messaging", response.json()["data"]["id"])["members"]) == 450
        assert emulator.count("UpdateUsers") == 5 and emulator.count("UpdateChannel") == 4
        assert emulator.max_in_flight >= 2, "the batches overlapped"


async def test_a_profile_sent_in_a_call_with_no_answer_is_sent_again_by_the_worker(client, session, app, emulator):
    from onecrew_chat.db import unit_of_work
    from onecrew_chat.models import OutboxMessage, StreamIdentity, User
    from onecrew_chat.stream.errors import StreamError
    from onecrew_chat.sync.deadline import Deadline
    from onecrew_chat.sync.mirror import read_identities
    from onecrew_chat.sync.mirror_record import record

    runtime = app.state.runtime
    user = await add_user(session, "Old Name")
    identity = Identity.user(user)
    assert (await client.post("/api/chat/token", headers=auth(user))).status_code == 200
    await identities_sent(app)
    await session.execute(update(User).where(User.id == user).values(name="New Name", updated_at=utcnow()))
    await session.commit()
    async with unit_of_work(runtime.sessionmaker) as db:
        batch = await read_identities(db, [identity])
    # Stream applies the partial update, but its answer never comes: what Stream holds is unknown to us.
    emulator.faults.timeout_after_write("UpdateUsersPartial", count=5, hold_s=30)
    with pytest.raises(StreamError):
        await batch.update(runtime.stream, [batch.profile(identity)], Deadline(1.5))
    async with unit_of_work(runtime.sessionmaker) as db:
        await record(db, batch)

    session.expire_all()
    row = await session.get(StreamIdentity, identity.stream_id)
    assert row.profile_hash == "stale", "the mirror no longer claims to know what Stream holds"
    queued = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "identity.sync")
    )
    assert queued == 1, "the worker sends the newest profile again"
    emulator.faults.reset()
    await drain_outbox(runtime)
    assert emulator.get_user(identity.stream_id)["name"] == "New Name"
