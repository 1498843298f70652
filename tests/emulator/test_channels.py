"""Channels over both dialects: get-or-create, members, updates, deletes and queries."""

from __future__ import annotations

import pytest
from getstream.base import StreamApiException
from getstream.models import ChannelInput, ChannelMemberRequest, QueryMembersPayload, SortParamRequest
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import operations as op

DONT_EXIST = (
    "The following users are involved in channel {} operation, but don't exist: "
    "[{}]. Please create the user objects before setting up the channel."
)


def members(*ids: str) -> list[ChannelMemberRequest]:
    return [ChannelMemberRequest(user_id=i) for i in ids]


@pytest.fixture
def people(sc):
    sc.upsert_users([{"id": i, "name": i.title()} for i in ("ann", "bob", "cat", "dan")])


def test_get_or_create_with_member_objects_v2(gs, emu, people):
    response = gs.chat.channel("messaging", "pair-1").get_or_create(
        data=ChannelInput(created_by_id="ann", members=members("ann", "bob"), custom={"name": "Pair"})
    )
    assert response.status_code() == 201
    data = response.data
    assert data.channel.cid == "messaging:pair-1" and data.channel.custom == {"name": "Pair"}
    assert [m.user_id for m in data.members] == ["ann", "bob"]
    assert data.channel.created_by.id == "ann" and data.members[0].user.name == "Ann"
    stored = emu.get_channel("messaging", "pair-1")
    assert stored["members"] == ["ann", "bob"] and stored["created_by_id"] == "ann"


def test_get_or_create_with_member_strings_v1_and_created_by_object(sc, emu, people):
    state = sc.channel("messaging", "pair-2", {"members": ["ann", "cat"], "topic": "x"}).create("ann")
    assert state["channel"]["topic"] == "x" and len(state["members"]) == 2
    assert state["channel"]["created_at"].endswith("Z")
    assert emu.channel_count() == 1


def test_get_or_create_twice_returns_the_same_channel_and_ignores_new_data(sc, emu, people):
    sc.channel("messaging", "again", {"members": ["ann", "bob"]}).create("ann")
    again = sc.channel("messaging", "again", {"members": ["ann", "cat"]}).create("ann")
    assert [m["user_id"] for m in again["members"]] == ["ann", "bob"]
    assert emu.count(op.GET_OR_CREATE_CHANNEL) == 2 and emu.channel_count() == 1
    # As Stream did (stream-chat-php#22), the creator rule holds for an existing channel too.
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", "again").query()
    assert caught.value.error_code == 4


def test_server_side_create_needs_exactly_one_creator_field(gs, sc, people):
    with pytest.raises(StreamApiException) as caught:
        gs.chat.channel("messaging", "c").get_or_create(data=ChannelInput(members=members("ann")))
    assert caught.value.code == 4 and caught.value.status_code == 400
    assert caught.value.message == (
        'GetOrCreateChannel failed with error: "either data.created_by or data.created_by_id '
        'must be provided when using server side auth."'
    )
    with pytest.raises(StreamAPIException) as both:
        sc.channel("messaging", "c", {"created_by_id": "ann"}).create("ann")
    assert "cannot set both data.created_by and data.created_by_id." in both.value.error_message


def test_create_lists_every_missing_member(gs, sc, emu, people):
    with pytest.raises(StreamApiException) as caught:
        gs.chat.channel("messaging", "m").get_or_create(
            data=ChannelInput(created_by_id="ann", members=members("ann", "ghost1", "bob", "ghost2"))
        )
    assert (
        caught.value.message
        == f'GetOrCreateChannel failed with error: "{DONT_EXIST.format("create", "ghost1,ghost2")}"'
    )
    with pytest.raises(StreamAPIException) as v1:
        sc.channel("messaging", "m", {"members": ["ghost3"]}).create("nobody")
    assert v1.value.error_code == 4 and "[nobody,ghost3]" in v1.value.error_message
    assert emu.channel_count() == 0


def test_more_than_100_members_on_create_is_refused(sc, people):
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", "big", {"members": [f"u{i}" for i in range(101)]}).create("ann")
    assert caught.value.error_code == 4
    assert "data.members has 101 items, the maximum is 100" in caught.value.error_message


@pytest.mark.parametrize("channel_id", ["has space", "colon:id", "x" * 65])
def test_invalid_channel_ids_are_refused(sc, people, channel_id):
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", channel_id).create("ann")
    assert caught.value.status_code == 400 and caught.value.error_code == 4


def test_bang_is_reserved_and_unknown_types_do_not_exist(gs, people):
    with pytest.raises(StreamApiException) as bang:
        gs.chat.channel("messaging", "a!b").get_or_create(data=ChannelInput(created_by_id="ann"))
    assert "'!' in the ID, this is a reserved character." in bang.value.message
    with pytest.raises(StreamApiException) as kind:
        gs.chat.channel("nosuchtype", "x").get_or_create(data=ChannelInput(created_by_id="ann"))
    assert kind.value.status_code == 404 and kind.value.code == 16


def test_distinct_channel_ids_come_from_the_member_set(gs, sc, people):
    first = gs.chat.get_or_create_distinct_channel(
        type="messaging", data=ChannelInput(created_by_id="ann", members=members("ann", "bob"))
    )
    second = sc.channel("messaging", None, {"members": ["bob", "ann"]}).create("bob")
    assert first.data.channel.id.startswith("!members-")
    assert second["channel"]["id"] == first.data.channel.id
    with pytest.raises(StreamApiException) as one:
        gs.chat.get_or_create_distinct_channel(
            type="messaging", data=ChannelInput(created_by_id="ann", members=members("ann"))
        )
    assert "specify at least 2 members" in one.value.message
    channel = sc.channel("messaging", first.data.channel.id)
    with pytest.raises(StreamAPIException) as add:
        channel.add_members(["cat"])
    assert add.value.status_code == 403 and add.value.error_code == 17


def test_add_and_remove_members(gs, sc, emu, people):
    channel = sc.channel("messaging", "team")
    channel.create("ann")
    assert len(channel.add_members(["bob", "cat"])["members"]) == 2
    response = gs.chat.channel("messaging", "team").update(add_members=members("dan"))
    assert [m.user_id for m in response.data.members] == ["bob", "cat", "dan"]
    assert len(channel.remove_members(["cat"])["members"]) == 2
    assert emu.get_channel("messaging", "team")["members"] == ["bob", "dan"]
    assert emu.count(op.UPDATE_CHANNEL) == 3


def test_add_members_lists_every_missing_user(gs, sc, people):
    sc.channel("messaging", "adds").create("ann")
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", "adds").add_members(["bob", "nope1", "nope2"])
    assert (
        caught.value.error_message == f'UpdateChannel failed with error: "{DONT_EXIST.format("update", "nope1,nope2")}"'
    )
    with pytest.raises(StreamApiException) as big:
        gs.chat.channel("messaging", "adds").update(add_members=members(*[f"x{i}" for i in range(101)]))
    assert big.value.code == 4 and "add_members has 101 items" in big.value.message


def test_update_of_a_missing_channel_is_not_found(sc):
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", "ghost").add_members(["ann"])
    assert caught.value.status_code == 404 and caught.value.error_code == 16
    assert "Can't find channel with id messaging:ghost" in caught.value.error_message


def test_full_and_partial_update(gs, sc, people):
    channel = sc.channel("messaging", "upd", {"name": "Old", "color": "red"})
    channel.create("ann")
    assert channel.update({"name": "New"})["channel"].get("color") is None
    response = gs.chat.channel("messaging", "upd").update_channel_partial(set={"motd": "hi"}, unset=["name"])
    assert response.data.channel.custom == {"motd": "hi"}
    assert channel.update_partial({"frozen": True})["channel"]["frozen"] is True


def test_delete_one_and_many(gs, sc, emu, people):
    for cid in ("d1", "d2", "d3"):
        sc.channel("messaging", cid).create("ann")
    assert sc.channel("messaging", "d1").delete()["channel"]["deleted_at"]
    assert emu.get_channel("messaging", "d1") is None
    with pytest.raises(StreamAPIException) as again:
        sc.channel("messaging", "d1").delete()
    assert again.value.status_code == 404
    assert 'DeleteChannel failed with error: "Can\'t find channel with id messaging:d1"' in again.value.error_message
    task_id = gs.chat.delete_channels(cids=["messaging:d2", "messaging:d3"]).data.task_id
    assert gs.get_task(task_id).data.result == {"messaging:d2": {"status": "ok"}, "messaging:d3": {"status": "ok"}}
    assert emu.channel_count() == 0
    with pytest.raises(StreamAPIException) as bare:
        sc.delete_channels(["d2"])
    assert bare.value.error_code == 16 and "channels not found" in bare.value.error_message


def test_query_channels_by_cid_type_id_and_members(gs, sc, people):
    sc.channel("messaging", "q1", {"members": ["ann", "bob"]}).create("ann")
    sc.channel("messaging", "q2", {"members": ["bob", "cat"]}).create("bob")
    sc.channel("team", "q3", {"members": ["ann", "cat"]}).create("cat")

    def ids(filters, **options):
        return [c["channel"]["id"] for c in sc.query_channels(filters, **options)["channels"]]

    assert ids({"members": {"$in": ["ann"]}}, sort={"created_at": 1}) == ["q1", "q3"]
    assert ids({"members": {"$eq": ["cat", "bob"]}}) == ["q2"]
    assert ids({"cid": "messaging:q2"}) == ["q2"]
    assert ids({"type": "messaging", "id": {"$in": ["q1", "q3"]}}) == ["q1"]
    assert ids({}, sort=[{"field": "created_at", "direction": -1}], limit=1, offset=1) == ["q2"]
    data = gs.chat.query_channels(filter_conditions={"type": "team"}).data
    assert [c.channel.id for c in data.channels] == ["q3"] and len(data.channels[0].members) == 2


def test_query_members(gs, sc, people):
    channel = sc.channel("messaging", "qm", {"members": ["ann", "bob", "cat"]})
    channel.create("ann")
    assert [m["user_id"] for m in channel.query_members({"id": {"$in": ["bob", "cat"]}})] == ["bob", "cat"]
    data = gs.chat.query_members(
        QueryMembersPayload(type="messaging", id="qm", filter_conditions={"name": {"$autocomplete": "an"}})
    ).data
    assert [m.user_id for m in data.members] == ["ann"]
    with pytest.raises(StreamApiException) as missing:
        gs.chat.query_members(QueryMembersPayload(type="messaging", id="nope", filter_conditions={}))
    assert missing.value.code == 16


def test_query_members_pages_a_large_channel_by_offset_and_by_user_id(gs, sc):
    """Oldest first by default; limit/offset with the documented offset ceiling (refused, never capped); paging by
    user_id_gt with a user_id sort reads every member of a channel of any size exactly once."""
    ids = [f"m{n:04d}" for n in range(250)]
    for start in range(0, len(ids), 100):
        sc.upsert_users([{"id": i} for i in ids[start : start + 100]])
    channel = sc.channel("messaging", "big", {"members": ids[:100]})
    channel.create(ids[0])
    channel.add_members(ids[100:200])
    channel.add_members(ids[200:][::-1])  # joined last, in descending id order

    first = gs.chat.query_members(QueryMembersPayload(type="messaging", id="big", filter_conditions={}, limit=100))
    assert [m.user_id for m in first.data.members] == ids[:100], "oldest members first"
    last = gs.chat.query_members(
        QueryMembersPayload(type="messaging", id="big", filter_conditions={}, limit=100, offset=200)
    )
    assert [m.user_id for m in last.data.members] == ids[200:][::-1]
    with pytest.raises(StreamApiException) as too_far:
        gs.chat.query_members(QueryMembersPayload(type="messaging", id="big", filter_conditions={}, offset=1001))
    assert too_far.value.code == 4

    seen: list[str] = []
    after = None
    while True:
        page = gs.chat.query_members(
            QueryMembersPayload(
                type="messaging",
                id="big",
                filter_conditions={},
                sort=[SortParamRequest(field="user_id", direction=1)],
                limit=100,
                user_id_gt=after,
            )
        ).data.members
        seen.extend(m.user_id for m in page)
        if len(page) < 100:
            break
        after = page[-1].user_id
    assert seen == ids


def test_moderators_roles_invites_and_a_system_message(sc, people):
    channel = sc.channel("messaging", "roles", {"members": ["ann", "bob"]})
    channel.create("ann")
    members_by_id = {m["user_id"]: m for m in channel.add_moderators(["bob"])["members"]}
    assert members_by_id["bob"]["channel_role"] == "channel_moderator"
    assert members_by_id["bob"]["is_moderator"] is True
    demoted = {m["user_id"]: m for m in channel.demote_moderators(["bob"])["members"]}
    assert demoted["bob"]["channel_role"] == "channel_member"
    assigned = channel.assign_roles([{"user_id": "ann", "channel_role": "channel_moderator"}])
    assert assigned["members"][0]["channel_role"] == "channel_moderator"
    invited = {m["user_id"]: m for m in channel.invite_members(["cat"])["members"]}
    assert invited["cat"]["invited"] is True
    response = channel.add_members(["dan"], {"text": "Dan joined", "user_id": "ann"})
    assert response["message"]["text"] == "Dan joined" and len(response["members"]) == 4
