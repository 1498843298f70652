"""Messages, reads, unread counts and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from getstream.base import StreamApiException
from getstream.models import MessageRequest
from getstream.webhook import verify_signature
from stream_chat.base.exceptions import StreamAPIException

from .conftest import KEY, SECRET


@pytest.fixture
def room(sc):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "cat"}])
    channel = sc.channel("messaging", "room", {"members": ["ann", "bob", "cat"]})
    channel.create("ann")
    return channel


def test_send_message_in_both_dialects(gs, room, emu):
    sent = room.send_message({"text": "hello", "mood": "happy"}, "ann")["message"]
    assert sent["text"] == "hello" and sent["mood"] == "happy" and sent["user"]["id"] == "ann"
    assert sent["type"] == "regular" and sent["cid"] == "messaging:room"
    v2 = (
        gs.chat.channel("messaging", "room")
        .send_message(message=MessageRequest(text="hi", user_id="bob", custom={"mood": "calm"}))
        .data.message
    )
    assert v2.custom == {"mood": "calm"} and v2.user.id == "bob" and v2.created_at.year > 2000
    assert [m["text"] for m in emu.get_channel("messaging", "room")["messages"]] == ["hello", "hi"]


def test_send_message_needs_exactly_one_sender_server_side(gs, sc, room):
    with pytest.raises(StreamApiException) as none:
        gs.chat.channel("messaging", "room").send_message(message=MessageRequest(text="x"))
    assert none.value.message == (
        'SendMessage failed with error: "either message.user or message.user_id must be '
        'provided when using server side auth."'
    )
    with pytest.raises(StreamAPIException) as both:
        room.send_message({"text": "x", "user_id": "ann"}, "ann")
    assert "cannot set both message.user and message.user_id." in both.value.error_message
    with pytest.raises(StreamAPIException) as ghost:
        room.send_message({"text": "x"}, "ghost")
    assert ghost.value.status_code == 404


def test_duplicate_message_ids_are_refused(room):
    room.send_message({"id": "m-1", "text": "once"}, "ann")
    with pytest.raises(StreamAPIException) as caught:
        room.send_message({"id": "m-1", "text": "twice"}, "ann")
    assert caught.value.error_code == 4


def test_unread_counts_follow_messages_and_mark_read(gs, sc, room):
    room.send_message({"text": "1"}, "ann")
    room.send_message({"text": "2"}, "ann")
    counts = sc.unread_counts("bob")
    assert counts["total_unread_count"] == 2
    assert counts["channels"][0]["channel_id"] == "messaging:room"
    assert counts["channel_type"] == [{"channel_type": "messaging", "channel_count": 1, "unread_count": 2}]
    assert sc.unread_counts("ann")["total_unread_count"] == 0  # senders have read their own
    event = room.mark_read("bob")["event"]
    assert event["type"] == "message.read" and event["user"]["id"] == "bob"
    assert gs.chat.unread_counts(user_id="bob").data.total_unread_count == 0
    data = gs.chat.unread_counts(user_id="cat").data
    assert data.total_unread_count == 2 and data.channels[0].unread_count == 2
    gs.chat.channel("messaging", "room").mark_read(user_id="cat")
    assert sc.unread_counts("cat")["total_unread_count"] == 0


def test_mark_read_needs_a_user_server_side(gs, room):
    with pytest.raises(StreamApiException) as caught:
        gs.chat.channel("messaging", "room").mark_read()
    assert caught.value.code == 4


def test_app_settings_round_trip(gs, sc):
    sc.update_app_settings(webhook_url="http://127.0.0.1:1/hook", webhook_events=["message.new"])
    assert sc.get_app_settings()["app"]["webhook_url"] == "http://127.0.0.1:1/hook"
    app = gs.get_app().data.app
    assert app.webhook_url == "http://127.0.0.1:1/hook" and app.webhook_events == ["message.new"]
    assert app.channel_configs["messaging"].max_message_length == 5000
    with pytest.raises(StreamApiException) as caught:
        gs.update_app(webhook_url="not a url")
    assert caught.value.code == 4


def test_webhooks_are_signed_and_cover_the_lifecycle(gs, sc, emu, webhook_url):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "cat"}])
    sc.update_app_settings(webhook_url=webhook_url)
    channel = sc.channel("messaging", "hooks", {"members": ["ann", "bob"]})
    channel.create("ann")
    channel.add_members(["cat"])
    channel.remove_members(["cat"])
    channel.send_message({"text": "ping"}, "ann")
    channel.mark_read("bob")
    sc.update_user_partial({"id": "bob", "set": {"name": "Bobby"}})
    channel.delete()
    wanted = [
        "channel.created",
        "member.added",
        "member.removed",
        "message.new",
        "message.read",
        "notification.mark_read",
        "user.updated",
        "channel.deleted",
    ]
    emu.webhooks.wait_for(len(wanted))
    deliveries = {d.event_type: d for d in emu.webhook_deliveries}
    assert set(deliveries) == set(wanted)
    new = deliveries["message.new"]
    assert new.status == 200 and new.headers["X-Api-Key"] == KEY and new.headers["X-Webhook-Id"]
    expected = hmac.new(SECRET.encode(), new.body, hashlib.sha256).hexdigest()
    assert new.headers["X-Signature"] == expected
    assert verify_signature(new.body, new.headers["X-Signature"], SECRET)
    payload = json.loads(new.body)
    assert payload["cid"] == "messaging:hooks" and payload["message"]["text"] == "ping"
    assert payload["user"]["id"] == "ann" and payload["created_at"].endswith("Z")
    assert deliveries["member.added"].payload["member"]["user_id"] == "cat"
    assert deliveries["user.updated"].payload["user"]["name"] == "Bobby"


def test_webhook_events_filter_and_async_waiting(sc, emu, webhook_url):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    sc.update_app_settings(webhook_url=webhook_url, webhook_events=["message.new"])
    channel = sc.channel("messaging", "only-new", {"members": ["ann", "bob"]})
    channel.create("ann")
    channel.send_message({"text": "x"}, "ann")
    assert [d.event_type for d in emu.webhooks.wait_for(1)] == ["message.new"]
    assert [d.event_type for d in emu.webhook_deliveries] == ["message.new"]


def test_a_dead_receiver_is_recorded_not_raised(sc, emu):
    sc.upsert_users([{"id": "ann"}])
    sc.update_app_settings(webhook_url="http://127.0.0.1:9/closed")
    sc.update_user_partial({"id": "ann", "set": {"name": "A"}})
    (delivery,) = emu.webhooks.wait_for(1, "user.updated")
    assert delivery.status is None and delivery.error


def test_a_reaction_reaches_the_webhooks_that_want_reaction_new(gs, sc, emu, webhook_url):
    """SendReaction in both dialects: the reaction comes back, and reaction.new goes to the webhook."""
    from getstream.models import ReactionRequest

    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    sc.update_app_settings(webhook_url=webhook_url, webhook_events=["reaction.new"])
    channel = sc.channel("messaging", "reacts", {"members": ["ann", "bob"]})
    channel.create("ann")
    message = channel.send_message({"text": "hi"}, "ann")["message"]
    v1 = channel.send_reaction(message["id"], {"type": "love"}, "bob")
    assert v1["reaction"]["type"] == "love" and v1["reaction"]["user_id"] == "bob"
    v2 = gs.chat.send_reaction(message["id"], reaction=ReactionRequest(type="like", user_id="ann")).data
    assert (v2.reaction.type, v2.reaction.user_id, v2.message.id) == ("like", "ann", message["id"])
    delivered = emu.webhooks.wait_for(2, "reaction.new")
    assert [(d.payload["reaction"]["type"], d.payload["user"]["id"]) for d in delivered] == [
        ("love", "bob"),
        ("like", "ann"),
    ]
    assert all(
        d.payload["message"]["id"] == message["id"] and d.payload["cid"] == "messaging:reacts" for d in delivered
    )
