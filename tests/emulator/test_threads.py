"""Thread replies and thread reads, as Stream's docs describe them."""

from __future__ import annotations

import json

import pytest
from getstream.models import MessageRequest
from stream_chat.base.exceptions import StreamAPIException


@pytest.fixture
def room(sc):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "cat"}])
    channel = sc.channel("messaging", "room", {"members": ["ann", "bob", "cat"]})
    channel.create("ann")
    return channel


def _unread(sc, user_id: str) -> dict:
    return sc.unread_counts(user_id)


def test_a_reply_is_typed_counted_on_its_parent_and_left_out_of_the_channel(sc, gs, room):
    parent = room.send_message({"text": "question"}, "ann")["message"]
    reply = room.send_message({"text": "answer", "parent_id": parent["id"]}, "bob")["message"]
    assert reply["type"] == "reply" and reply["parent_id"] == parent["id"]
    assert reply["show_in_channel"] is False
    state = room.query(messages={"limit": 25})
    assert [m["text"] for m in state["messages"]] == ["question"]
    assert state["messages"][0]["reply_count"] == 1
    replies = room.get_replies(parent["id"])["messages"]
    assert [m["text"] for m in replies] == ["answer"]
    v2 = (
        gs.chat.channel("messaging", "room")
        .send_message(message=MessageRequest(text="also", user_id="cat", parent_id=parent["id"], show_in_channel=True))
        .data.message
    )
    assert v2.type == "reply" and v2.parent_id == parent["id"] and v2.show_in_channel


def test_thread_only_replies_never_raise_channel_unread(sc, room):
    parent = room.send_message({"text": "question"}, "ann")["message"]
    room.mark_read("bob")
    room.send_message({"text": "in thread", "parent_id": parent["id"]}, "cat")
    assert _unread(sc, "bob")["total_unread_count"] == 0
    room.send_message({"text": "shown", "parent_id": parent["id"], "show_in_channel": True}, "cat")
    assert _unread(sc, "bob")["total_unread_count"] == 1


def test_thread_participants_get_unread_threads_and_a_thread_read_leaves_the_channel(sc, room):
    parent = room.send_message({"text": "question"}, "ann")["message"]
    room.send_message({"text": "me too", "parent_id": parent["id"]}, "bob")
    room.send_message({"text": "answer", "parent_id": parent["id"]}, "cat")
    counts = _unread(sc, "bob")
    assert counts["total_unread_threads_count"] == 1
    assert counts["threads"][0]["parent_message_id"] == parent["id"]
    assert counts["threads"][0]["unread_count"] == 1
    assert counts["total_unread_count"] == 1  # the parent, still unread in the channel
    event = room.mark_read("bob", thread_id=parent["id"])["event"]
    assert event["thread"]["parent_message_id"] == parent["id"]
    counts = _unread(sc, "bob")
    assert counts["total_unread_threads_count"] == 0 and counts["threads"] == []
    assert counts["total_unread_count"] == 1  # the channel is not marked read


def test_unread_batch_answers_per_user(sc, room):
    parent = room.send_message({"text": "hi"}, "ann")["message"]
    room.send_message({"text": "x", "parent_id": parent["id"]}, "bob")
    room.send_message({"text": "y", "parent_id": parent["id"]}, "ann")
    counts = sc.unread_counts_batch(["bob", "cat"])["counts_by_user"]
    assert counts["bob"]["total_unread_count"] == 1 and counts["bob"]["total_unread_threads_count"] == 1
    assert counts["cat"]["total_unread_count"] == 1 and counts["cat"]["total_unread_threads_count"] == 0


def test_a_reply_to_a_missing_or_nested_parent_is_refused(sc, room):
    with pytest.raises(StreamAPIException) as missing:
        room.send_message({"text": "x", "parent_id": "nope"}, "bob")
    assert missing.value.status_code == 400
    parent = room.send_message({"text": "q"}, "ann")["message"]
    reply = room.send_message({"text": "a", "parent_id": parent["id"]}, "bob")["message"]
    with pytest.raises(StreamAPIException) as nested:
        room.send_message({"text": "x", "parent_id": reply["id"]}, "cat")
    assert nested.value.error_code == 21


def test_webhooks_carry_the_reply_and_the_thread_read(sc, room, emu, webhook_url):
    sc.update_app_settings(webhook_url=webhook_url, webhook_events=["message.new", "message.read"])
    parent = room.send_message({"text": "q"}, "ann")["message"]
    room.send_message({"text": "a", "parent_id": parent["id"]}, "bob")
    room.mark_read("ann", thread_id=parent["id"])
    news = emu.webhooks.wait_for(2, "message.new")
    reads = emu.webhooks.wait_for(1, "message.read")
    reply = [json.loads(d.body) for d in news if json.loads(d.body)["message"]["text"] == "a"][0]
    assert reply["message"]["parent_id"] == parent["id"]
    assert reply["message"]["show_in_channel"] is False and reply["message"]["type"] == "reply"
    assert json.loads(reads[0].body)["thread"]["parent_message_id"] == parent["id"]
