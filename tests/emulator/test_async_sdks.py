"""The async SDKs (getstream AsyncStream, stream-chat StreamChatAsync) over the same server."""

from __future__ import annotations

import pytest
from getstream.base import StreamApiException
from getstream.models import (
    ChannelInput,
    ChannelMemberRequest,
    MessageRequest,
    QueryMembersPayload,
    QueryUsersPayload,
    UpdateUserPartialRequest,
    UserRequest,
)
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import operations as op


def members(*ids: str) -> list[ChannelMemberRequest]:
    return [ChannelMemberRequest(user_id=i) for i in ids]


async def test_async_getstream_covers_the_hot_path(ags, emu):
    upserted = await ags.upsert_users(UserRequest(id="ann", custom={"k": "v"}), UserRequest(id="bob"))
    assert upserted.data.users["ann"].custom == {"k": "v"}
    channel = ags.chat.channel("messaging", "async-1")
    state = await channel.get_or_create(data=ChannelInput(created_by_id="ann", members=members("ann", "bob")))
    assert [m.user_id for m in state.data.members] == ["ann", "bob"]
    await ags.upsert_users(UserRequest(id="cat"))
    updated = await channel.update(add_members=members("cat"), remove_members=["bob"])
    assert [m.user_id for m in updated.data.members] == ["ann", "cat"]
    sent = await channel.send_message(message=MessageRequest(text="hey", user_id="ann"))
    assert sent.data.message.text == "hey"
    assert (await ags.chat.unread_counts(user_id="cat")).data.total_unread_count == 1
    await channel.mark_read(user_id="cat")
    assert (await ags.chat.unread_counts(user_id="cat")).data.total_unread_count == 0
    partial = await ags.update_users_partial(users=[UpdateUserPartialRequest(id="ann", set={"name": "Ann"})])
    assert partial.data.users["ann"].name == "Ann"
    found = await ags.query_users(QueryUsersPayload(filter_conditions={"id": {"$in": ["ann"]}}))
    assert [u.id for u in found.data.users] == ["ann"]
    queried = await ags.chat.query_channels(filter_conditions={"members": {"$in": ["cat"]}})
    assert [c.channel.id for c in queried.data.channels] == ["async-1"]
    membership = await ags.chat.query_members(QueryMembersPayload(type="messaging", id="async-1", filter_conditions={}))
    assert [m.user_id for m in membership.data.members] == ["ann", "cat"]
    await channel.update_channel_partial(set={"topic": "t"})
    task = (await ags.deactivate_users(user_ids=["bob"])).data.task_id
    assert (await ags.get_task(task)).data.status == "completed"
    assert (await ags.get_app()).data.app.name == "stream-emulator"
    deleted = await channel.delete()
    assert deleted.data.channel.deleted_at is not None
    assert emu.count(op.GET_OR_CREATE_CHANNEL) == 1 and emu.channel_count() == 0
    assert {r.dialect for r in emu.requests} == {"v2"}


async def test_async_getstream_errors(ags):
    with pytest.raises(StreamApiException) as caught:
        await ags.chat.channel("messaging", "x").get_or_create(
            data=ChannelInput(created_by_id="ghost", members=members("ghost", "phantom"))
        )
    assert caught.value.code == 4 and "[ghost,phantom]" in caught.value.message


async def test_async_stream_chat_covers_the_hot_path(asc, emu):
    await asc.upsert_users([{"id": "ann", "kind": "user"}, {"id": "bob"}, {"id": "cat"}])
    channel = asc.channel("messaging", "async-2", {"members": ["ann", "bob"], "name": "A2"})
    state = await channel.create("ann")
    assert state["channel"]["name"] == "A2" and len(state["members"]) == 2
    assert len((await channel.add_members(["cat"]))["members"]) == 3
    assert len((await channel.remove_members(["bob"]))["members"]) == 2
    await channel.send_message({"text": "yo"}, "ann")
    assert (await asc.unread_counts("cat"))["total_unread_count"] == 1
    await channel.mark_read("cat")
    assert [m["user_id"] for m in await channel.query_members({})] == ["ann", "cat"]
    users = await asc.query_users({"id": {"$eq": "ann"}})
    assert users["users"][0]["kind"] == "user"
    channels = await asc.query_channels({"cid": "messaging:async-2"})
    assert channels["channels"][0]["channel"]["id"] == "async-2"
    await asc.update_user_partial({"id": "ann", "set": {"name": "Ann"}, "unset": ["kind"]})
    assert "kind" not in emu.get_user("ann")
    await asc.deactivate_user("bob")
    await asc.reactivate_user("bob")
    await asc.delete_user("bob")
    # The async client sends a {} body with DELETE; the emulator takes it.
    assert (await channel.delete())["channel"]["deleted_at"]
    assert {r.dialect for r in emu.requests} == {"v1"}


async def test_async_stream_chat_errors(asc):
    await asc.upsert_user({"id": "ann"})
    channel = asc.channel("messaging", "async-3")
    await channel.create("ann")
    with pytest.raises(StreamAPIException) as caught:
        await channel.add_members(["missing-1", "missing-2"])
    assert caught.value.status_code == 400
    assert "channel update operation, but don't exist: [missing-1,missing-2]" in caught.value.error_message
