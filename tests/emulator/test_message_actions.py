"""A chat screen's calls on one message, through stream-chat (server side) and as a user: get,
update, partial update with pinning, delete, reactions, custom events, mark unread, delivered."""

from __future__ import annotations

import pytest
from stream_chat.base.exceptions import StreamAPIException

from .test_client_connection import as_user


@pytest.fixture
def room(sc):
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}])
    channel = sc.channel("messaging", "acts", {"members": ["ann", "bob"]})
    channel.create("ann")
    return channel


def test_update_pin_and_delete_a_message(sc, room):
    sent = room.send_message({"text": "first", "id": "m1"}, "ann")["message"]
    assert sent["pinned"] is False and sent["pinned_at"] is None
    updated = sc.update_message({"id": "m1", "text": "first!", "user_id": "ann", "mood": "glad"})["message"]
    assert updated["text"] == "first!" and updated["mood"] == "glad"
    pinned = sc.pin_message("m1", "bob")["message"]
    assert pinned["pinned"] is True and pinned["pinned_at"] and pinned["pinned_by"]["id"] == "bob"
    unpinned = sc.unpin_message("m1", "bob")["message"]
    assert unpinned["pinned_at"] is None and unpinned["pinned_by"] is None
    partial = sc.update_message_partial("m1", {"set": {"text": "partly"}, "unset": ["mood"]}, "ann")["message"]
    assert partial["text"] == "partly" and "mood" not in partial
    assert sc.get_message("m1")["message"]["text"] == "partly"
    assert sc.delete_message("m1")["message"]["type"] == "deleted"
    assert sc.get_message("m1")["message"]["deleted_at"]
    sc.delete_message("m1", hard=True)
    with pytest.raises(StreamAPIException) as caught:
        sc.get_message("m1")
    assert caught.value.error_code == 16


def test_reactions_count_and_show_as_own_to_their_user(base_url, sc, room):
    room.send_message({"text": "react to me", "id": "m2"}, "ann")
    room.send_reaction("m2", {"type": "like"}, "bob")
    both = room.send_reaction("m2", {"type": "love", "score": 2}, "bob")["message"]
    assert both["reaction_counts"] == {"like": 1, "love": 1} and both["reaction_scores"] == {"like": 1, "love": 2}
    unique = sc.post(
        "messages/m2/reaction", data={"reaction": {"type": "wow", "user_id": "bob"}, "enforce_unique": True}
    )["message"]
    assert unique["reaction_counts"] == {"wow": 1}
    seen_by_bob = as_user(base_url, "bob", "GET", "/messages/m2").json()["message"]
    assert [r["type"] for r in seen_by_bob["own_reactions"]] == ["wow"]
    seen_by_ann = as_user(base_url, "ann", "GET", "/messages/m2").json()["message"]
    assert seen_by_ann["own_reactions"] == [] and seen_by_ann["latest_reactions"][0]["user_id"] == "bob"
    assert room.delete_reaction("m2", "wow", "bob")["message"]["reaction_counts"] == {}
    with pytest.raises(StreamAPIException) as caught:
        room.delete_reaction("m2", "wow", "bob")
    assert caught.value.error_code == 16


def test_custom_events_mark_unread_and_delivered(base_url, sc, room):
    for n in range(3):
        room.send_message({"text": f"n{n}", "id": f"n{n}"}, "ann")
    assert room.send_event({"type": "crew.ping", "user_id": "ann"}, "ann")["event"]["type"] == "crew.ping"
    with pytest.raises(StreamAPIException) as caught:
        room.send_event({"type": "message.new"}, "ann")
    assert caught.value.error_code == 4 and "reserved" in caught.value.error_message
    room.mark_read("bob")
    answer = as_user(base_url, "bob", "POST", "/channels/messaging/acts/unread", json={"message_id": "n1"})
    assert answer.status_code == 201, answer.text
    counts = sc.unread_counts("bob")
    assert counts["total_unread_count"] == 2
    missing = as_user(base_url, "bob", "POST", "/channels/messaging/acts/unread", json={"message_id": "nope"})
    assert missing.status_code == 404 and "message nope does not exist" in missing.json()["message"]
    delivered = as_user(
        base_url,
        "bob",
        "POST",
        "/channels/delivered",
        json={"latest_delivered_messages": [{"cid": room.cid, "id": "n2"}]},
    )
    assert delivered.status_code == 201
