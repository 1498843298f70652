"""The reconciler against the emulator: drift made behind our back is found, repaired through the worker, and gone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from stream_chat import StreamChat

from onecrew_chat.composition import build_jobs, run_worker
from onecrew_chat.config import to_async_url
from onecrew_chat.db import unit_of_work, upgrade_database, utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.models import ChannelDrift, Conversation, JobLease, OutboxMessage, StreamIdentity
from onecrew_chat.outbox import worker
from onecrew_chat.runtime import build_runtime
from onecrew_chat.sync.channels import finish, load_conversation, provision_deadline
from onecrew_chat.sync.reconcile.run import LEASE, reconcile, run_lock
from tests.api.conversation_rows import add_conversation
from tests.conftest import make_settings
from tests.factories import add_company, add_users
from tests.integration.test_cli import run, stream_env
from tests.support import STREAM_KEY, STREAM_SECRET, wait_until


@pytest.fixture
def sdk(emulator_server):
    """Stream's own Python SDK, to change Stream behind the service's back."""
    return StreamChat(STREAM_KEY, STREAM_SECRET, base_url=emulator_server.base_url)


async def provisioned(runtime, *members: Identity) -> Conversation:
    """A ready conversation whose channel Stream holds with every member (the first member creates it)."""
    async with runtime.sessionmaker() as session:
        conversation = await add_conversation(session, *members, chat_status="provisioning", verified=False)
    await finish(runtime, conversation.id, deadline=provision_deadline(15.0), placeholder_ok=False)
    async with unit_of_work(runtime.sessionmaker) as session:
        return await load_conversation(session, conversation.id)


async def users(runtime, count: int) -> list[Identity]:
    """Directory users (not in Stream yet)."""
    async with runtime.sessionmaker() as session:
        return [Identity.user(i) for i in await add_users(session, count)]


async def drain(runtime) -> None:
    """Run the outbox worker until nothing is due."""
    while await worker.run_once(runtime, build_jobs(runtime.settings)):
        pass


async def rows(runtime, model, *where) -> list:
    """Fresh rows of a table."""
    async with runtime.sessionmaker() as session:
        return list(await session.scalars(select(model).where(*where)))


async def test_drift_is_found_repaired_by_the_worker_and_then_gone(runtime, emulator, sdk):
    amr, mona, nour, youssef, karim = await users(runtime, 5)
    async with runtime.sessionmaker() as session:
        academy = Identity.company(await add_company(session, "Sat Education"))
    pair = await provisioned(runtime, amr, mona)
    group = await provisioned(runtime, amr, nour, academy)
    other = await provisioned(runtime, youssef, karim)
    clean = await reconcile(runtime, repair=False)
    assert (clean.total_drift, clean.identities_checked, clean.conversations_checked) == (0, 6, 3)

    sdk.delete_user(mona.stream_id, hard_delete="true")  # Stream drops her memberships too
    sdk.channel("messaging", group.channel_id).delete()
    sdk.channel("messaging", other.channel_id).remove_members([karim.stream_id])
    emulator.clear_requests()
    mirror_before = {r.stream_id: r.synced_at for r in await rows(runtime, StreamIdentity)}

    found = await reconcile(runtime, repair=False)
    assert found.drift == {"identity_missing": 1, "profile_stale": 0, "channel_missing": 1, "member_missing": 2}
    assert found.examples["identity_missing"] == [mona.stream_id]
    assert found.examples["channel_missing"] == [group.channel_id]
    assert sorted(found.examples["member_missing"]) == sorted(
        [f"{pair.channel_id}:{mona.stream_id}", f"{other.channel_id}:{karim.stream_id}"]
    )
    assert (emulator.count("QueryUsers"), emulator.count("QueryChannels"), emulator.count()) == (1, 1, 2)
    # report only: nothing changed here or in Stream
    assert {r.stream_id: r.synced_at for r in await rows(runtime, StreamIdentity)} == mirror_before
    assert await rows(runtime, OutboxMessage) == []
    assert all(c.stream_verified_at for c in await rows(runtime, Conversation))
    assert emulator.get_user(mona.stream_id) is None and emulator.get_channel("messaging", group.channel_id) is None

    repaired = await reconcile(runtime, repair=True)
    assert repaired.total_drift == 4 and (repaired.identity_syncs_queued, repaired.provisions_queued) == (1, 3)
    assert mona.stream_id not in {r.stream_id for r in await rows(runtime, StreamIdentity)}
    await drain(runtime)

    assert emulator.get_user(mona.stream_id)["name"] == "User 1"
    assert sorted(emulator.get_channel("messaging", pair.channel_id)["members"]) == sorted(
        [amr.stream_id, mona.stream_id]
    )
    assert sorted(emulator.get_channel("messaging", group.channel_id)["members"]) == sorted(
        [amr.stream_id, nour.stream_id, academy.stream_id]
    )
    assert emulator.get_channel("messaging", group.channel_id)["created_by_id"] == amr.stream_id
    assert karim.stream_id in emulator.get_channel("messaging", other.channel_id)["members"]
    assert all(c.chat_status == "ready" and c.stream_verified_at for c in await rows(runtime, Conversation))
    assert {r.status for r in await rows(runtime, OutboxMessage)} == {"done"}

    again = await reconcile(runtime, repair=True)
    assert (again.total_drift, again.identity_syncs_queued, again.provisions_queued) == (0, 0, 0)
    assert (again.identities_checked, again.conversations_checked) == (6, 3)


async def test_webhook_drift_rows_are_resolved_once_stream_agrees(sqlite_runtime, sdk):
    runtime = sqlite_runtime
    a, b, c, d = await users(runtime, 4)
    broken = await provisioned(runtime, a, b)
    intact = await provisioned(runtime, c, d)
    sdk.channel("messaging", broken.channel_id).remove_members([b.stream_id])
    async with unit_of_work(runtime.sessionmaker) as session:
        session.add_all(
            [
                ChannelDrift(
                    channel_type="messaging",
                    channel_id=broken.channel_id,
                    kind="member_removed",
                    detail={"stream_id": b.stream_id},
                ),
                ChannelDrift(
                    channel_type="messaging", channel_id=intact.channel_id, kind="channel_deleted", detail={}
                ),  # since re-created
                ChannelDrift(
                    channel_type="messaging", channel_id="gone-0123", kind="channel_deleted", detail={}
                ),  # not ours any more
            ]
        )

    looked = await reconcile(runtime, repair=False)
    assert (looked.webhook_drift_open, looked.webhook_drift_agreeing, looked.drift["member_missing"]) == (3, 2, 1)
    assert all(r.resolved_at is None for r in await rows(runtime, ChannelDrift)), "a report changes nothing"

    first = await reconcile(runtime, repair=True)
    assert (first.webhook_drift_agreeing, first.provisions_queued) == (2, 1)
    open_rows = await rows(runtime, ChannelDrift, ChannelDrift.resolved_at.is_(None))
    assert [r.channel_id for r in open_rows] == [broken.channel_id], "Stream still lacks the member"
    assert first.conversations_checked == 2, "each channel is compared once per run"

    await drain(runtime)
    second = await reconcile(runtime, repair=True)
    assert (second.webhook_drift_open, second.webhook_drift_agreeing, second.total_drift) == (1, 1, 0)
    assert await rows(runtime, ChannelDrift, ChannelDrift.resolved_at.is_(None)) == []


async def test_a_group_of_150_members_is_verified_and_a_lost_member_found(sqlite_runtime, emulator):
    runtime = sqlite_runtime
    members = await users(runtime, 150)
    group = await provisioned(runtime, *members)  # Stream lists only the first 100 members of a channel
    report = await reconcile(runtime, repair=True)
    assert (report.total_drift, report.unverified, report.provisions_queued) == (0, 0, 0), "verified in full"
    assert emulator.count("QueryMembers") >= 1

    lost = members[-1].stream_id
    with emulator.lock:
        del emulator.state.channels[f"messaging:{group.channel_id}"].members[lost]
    found = await reconcile(runtime, repair=True)
    assert (found.drift["member_missing"], found.provisions_queued) == (1, 1)
    await drain(runtime)
    assert lost in emulator.get_channel("messaging", group.channel_id)["members"]
    assert (await reconcile(runtime, repair=False)).total_drift == 0


async def test_a_run_stops_at_its_budget_and_the_next_one_goes_on(sqlite_runtime, emulator):
    runtime = sqlite_runtime
    async with unit_of_work(runtime.sessionmaker) as session:
        session.add_all(
            StreamIdentity(
                stream_id=i.stream_id, kind="user", entity_id=i.entity_id, profile_hash="x", synced_at=utcnow()
            )
            for i in [Identity.user(f"00000000-0000-4000-8000-{n:012d}") for n in range(150)]
        )
    first = await reconcile(runtime, repair=False, max_calls=1)
    assert (first.stopped_early, first.identities_checked, first.drift["identity_missing"]) == ("call budget", 100, 100)
    assert emulator.count() == 1
    second = await reconcile(runtime, repair=False, resume=first.resume)
    assert (second.stopped_early, second.identities_checked) == (None, 50)

    emulator.faults.set_latency(400)
    slow = await reconcile(runtime, repair=False, deadline_s=0.2)
    assert (slow.stopped_early, slow.identities_checked, slow.resume) == ("deadline", 0, ("identities", ""))


async def test_one_process_reconciles_at_a_time_and_holds_no_lock_while_it_runs(
    database_url, emulator, emulator_server
):
    runtime = build_runtime(make_settings(database_url, emulator_server.base_url))
    try:
        async with run_lock(runtime.sessionmaker, hold_s=60) as mine:  # another process's run, in progress
            assert mine
            busy = await reconcile(runtime, repair=True)
            assert busy.skipped and emulator.count() == 0
            # Nothing is locked meanwhile: the lease row can be read and written by anyone.
            async with unit_of_work(runtime.sessionmaker) as session:
                assert (await session.get(JobLease, LEASE)).token is not None
        [someone] = await users(runtime, 1)
        async with unit_of_work(runtime.sessionmaker) as session:
            session.add(
                StreamIdentity(stream_id=someone.stream_id, kind="user", entity_id=someone.entity_id, profile_hash="x")
            )
        free = await reconcile(runtime, repair=False)
        assert not free.skipped and free.identities_checked == 1 and emulator.count("QueryUsers") == 1
    finally:
        await runtime.close()


async def test_the_worker_reconciles_and_repairs_on_its_interval(sqlite_only_url, emulator, emulator_server, sdk):
    runtime = build_runtime(
        make_settings(sqlite_only_url, emulator_server.base_url, reconcile_interval_s=0.05, worker_poll_s=5)
    )
    try:
        a, b = await users(runtime, 2)
        conversation = await provisioned(runtime, a, b)
        sdk.channel("messaging", conversation.channel_id).delete()
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(runtime, stop))
        await wait_until(
            lambda: emulator.get_channel("messaging", conversation.channel_id) is not None, what="re-created channel"
        )
        stop.set()
        await asyncio.wait_for(task, 30)
        assert sorted(emulator.get_channel("messaging", conversation.channel_id)["members"]) == sorted(
            [a.stream_id, b.stream_id]
        )
    finally:
        await runtime.close()


def test_reconcile_command_reports_then_repairs(tmp_path, emulator, emulator_server, sdk):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)

    async def arrange() -> str:
        rt = build_runtime(make_settings(url, emulator_server.base_url))
        try:
            a, b = await users(rt, 2)
            conversation = await provisioned(rt, a, b)
            return conversation.channel_id
        finally:
            await rt.close()

    channel_id = asyncio.run(arrange())
    sdk.channel("messaging", channel_id).delete()
    env = {"DATABASE_URL": url, **stream_env(emulator_server)}

    report = run(tmp_path, "reconcile", **env)
    assert report.returncode == 0, report.stderr
    assert "channel_missing" in report.stdout and channel_id in report.stdout
    assert "Report only: nothing was changed" in report.stdout

    repair = run(tmp_path, "reconcile", "--repair", "--limit", "10", **env)
    assert repair.returncode == 0, repair.stderr
    assert "queued 0 identity syncs and 1 provisioning;" in repair.stdout
    queued = asyncio.run(_count_outbox(url))
    assert queued == 1


async def _count_outbox(url: str) -> int:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.scalar(select(func.count()).select_from(OutboxMessage))
    finally:
        await engine.dispose()
