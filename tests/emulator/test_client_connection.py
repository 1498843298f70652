"""Stream's client protocol without Node: the /connect WebSocket, watching through REST calls that
carry ?connection_id=, events, pagination and the built-in types' permissions for user tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .conftest import KEY, SECRET

DEADLINE_S = 10.0


def token(user_id: str, secret: str = SECRET) -> str:
    """A user token as our service signs it (HS256, user_id claim)."""
    return jwt.encode({"user_id": user_id, "iat": int(time.time())}, secret, algorithm="HS256")


def connect_url(base_url: str, user_id: str, *, user_token: str | None = None, payload_user: str | None = None) -> str:
    query = {
        "json": json.dumps({"user_id": payload_user or user_id, "user_details": {"id": user_id}}),
        "api_key": KEY,
        "authorization": user_token or token(user_id),
        "stream-auth-type": "jwt",
    }
    return base_url.replace("http://", "ws://") + "/connect?" + urlencode(query)


@contextmanager
def socket(base_url: str, user_id: str) -> Iterator[tuple[ClientConnection, str]]:
    """An open connection and its connection_id."""
    with connect(connect_url(base_url, user_id)) as ws:
        first = json.loads(ws.recv(timeout=DEADLINE_S))
        yield ws, first["connection_id"]


def next_event(ws: ClientConnection, event_type: str) -> dict:
    """The next event of that type, skipping others, within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        event = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if event["type"] == event_type:
            return event


def as_user(
    base_url: str,
    user_id: str,
    method: str,
    path: str,
    *,
    connection_id: str | None = None,
    params: dict | None = None,
    **kw,
) -> httpx.Response:
    """A REST call as the client SDK sends it: user token, Stream-Auth-Type, api_key and connection_id."""
    query = {"api_key": KEY, **(params or {})}
    if connection_id:
        query["connection_id"] = connection_id
    headers = {"Authorization": token(user_id), "Stream-Auth-Type": "jwt"}
    return httpx.request(method, base_url + path, params=query, headers=headers, timeout=DEADLINE_S, **kw)


@pytest.fixture
def room(sc) -> str:
    """messaging:room with members ann and bob (made server-side); eve exists but is no member."""
    sc.upsert_users([{"id": "ann"}, {"id": "bob"}, {"id": "eve"}])
    sc.channel("messaging", "room", {"members": ["ann", "bob"]}).create("ann")
    return "messaging:room"


def test_connect_answers_with_a_health_check_carrying_me_and_the_connection_id(base_url, emu):
    with connect(connect_url(base_url, "ann")) as ws:
        first = json.loads(ws.recv(timeout=DEADLINE_S))
        assert first["type"] == "health.check" and first["cid"] == "*"
        assert first["connection_id"] and first["me"]["id"] == "ann" and first["me"]["online"] is True
        assert emu.get_user("ann")["online"] is True
        ws.send(json.dumps([{"type": "health.check", "client_id": "c1"}]))
        answer = json.loads(ws.recv(timeout=DEADLINE_S))
        assert answer["type"] == "health.check" and answer["connection_id"] == first["connection_id"]
    deadline = time.monotonic() + DEADLINE_S
    while emu.get_user("ann")["online"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.get_user("ann")["online"] is False


def test_the_server_says_it_is_alive_on_a_quiet_connection(base_url, emu, monkeypatch):
    monkeypatch.setattr(emu, "health_check_interval_s", 0.05)
    with socket(base_url, "ann") as (ws, connection_id):
        event = json.loads(ws.recv(timeout=DEADLINE_S))
        assert event["type"] == "health.check" and event["connection_id"] == connection_id


@pytest.mark.parametrize(
    ("kwargs", "code", "words"),
    [
        ({"user_token": token("ann", "another-secret-that-is-long-enough-too")}, 43, "signature is not valid"),
        ({"payload_user": "bob"}, 5, "does not match the token's user_id"),
    ],
)
def test_a_refused_connection_gets_stream_error_frame_then_a_normal_close(base_url, emu, kwargs, code, words):
    with connect(connect_url(base_url, "ann", **kwargs)) as ws:
        frame = json.loads(ws.recv(timeout=DEADLINE_S))
        assert frame["error"]["code"] == code and words in frame["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=DEADLINE_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert emu.get_user("bob") is None


def test_a_dropped_connection_closes_as_a_restart_and_a_new_one_gets_a_new_id(base_url, emu):
    with socket(base_url, "ann") as (ws, first_id):
        assert emu.hub.drop("ann") == 1
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=DEADLINE_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    with socket(base_url, "ann") as (_, second_id):
        assert second_id != first_id


def test_watchers_get_channel_events_and_members_not_watching_get_notifications(base_url, emu, room):
    with socket(base_url, "ann") as (ann_ws, ann_conn), socket(base_url, "bob") as (bob_ws, _):
        watched = as_user(
            base_url, "ann", "POST", "/channels/messaging/room/query", connection_id=ann_conn, json={"watch": True}
        )
        assert watched.status_code == 201
        assert [w["id"] for w in watched.json()["watchers"]] == ["ann"]
        sent = as_user(base_url, "bob", "POST", "/channels/messaging/room/message", json={"message": {"text": "hi"}})
        assert sent.status_code == 201
        assert next_event(ann_ws, "message.new")["message"]["text"] == "hi"
        # bob is a member who does not watch: he is notified, with the channel.
        note = next_event(bob_ws, "notification.message_new")
        assert note["message"]["text"] == "hi" and note["channel"]["cid"] == room

        as_user(base_url, "bob", "POST", "/channels/messaging/room/event", json={"event": {"type": "typing.start"}})
        assert next_event(ann_ws, "typing.start")["user"]["id"] == "bob"

        assert as_user(base_url, "ann", "POST", "/channels/messaging/room/read", json={}).status_code == 201
        assert next_event(ann_ws, "message.read")["user"]["id"] == "ann"
        assert next_event(ann_ws, "notification.mark_read")["total_unread_count"] == 0

        stopped = as_user(
            base_url, "ann", "POST", "/channels/messaging/room/stop-watching", connection_id=ann_conn, json={}
        )
        assert stopped.status_code == 201
        as_user(base_url, "bob", "POST", "/channels/messaging/room/message", json={"message": {"text": "again"}})
        assert next_event(ann_ws, "notification.message_new")["message"]["text"] == "again"


def test_a_user_missing_from_a_messaging_channel_cannot_read_write_or_rename_it(base_url, emu, room):
    expected = "is not allowed to perform action {} in scope 'messaging'"
    for method, path, body, action in [
        ("POST", "/channels/messaging/room/query", {"watch": False}, "ReadChannel"),
        ("POST", "/channels/messaging/room/message", {"message": {"text": "x"}}, "CreateMessage"),
        ("POST", "/channels/messaging/room", {"data": {"name": "mine"}}, "UpdateChannel"),
        ("PATCH", "/channels/messaging/room", {"set": {"name": "mine"}}, "UpdateChannel"),
        ("POST", "/channels/messaging/room/read", {}, "ReadChannel"),
    ]:
        answer = as_user(base_url, "eve", method, path, json=body)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["code"] == 17
        assert f"User 'eve' with role 'user' {expected.format(action)}" in answer.json()["message"]
    assert emu.get_channel("messaging", "room")["messages"] == []
    members = as_user(
        base_url, "eve", "GET", "/members", params={"payload": json.dumps({"type": "messaging", "id": "room"})}
    )
    assert members.status_code == 403 and "ReadChannel" in members.json()["message"]
    assert as_user(base_url, "eve", "POST", "/channels", json={"filter_conditions": {}}).json()["channels"] == []
    # A member may; livestream channels are open to every user.
    assert as_user(base_url, "bob", "POST", "/channels/messaging/room/query", json={}).status_code == 201
    assert as_user(base_url, "eve", "POST", "/channels/livestream/show/query", json={}).status_code == 201
    assert (
        as_user(
            base_url, "ann", "POST", "/channels/livestream/show/message", json={"message": {"text": "hey"}}
        ).status_code
        == 201
    )


def test_message_pagination_pages_back_and_forth(sc, room):
    channel = sc.channel("messaging", "room", {"created_by_id": "ann"})
    ids = [channel.send_message({"text": f"m{n}"}, "ann")["message"]["id"] for n in range(10)]

    def texts(**messages) -> list[str]:
        return [m["text"] for m in channel.query(messages=messages)["messages"]]

    assert texts(limit=3) == ["m7", "m8", "m9"]
    assert texts(limit=3, id_lt=ids[7]) == ["m4", "m5", "m6"]
    assert texts(limit=3, id_lte=ids[7]) == ["m5", "m6", "m7"]
    assert texts(limit=3, id_gt=ids[2]) == ["m3", "m4", "m5"]
    assert texts(limit=3, id_gte=ids[2]) == ["m2", "m3", "m4"]
    assert texts(limit=3, id_lt=ids[1]) == ["m0"]
    assert texts(limit=3, id_lt="no-such-message") == []


def test_uploads_are_served_back_and_devices_are_kept(base_url, emu, room):
    answer = as_user(
        base_url, "ann", "POST", "/channels/messaging/room/file", files={"file": ("notes.txt", b"hello", "text/plain")}
    )
    assert answer.status_code == 201, answer.text
    assert httpx.get(answer.json()["file"]).content == b"hello"
    not_image = as_user(
        base_url, "ann", "POST", "/channels/messaging/room/image", files={"file": ("notes.txt", b"hello", "text/plain")}
    )
    assert not_image.status_code == 400 and "image/*" in not_image.json()["message"]
    refused = as_user(
        base_url, "eve", "POST", "/channels/messaging/room/file", files={"file": ("notes.txt", b"hello", "text/plain")}
    )
    assert refused.status_code == 403 and "UploadAttachment" in refused.json()["message"]

    added = as_user(base_url, "ann", "POST", "/devices", json={"id": "tok-1", "push_provider": "firebase"})
    assert added.status_code == 201
    listed = as_user(base_url, "ann", "GET", "/devices")
    assert [d["id"] for d in listed.json()["devices"]] == ["tok-1"]
    bad = as_user(base_url, "ann", "POST", "/devices", json={"id": "tok-2", "push_provider": "pigeon"})
    assert bad.status_code == 400 and "push_provider must be one of" in bad.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": {"limit": "many"}},
        {"messages": {"limit": 301}},
        {"messages": {"created_at_before": "yesterday"}},
        {"members": {"limit": "all"}},
    ],
)
def test_bad_paging_options_are_refused_in_words(base_url, emu, room, body):
    answer = as_user(base_url, "ann", "POST", "/channels/messaging/room/query", json=body)
    assert answer.status_code == 400 and answer.json()["code"] == 4
    assert "must be" in answer.json()["message"]


def test_bad_connect_payloads_get_an_error_frame(base_url, emu):
    query = {"api_key": KEY, "authorization": token("ann"), "stream-auth-type": "jwt", "json": "{not json"}
    with connect(base_url.replace("http://", "ws://") + "/connect?" + urlencode(query)) as ws:
        frame = json.loads(ws.recv(timeout=DEADLINE_S))
    assert frame["error"]["code"] == 4 and "not valid JSON" in frame["error"]["message"]
    query = {"api_key": "wrong", "authorization": token("ann"), "stream-auth-type": "jwt", "json": "{}"}
    with connect(base_url.replace("http://", "ws://") + "/connect?" + urlencode(query)) as ws:
        frame = json.loads(ws.recv(timeout=DEADLINE_S))
    assert frame["error"]["code"] == 2 and "api_key is invalid" in frame["error"]["message"]


def test_own_capabilities_follow_membership(base_url, emu, room):
    bob = as_user(base_url, "bob", "POST", "/channels/messaging/room/query", json={}).json()["channel"]
    assert {"send-message", "send-reaction", "update-own-message", "delete-own-message", "upload-file"} <= set(
        bob["own_capabilities"]
    )
    assert "delete-any-message" not in bob["own_capabilities"]
    show = as_user(base_url, "eve", "POST", "/channels/livestream/show/query", json={}).json()["channel"]
    assert "send-message" in show["own_capabilities"] and "update-channel" not in show["own_capabilities"]
    assert "join-channel" in show["own_capabilities"]


def test_connection_only_events_are_not_webhooks(base_url, emu, sc, room, webhook_url):
    sc.update_app_settings(webhook_url=webhook_url)
    with socket(base_url, "ann") as (ann_ws, ann_conn):
        as_user(base_url, "ann", "POST", "/channels/messaging/room/query", connection_id=ann_conn, json={"watch": True})
        as_user(base_url, "bob", "POST", "/channels/messaging/room/event", json={"event": {"type": "typing.start"}})
        as_user(base_url, "bob", "POST", "/channels/messaging/room/message", json={"message": {"text": "hi"}})
        assert next_event(ann_ws, "message.new")["message"]["text"] == "hi"
    emu.webhooks.wait_for(1, "message.new")
    emu.webhooks.wait_idle(DEADLINE_S)
    assert {d.event_type for d in emu.webhook_deliveries} == {"message.new"}
