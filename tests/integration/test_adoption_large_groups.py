"""Groups of more than 100 members: Stream's QueryChannels lists 100, adoption pages the rest (both databases).

Afterwards the group answers GET and prepare, counts in every member's unread count as Stream counts it, and a
group skipped by an earlier run ("Stream listed 100 of its N members") is adopted by --retry-skipped.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from onecrew_chat.models import Conversation
from onecrew_chat.sync.cutover import run as adoption_run
from onecrew_chat.sync.cutover.run import import_channels
from tests.factories import add_users
from tests.old_backend import OldChannel, seed_channel, stream_unread_channels, stream_user
from tests.support import auth


async def seed_group(session, emulator, channel_id: str, size: int) -> list[str]:
    """A group of `size` directory users in Stream; half of them read up to the last message, the rest not."""
    ids = await add_users(session, size, prefix=channel_id)
    members = [f"onecrew_user_{i}" for i in ids]
    for member in members:
        stream_user(emulator, member, "x")
    messages = [(members[0], "kick-off", 600), (members[-1], "last words", 100)]
    reads = {m: 50 for m in members[::2]}  # every other member read everything (the last member included or not)
    seed_channel(emulator, OldChannel(channel_id, members, messages, reads=reads, name=channel_id, age_s=3600))
    return ids


async def group(session, channel_id: str) -> Conversation | None:
    return await session.scalar(
        select(Conversation)
        .where(Conversation.channel_id == channel_id)
        .options(selectinload(Conversation.participants))
        .execution_options(populate_existing=True)
    )


async def unread(client, user_id: str) -> int:
    response = await client.get("/api/chat/conversations/unread-count?profile_type=user", headers=auth(user_id))
    assert response.status_code == 200, response.text
    return response.json()["data"]["unread_count"]


async def test_groups_of_150_and_1000_members_are_adopted_with_every_member(app, client, session, emulator):
    runtime = app.state.runtime
    mid = await seed_group(session, emulator, "group-old-150", 150)
    big = await seed_group(session, emulator, "group-old-1000", 1000)

    report = await import_channels(runtime)

    assert {g["channel_id"]: g["members"] for g in report.groups} == {"group-old-150": 150, "group-old-1000": 1000}
    assert report.skipped == []
    for channel_id, ids in (("group-old-150", mid), ("group-old-1000", big)):
        row = await group(session, channel_id)
        assert row is not None and {p.participant_id for p in row.participants} == set(ids)
    # Members beyond the first 100 Stream lists: GET, prepare and unread counts as for any other member.
    for channel_id, user_id in (("group-old-150", mid[149]), ("group-old-150", mid[0]), ("group-old-1000", big[999])):
        response = await client.get(f"/api/chat/conversations/{channel_id}", headers=auth(user_id))
        assert response.status_code == 200, response.text
    for user_id in (mid[0], mid[149], mid[120], big[999], big[500], big[101]):
        stream_id = f"onecrew_user_{user_id}"
        assert await unread(client, user_id) == stream_unread_channels(emulator, stream_id), user_id
    prepared = await client.post("/api/chat/conversations/group-old-1000/prepare", headers=auth(big[999]))
    assert prepared.status_code == 200, prepared.text


async def test_retry_skipped_adopts_a_group_an_earlier_run_cut_short(app, session, emulator, monkeypatch):
    runtime = app.state.runtime
    ids = await seed_group(session, emulator, "group-old-150", 150)

    async def earlier_version(*_args, **_kwargs) -> int:  # what runs before this change did: no member paging
        return 0

    monkeypatch.setattr(adoption_run, "complete_members", earlier_version)
    first = await import_channels(runtime)
    assert [s["reason"] for s in first.skipped] == ["Stream listed 100 of its 150 members"]
    monkeypatch.undo()

    assert (await import_channels(runtime)).groups == [], "a skipped channel stays skipped without --retry-skipped"
    again = await import_channels(runtime, retry_skipped=True)
    assert [(g["channel_id"], g["members"]) for g in again.groups] == [("group-old-150", 150)]
    row = await group(session, "group-old-150")
    assert row is not None and {p.participant_id for p in row.participants} == set(ids)
