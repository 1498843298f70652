"""`sync identities` against the emulator: exactly the missing or stale identities, 100 per call, resumable."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from onecrew_chat.db import upgrade_database
from onecrew_chat.identity import Identity
from onecrew_chat.models import StreamIdentity, User
from onecrew_chat.runtime import build_runtime
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import StreamBatchError, StreamRequestError
from onecrew_chat.sync.mirror_record import sync_identities
from onecrew_chat.sync.reconcile.backfill import backfill_identities
from tests.conftest import make_settings
from tests.factories import add_company, add_users
from tests.integration.test_cli import run, stream_env


async def directory(runtime, users: int, companies: int) -> list[Identity]:
    """Directory users and companies, none in Stream yet."""
    async with runtime.sessionmaker() as session:
        identities = [Identity.user(i) for i in await add_users(session, users)]
        for n in range(companies):
            identities.append(Identity.company(await add_company(session, f"Company {n}")))
    return identities


# The HTTP timeout is not the subject: generous, so that a loaded machine rarely retries a slow call.
@pytest.mark.app_settings(stream_timeout_s=10.0)
async def test_backfill_sends_exactly_what_stream_lacks_100_per_call_and_then_nothing(runtime, emulator):
    everyone = await directory(runtime, 236, 14)
    known, renamed = everyone[:10], everyone[0]
    async with runtime.sessionmaker() as session:
        await sync_identities(runtime.sessionmaker, runtime.stream, known)
        await session.commit()
        await session.execute(update(User).where(User.id == renamed.entity_id).values(name="Amr Renamed"))
        await session.commit()
    emulator.clear_requests()

    report = await backfill_identities(runtime)

    assert (report.scanned, report.fresh, report.missing, report.stale) == (250, 9, 240, 1)
    assert (report.upserted, report.updated, report.refused) == (240, 1, [])
    # 240 new identities at 100 per call: 3 calls, and 1 partial update for the renamed one. A call slower than
    # the HTTP timeout on a loaded machine is sent again (correctly): a budget of one such retry per kind.
    assert 3 <= emulator.count("UpdateUsers") <= 4, emulator.count("UpdateUsers")
    assert 1 <= emulator.count("UpdateUsersPartial") <= 2, emulator.count("UpdateUsersPartial")
    assert emulator.count() == emulator.count("UpdateUsers") + emulator.count("UpdateUsersPartial")
    assert emulator.user_ids() == {i.stream_id for i in everyone}
    assert emulator.get_user(renamed.stream_id)["name"] == "Amr Renamed"
    company = emulator.get_user(everyone[-1].stream_id)
    assert company["onecrew_kind"] == "company" and company["role"] == "user"
    async with runtime.sessionmaker() as session:
        assert set(await session.scalars(select(StreamIdentity.stream_id))) == {i.stream_id for i in everyone}

    emulator.clear_requests()
    again = await backfill_identities(runtime)
    assert (again.fresh, again.sent, emulator.count()) == (250, 0, 0)


async def test_a_dry_run_only_counts(sqlite_runtime, emulator):
    await directory(sqlite_runtime, 3, 1)
    report = await backfill_identities(sqlite_runtime, dry_run=True)
    assert (report.missing, report.sent, emulator.count()) == (4, 0, 0)
    async with sqlite_runtime.sessionmaker() as session:
        assert list(await session.scalars(select(StreamIdentity))) == []


class FailingGateway(StreamGateway):
    """The real gateway, except that Stream refuses any batch holding `failing`, without naming it."""

    failing = ""

    async def upsert_users(self, users):
        if any(user.id == self.failing for user in users):
            raise StreamRequestError("Stream is refusing upserts", operation="UpdateUsers", status=400)
        await super().upsert_users(users)


async def test_a_stopped_run_is_finished_by_the_next_and_a_429_is_waited_out(
    sqlite_only_url, emulator, emulator_server
):
    settings = make_settings(sqlite_only_url, emulator_server.base_url, stream_timeout_s=10.0)
    runtime = build_runtime(settings, stream=FailingGateway.from_settings(settings))
    try:
        everyone = await directory(runtime, 120, 0)
        runtime.stream.failing = everyone[0].stream_id
        with pytest.raises(StreamRequestError):
            await backfill_identities(runtime, batch=50)
        # The batches started before the refusal, other than the refused one, were accepted and mirrored (the
        # refused batch holds 50 or 20 ids; the last one is not started when the refusal came first).
        first = len(emulator.user_ids())
        assert first in (50, 70, 100)

        runtime.stream.failing = ""
        emulator.faults.rate_limit_burst("UpdateUsers", count=1, reset_in_s=0.2)
        emulator.clear_requests()
        report = await backfill_identities(runtime, batch=50)
        assert (report.fresh, report.upserted) == (first, 120 - first)
        # One batch, sent again after the 429's reset (and a budget of one retry for a slow machine).
        assert emulator.count("UpdateUsers") <= 3, emulator.count("UpdateUsers")
        assert emulator.user_ids() == {i.stream_id for i in everyone}
    finally:
        await runtime.close()


class CountingGateway(StreamGateway):
    """The real gateway, noting the most upserts it had in flight at once."""

    in_flight = 0
    most_in_flight = 0

    async def upsert_users(self, users):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await super().upsert_users(users)
        finally:
            self.in_flight -= 1


@pytest.mark.app_settings(stream_timeout_s=10.0)
async def test_with_streams_limits_enforced_calls_overlap_and_every_identity_is_sent_once(
    sqlite_only_url, limited, emulator_server
):
    limited.faults.set_latency(100)  # a round trip long enough that one call at a time would waste Stream's limit
    settings = make_settings(sqlite_only_url, emulator_server.base_url, stream_timeout_s=10.0)
    runtime = build_runtime(settings, stream=CountingGateway.from_settings(settings))
    try:
        everyone = await directory(runtime, 2_400, 0)
        report = await backfill_identities(runtime)
        assert (report.upserted, report.refused) == (2_400, [])
        # 24 calls of 100 against Stream's 10 a second: paced by its headers, so no 429 nor a call sent twice
        # (a budget of one retry for a loaded machine).
        assert limited.count("UpdateUsers") <= 25, limited.count("UpdateUsers")
        assert runtime.stream.most_in_flight > 1
        assert limited.user_ids() == {i.stream_id for i in everyone}
        async with runtime.sessionmaker() as session:
            mirrored = set(await session.scalars(select(StreamIdentity.stream_id)))
        assert mirrored == {i.stream_id for i in everyone}
        again = await backfill_identities(runtime)
        assert (again.fresh, again.sent) == (2_400, 0)
    finally:
        await runtime.close()


class RefusingGateway(StreamGateway):
    """The real gateway, except that Stream refuses any batch holding `refused` and names it (as it may)."""

    refused = ""

    async def upsert_users(self, users):
        if any(user.id == self.refused for user in users):
            raise StreamBatchError("user refused", operation="UpdateUsers", status=400, code=4, bad_id=self.refused)
        await super().upsert_users(users)


async def test_an_id_stream_refuses_is_left_out_and_its_batch_still_sent(sqlite_only_url, emulator, emulator_server):
    settings = make_settings(sqlite_only_url, emulator_server.base_url)
    runtime = build_runtime(settings, stream=RefusingGateway.from_settings(settings))
    try:
        everyone = await directory(runtime, 5, 0)
        runtime.stream.refused = everyone[2].stream_id
        report = await backfill_identities(runtime)
        assert (report.upserted, report.refused) == (4, [everyone[2].stream_id])
        assert emulator.user_ids() == {i.stream_id for i in everyone} - {everyone[2].stream_id}
    finally:
        await runtime.close()


def test_sync_identities_command(tmp_path, emulator, emulator_server):
    url = f"sqlite:///{tmp_path}/prod.sqlite3"
    upgrade_database(url)

    async def arrange() -> None:
        rt = build_runtime(make_settings(url, emulator_server.base_url))
        try:
            await directory(rt, 3, 2)
        finally:
            await rt.close()

    asyncio.run(arrange())
    env = {"DATABASE_URL": url, **stream_env(emulator_server)}
    dry = run(tmp_path, "sync", "identities", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert "5 missing" in dry.stdout and "nothing was sent" in dry.stdout and emulator.count() == 0

    done = run(tmp_path, "sync", "identities", "--batch", "2", **env)
    assert done.returncode == 0, done.stderr
    assert "Upserted 5, updated 0 with 3 Stream calls" in done.stdout
    assert len(emulator.user_ids()) == 5
