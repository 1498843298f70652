"""`import channels` against the emulator filled the way the old backend left Stream (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from onecrew_chat.identity import Identity, pair_key
from onecrew_chat.models import AdoptionChannel, Conversation
from onecrew_chat.sync.cutover import scan
from onecrew_chat.sync.cutover.run import Callbacks, import_channels
from tests.factories import add_user
from tests.old_backend import World, build_world, stream_unread_channels


async def world_in(runtime, emulator) -> World:
    async with runtime.sessionmaker() as session:
        return await build_world(session, emulator)


async def conversations(runtime) -> dict[str, Conversation]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(select(Conversation).options(selectinload(Conversation.participants)))
        return {c.channel_id: c for c in rows}


async def test_pairs_groups_duplicates_and_skips(runtime, emulator):
    w = await world_in(runtime, emulator)
    report = await import_channels(runtime)

    assert {p["channel_id"] for p in report.pairs} == {w.era1, w.era3, w.company_pair}
    assert [g["channel_id"] for g in report.groups] == [w.group]
    amr_sat = pair_key(Identity.user(w.amr), Identity.company(w.sat))
    assert report.duplicate_pairs() == {amr_sat: {"adopted": w.era3, "others": [w.era2]}}
    skipped = {s["channel_id"]: s["reason"] for s in report.skipped}
    assert set(skipped) == {w.stranger, w.broken}
    assert skipped[w.stranger].startswith("members unknown to the directory: onecrew_user_00000000-")
    assert skipped[w.broken] == "members that are not OneCrew Stream ids: 0, 1"

    rows = await conversations(runtime)
    assert set(rows) == {w.era1, w.era3, w.era2, w.company_pair, w.group}
    assert (
        rows[w.era3].pair_key == amr_sat and rows[w.era2].pair_key is None
    )  # the duplicate is readable, not the pair's
    assert (
        rows[w.era3].conversation_type == "user_company" and rows[w.company_pair].conversation_type == "company_company"
    )
    assert rows[w.group].name == "Crew" and len(rows[w.group].participants) == 3
    assert rows[w.era3].last_message_preview == "Thanks!"
    assert all(c.chat_status == "ready" and c.stream_verified_at is not None for c in rows.values())


async def test_unread_markers_match_stream(runtime, emulator):
    w = await world_in(runtime, emulator)
    await import_channels(runtime)
    rows = await conversations(runtime)
    for kind, entity_id in (
        ("user", w.amr),
        ("user", w.mona),
        ("user", w.nour),
        ("company", w.sat),
        ("company", w.lolo),
    ):
        ours = sum(
            1
            for c in rows.values()
            for p in c.participants
            if (p.participant_type, p.participant_id) == (kind, entity_id)
            and c.last_message_at is not None
            and (p.last_read_at is None or c.last_message_at > p.last_read_at)
        )
        assert ours == stream_unread_channels(emulator, f"onecrew_{kind}_{entity_id}"), (kind, entity_id)


async def test_damaged_identities_are_repaired_with_role_user(runtime, emulator):
    w = await world_in(runtime, emulator)
    report = await import_channels(runtime)
    assert {r["stream_id"]: r["problem"] for r in report.repaired} == {
        f"onecrew_company_{w.sat}": "role admin",
        f"onecrew_company_{w.lolo}": "role admin",
        f"onecrew_user_{w.mona}": 'placeholder named "User"',
    }
    for stream_id in (f"onecrew_company_{w.sat}", f"onecrew_company_{w.lolo}", f"onecrew_user_{w.mona}"):
        assert emulator.get_user(stream_id)["role"] == "user"
    assert emulator.get_user(f"onecrew_user_{w.mona}")["name"] == "Mona"
    assert emulator.get_user(f"onecrew_company_{w.sat}")["name"] == "Sat Education"


async def test_dry_run_changes_nothing_and_a_second_run_nothing_more(runtime, emulator):
    w = await world_in(runtime, emulator)
    dry = await import_channels(runtime, dry_run=True)
    assert len(dry.pairs) == 3 and dry.duplicate_pairs() and len(dry.skipped) == 2
    assert await conversations(runtime) == {}
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AdoptionChannel)) == 0
    assert emulator.get_user(f"onecrew_company_{w.sat}")["role"] == "admin", "a dry run sends nothing"
    assert emulator.count("UpdateUsers") == 0

    first = await import_channels(runtime)
    emulator.clear_requests()
    second = await import_channels(runtime)
    assert (second.pairs, second.groups, second.skipped, second.repaired) == ([], [], [], [])
    assert second.decided_before == {"pair": 3, "group": 1, "duplicate": 1, "skipped": 2}
    assert emulator.count("QueryChannels") == 1 and emulator.count() == 1, "one page from the cursor, nothing sent"
    assert len(await conversations(runtime)) == 5 and len(first.pairs) == 3


class Interrupted(Exception):
    pass


async def test_an_interrupted_run_resumes_where_it_stopped(runtime, emulator, monkeypatch):
    w = await world_in(runtime, emulator)

    def stop_after_two_pages(pages: int, _new: int) -> None:
        if pages == 2:
            raise Interrupted

    # Pages of 2 channels: the run stops after reading 4 of the 7 channels.
    original = scan.scan_channels

    async def small_pages(*args, **kwargs):
        return await original(*args, **{**kwargs, "page_size": 2})

    monkeypatch.setattr("onecrew_chat.sync.cutover.run.scan_channels", small_pages)
    with pytest.raises(Interrupted):
        await import_channels(runtime, callbacks=Callbacks(on_page=stop_after_two_pages))
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AdoptionChannel)) == 4
    emulator.clear_requests()

    report = await import_channels(runtime)
    assert report.channels_read == 3 and emulator.count("QueryChannels") == 2, "the first two pages are not read again"
    assert len(await conversations(runtime)) == 5
    assert {p["channel_id"] for p in report.pairs} == {w.era1, w.era3, w.company_pair}


async def test_retry_skipped_adopts_a_channel_once_the_directory_knows_its_members(runtime, emulator):
    w = await world_in(runtime, emulator)
    await import_channels(runtime)
    async with runtime.sessionmaker() as session:
        await add_user(session, "Late", user_id="00000000-0000-4000-8000-000000000001")
    plain = await import_channels(runtime)
    assert plain.pairs == [], "skipped channels stay skipped without --retry-skipped"
    again = await import_channels(runtime, retry_skipped=True)
    assert [p["channel_id"] for p in again.pairs] == [w.stranger]
    assert [s["channel_id"] for s in again.skipped] == [w.broken] and again.reopened == 2


async def test_a_429_waits_for_streams_reset_and_the_run_completes(runtime, emulator):
    w = await world_in(runtime, emulator)
    emulator.faults.rate_limit_burst("QueryChannels", count=2, reset_in_s=1.0)
    report = await import_channels(runtime)
    assert {p["channel_id"] for p in report.pairs} == {w.era1, w.era3, w.company_pair}
    # Two refused with 429, then the page after the reset (and a budget of one retry for a loaded machine).
    assert 3 <= emulator.count("QueryChannels") <= 4, emulator.count("QueryChannels")
