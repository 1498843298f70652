"""The webhook events of a chat screen's calls, with the unread fields Stream documents, and
`webhook_events` holding only names of events Stream sends."""

from __future__ import annotations

import pytest
from stream_chat.base.exceptions import StreamAPIException


def test_chat_screen_calls_send_their_webhook_events(sc, emu, webhook_url):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "cat"}])
    channel = sc.channel("messaging", "screen", {"members": ["ann", "bob"]})
    channel.create("ann")
    sent = channel.send_message({"text": "one"}, "ann")["message"]
    sc.update_app_settings(webhook_url=webhook_url)
    channel.send_reaction(sent["id"], {"type": "like"}, "bob")
    channel.delete_reaction(sent["id"], "like", "bob")
    sc.update_message({"id": sent["id"], "text": "one, edited", "user_id": "ann"})
    sc.delete_message(sent["id"])
    channel.update_partial({"name": "Renamed"})
    channel.add_members(["cat"])
    channel.mark_read("bob")
    wanted = [
        "reaction.new",
        "reaction.deleted",
        "message.updated",
        "message.deleted",
        "channel.updated",
        "member.added",
        "message.read",
        "notification.mark_read",
    ]
    emu.webhooks.wait_for(len(wanted))
    deliveries = {d.event_type: d.payload for d in emu.webhook_deliveries}
    assert set(wanted) <= set(deliveries)
    assert deliveries["reaction.new"]["reaction"]["type"] == "like"
    assert deliveries["message.updated"]["message"]["text"] == "one, edited"
    assert deliveries["message.deleted"]["message"]["type"] == "deleted"
    assert deliveries["channel.updated"]["channel"]["name"] == "Renamed"
    # message.read and member.added carry the unread state on the user and on the members.
    read = deliveries["message.read"]
    assert read["user"]["id"] == "bob" and read["user"]["channel_unread_count"] == 0
    assert read["user"]["total_unread_count"] == 0 and read["user"]["unread_channels"] == 0
    assert {m["user_id"]: m["channel_unread_count"] for m in read["members"]} == {"ann": 0, "bob": 0, "cat": 0}
    added = deliveries["member.added"]
    assert added["user"]["id"] == "cat" and added["user"]["channel_unread_count"] == 0
    assert "channel_last_read_at" in added["user"] and added["user"]["total_unread_count"] == 0
    assert deliveries["notification.mark_read"]["total_unread_count"] == 0


def test_unknown_webhook_event_names_are_refused(sc, emu):
    with pytest.raises(StreamAPIException) as caught:
        sc.update_app_settings(webhook_events=["message.new", "message.sent"])
    assert caught.value.error_code == 4
    assert "webhook_events has unknown event types: message.sent" in caught.value.error_message
    assert emu.state.app["webhook_events"] == []
    sc.update_app_settings(webhook_events=["message.new", "notification.mark_read", "channel.updated"])
    assert emu.state.app["webhook_events"] == ["message.new", "notification.mark_read", "channel.updated"]
