"""Stream's id rules, offsets beyond the maximum, and fields honoured rather than dropped."""

from __future__ import annotations

import json

import pytest
from stream_chat.base.exceptions import StreamAPIException


@pytest.mark.parametrize("bad", ["café", "日本", "ann\n", "Ann", "a b", ""])
def test_user_ids_follow_the_documented_characters(sc, emu, bad):
    with pytest.raises(StreamAPIException) as caught:
        sc.upsert_user({"id": bad})
    assert caught.value.status_code == 400 and caught.value.error_code == 4
    assert emu.user_ids() == set()


@pytest.mark.parametrize("bad", ["café", "room\n", "日本"])
def test_channel_ids_follow_the_documented_characters(sc, emu, bad):
    sc.upsert_user({"id": "ann"})
    with pytest.raises(StreamAPIException) as caught:
        sc.channel("messaging", bad).create("ann")
    assert caught.value.status_code == 400
    assert emu.channel_count() == 0


def test_offset_beyond_the_maximum_is_refused_not_capped(sc):
    sc.upsert_user({"id": "ann"})
    assert sc.query_users({"id": "ann"}, offset=1000)["users"] == []
    with pytest.raises(StreamAPIException) as users:
        sc.query_users({"id": "ann"}, offset=1001)
    assert users.value.status_code == 400 and "offset" in users.value.error_message
    with pytest.raises(StreamAPIException) as channels:
        sc.query_channels({"type": "messaging"}, offset=1001)
    assert channels.value.status_code == 400


def test_add_moderators_adds_a_non_member_as_moderator(sc, emu):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    channel = sc.channel("messaging", "room")
    channel.create("ann")
    members = channel.add_moderators(["bob"])["members"]
    assert [(m["user_id"], m.get("is_moderator")) for m in members] == [("bob", True)]
    assert channel.demote_moderators(["bob"])["members"][0].get("is_moderator") is None


def test_invites_are_answered_only_by_the_invited(sc):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "cat"}])
    channel = sc.channel("team", "band", {"members": ["ann", "bob"], "invites": ["bob", "cat"]})
    channel.create("ann")
    with pytest.raises(StreamAPIException):
        channel.accept_invite("nobody")
    with pytest.raises(StreamAPIException):
        channel.accept_invite("ann")
    members = {m["user_id"]: m for m in channel.accept_invite("bob")["members"]}
    assert members["bob"]["invited"] is True and "invite_accepted_at" in members["bob"]
    members = {m["user_id"]: m for m in channel.reject_invite("cat")["members"]}
    assert "invite_rejected_at" in members["cat"]


def test_filter_tags_are_kept_and_queryable(sc):
    sc.upsert_user({"id": "ann"})
    channel = sc.channel("messaging", "room")
    channel.create("ann")
    assert set(channel.add_filter_tags(["vip", "premium"])["channel"]["filter_tags"]) == {"vip", "premium"}
    assert channel.remove_filter_tags(["premium"])["channel"]["filter_tags"] == ["vip"]
    found = sc.query_channels({"filter_tags": {"$in": ["vip"]}})["channels"]
    assert [c["channel"]["id"] for c in found] == ["room"]


def test_restricted_visibility_is_kept(sc):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    channel = sc.channel("messaging", "room", {"members": ["ann", "bob"]})
    channel.create("ann")
    sent = channel.send_message({"text": "psst", "restricted_visibility": ["bob"]}, "ann")
    assert sent["message"]["restricted_visibility"] == ["bob"]


def test_message_new_has_no_channel_data_and_at_most_50_members(sc, emu, webhook_url):
    ids = [f"u{i}" for i in range(60)]
    sc.upsert_users([{"id": i} for i in ids])
    channel = sc.channel("messaging", "big", {"members": ids, "secret_sauce": "x"})
    channel.create("u0")
    sc.update_app_settings(webhook_url=webhook_url, webhook_events=["message.new"])
    channel.send_message({"text": "hi"}, "u1")
    payload = json.loads(emu.webhooks.wait_for(1, "message.new")[0].body)
    assert "channel" not in payload and "secret_sauce" not in json.dumps(payload)
    assert len(payload["members"]) == 50 and payload["channel_member_count"] == 60
    assert payload["members"][1]["channel_unread_count"] == 0  # u1 sent it
    assert payload["members"][0]["channel_unread_count"] == 1
