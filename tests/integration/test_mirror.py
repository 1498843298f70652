"""The identity mirror against the emulator: only missing or stale identities are sent, in batches of 100."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from onecrew_chat.db import unit_of_work
from onecrew_chat.errors import UnknownIdentity
from onecrew_chat.identity import Identity
from onecrew_chat.models import Company, StreamIdentity, User
from onecrew_chat.stream.client import StreamUser
from onecrew_chat.stream.errors import StreamBatchError
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import IdentityBatch, read_identities
from onecrew_chat.sync.mirror_record import record, sync_identities
from onecrew_chat.sync.participants import Profile
from tests.factories import add_company, add_user, add_users
from tests.support import new_id


@pytest.fixture
def stream(app):
    """The app's Stream gateway (pointed at the emulator)."""
    return app.state.runtime.stream


@pytest.fixture
def sessionmaker(app):
    """The app's unit-of-work factory."""
    return app.state.runtime.sessionmaker


async def repair(sessionmaker, stream, identities: list[Identity]) -> None:
    """Re-upsert these identities as a channel call's repair does: read, call, record."""
    async with unit_of_work(sessionmaker) as session:
        batch = await read_identities(session, identities)
    await batch.repair(stream, [i.stream_id for i in identities], Deadline(15.0))
    async with unit_of_work(sessionmaker) as session:
        await record(session, batch)


async def test_only_missing_identities_are_upserted_and_then_nothing(session, sessionmaker, stream, emulator):
    users = [Identity.user(i) for i in await add_users(session, 3)]
    company = Identity.company(await add_company(session, "Studio"))

    assert await sync_identities(sessionmaker, stream, [*users, company]) == 4
    await session.commit()
    assert emulator.count("UpdateUsers") == 1
    assert await sync_identities(sessionmaker, stream, [*users, company]) == 0
    assert emulator.count() == 1, "a fresh mirror makes no call at all"

    stored = emulator.get_user(company.stream_id)
    assert stored["name"] == "Studio" and stored["role"] == "user" and stored["onecrew_kind"] == "company"
    assert stored["image"].startswith("https://logo.example/")
    rows = {row.stream_id: row for row in await session.scalars(select(StreamIdentity))}
    assert set(rows) == {i.stream_id for i in [*users, company]}
    assert not any(row.placeholder for row in rows.values())


async def test_more_than_a_hundred_identities_go_in_batches_of_at_most_a_hundred(
    session, sessionmaker, stream, emulator
):
    identities = [Identity.user(i) for i in await add_users(session, 250)]
    assert await sync_identities(sessionmaker, stream, identities) == 250
    assert emulator.count("UpdateUsers") == 3
    assert {i.stream_id for i in identities} <= emulator.user_ids()
    assert await session.scalar(select(func.count()).select_from(StreamIdentity)) == 250


async def test_a_changed_profile_is_a_partial_update_that_keeps_other_stream_fields(
    session, sessionmaker, stream, emulator
):
    user = Identity.user(await add_user(session, "Before", image_url="https://img.example/a.png"))
    await sync_identities(sessionmaker, stream, [user])
    await session.commit()
    # something else (the app's connectUser, a dashboard edit) stored a field we do not manage
    await stream.partial_update_users([(user.stream_id, {"teams_note": "kept"}, [])])
    await session.execute(update(User).where(User.id == user.entity_id).values(name="After", image_url=None))
    await session.commit()
    before = emulator.count("UpdateUsers")

    assert await sync_identities(sessionmaker, stream, [user]) == 1

    assert emulator.count("UpdateUsers") == before, "no full replace"
    stored = emulator.get_user(user.stream_id)
    assert stored["name"] == "After" and not stored.get("image") and stored["teams_note"] == "kept"
    assert await sync_identities(sessionmaker, stream, [user]) == 0


async def test_an_identity_stream_lost_is_upserted_again_on_repair(session, sessionmaker, stream, emulator):
    user = Identity.user(await add_user(session, "Lost"))
    await sync_identities(sessionmaker, stream, [user])
    await session.commit()
    with emulator.lock:
        del emulator.state.users[user.stream_id]  # deleted behind our back; the mirror still says fresh

    await repair(sessionmaker, stream, [user])

    assert emulator.get_user(user.stream_id)["name"] == "Lost"


async def test_unknown_identities_are_404_unless_placeholders_are_allowed(session, sessionmaker, stream, emulator):
    ghost = Identity.company(new_id())
    with pytest.raises(UnknownIdentity) as raised:
        await sync_identities(sessionmaker, stream, [ghost])
    assert ghost.entity_id in raised.value.message
    assert emulator.count() == 0


async def test_placeholders_never_overwrite_an_existing_stream_user_and_are_healed(
    session, sessionmaker, stream, emulator
):
    known_elsewhere, unknown = Identity.user(new_id()), Identity.company(new_id())
    await stream.upsert_users([StreamUser(id=known_elsewhere.stream_id, name="Real Name", image="https://x/y.png")])

    assert await sync_identities(sessionmaker, stream, [known_elsewhere, unknown], placeholder_ok=True) == 1
    await session.commit()

    assert emulator.get_user(known_elsewhere.stream_id)["name"] == "Real Name"
    placeholder = emulator.get_user(unknown.stream_id)
    assert placeholder["name"] == "OneCrew company" and placeholder["onecrew_placeholder"] is True
    rows = {row.stream_id: row for row in await session.scalars(select(StreamIdentity))}
    assert rows[unknown.stream_id].placeholder and rows[known_elsewhere.stream_id].placeholder
    assert await sync_identities(sessionmaker, stream, [known_elsewhere, unknown], placeholder_ok=True) == 0

    session.add(Company(id=unknown.entity_id, name="Arrived Co", logo_url=None, subcategory="studio"))
    await session.commit()
    assert await sync_identities(sessionmaker, stream, [unknown]) == 1
    healed = emulator.get_user(unknown.stream_id)
    assert healed["name"] == "Arrived Co" and "onecrew_placeholder" not in healed


async def test_a_refused_batch_names_the_bad_id_in_the_error_and_the_log(session, sessionmaker, stream, emulator):
    good = Profile(Identity.user(new_id()), "Good", None)

    @dataclasses.dataclass(frozen=True)
    class Malformed(Profile):  # a fake: an id Stream refuses, which our identities can never produce
        @property
        def stream_id(self) -> str:
            return "bad id!"

    bad = Malformed(Identity.user(new_id()), "Bad", None)
    with capture_logs() as logs, pytest.raises(StreamBatchError) as raised:
        await IdentityBatch({}, {}).upsert(stream, [good, bad], Deadline(15.0))
    assert raised.value.bad_id == "bad id!"
    assert "bad id!" in str(raised.value)
    failed = [entry for entry in logs if entry["event"] == "identities.upsert_failed"]
    assert failed and failed[0]["bad_id"] == "bad id!"
    assert emulator.get_user(good.stream_id) is None, "Stream refuses the whole batch"
    assert await session.scalar(select(func.count()).select_from(StreamIdentity)) == 0


async def test_a_stale_identity_stream_lost_is_upserted_instead_of_partially_updated(
    session, sessionmaker, stream, emulator
):
    kept, lost = Identity.user(await add_user(session, "Kept")), Identity.user(await add_user(session, "Lost"))
    await sync_identities(sessionmaker, stream, [kept, lost])
    await session.commit()
    with emulator.lock:
        del emulator.state.users[lost.stream_id]
    await session.execute(update(User).values(name="Renamed"))
    await session.commit()

    assert await sync_identities(sessionmaker, stream, [kept, lost]) == 2

    assert emulator.get_user(lost.stream_id)["name"] == "Renamed"
    assert emulator.get_user(kept.stream_id)["name"] == "Renamed"
    assert emulator.count("UpdateUsersPartial") == 2  # refused for the batch, then the survivor alone
    assert await sync_identities(sessionmaker, stream, [kept, lost]) == 0
