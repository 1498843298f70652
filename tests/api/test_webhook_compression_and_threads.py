"""Stream webhooks sent gzipped (enable_hook_payload_compression) and thread reads: signed over the JSON,
bounded once decompressed, and a thread read never marks the channel read."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import timedelta

import pytest

from onecrew_chat.webhooks.body import MAX_WEBHOOK_BODY_BYTES, sign
from tests.api.test_webhooks import T0, UNREAD, URL, channel_event, deliver, message_new, pair, read_at
from tests.support import STREAM_SECRET, auth, new_id


async def deliver_gzip(client, payload: dict, *, header: str | None = "gzip", signed_over: str = "json"):
    """POST the event gzipped, signed the way Stream signs it: over the uncompressed JSON."""
    data = json.dumps(payload).encode()
    body = gzip.compress(data)
    headers = {
        "X-Signature": sign(data if signed_over == "json" else body, STREAM_SECRET),
        "X-Webhook-Id": new_id(),
        "Content-Type": "application/json",
    }
    if header is not None:
        headers["Content-Encoding"] = header
    return await client.post(URL, content=body, headers=headers)


class TestCompressed:
    async def test_a_gzip_delivery_verifies_against_the_json_and_applies(self, client, session):
        a, b, conversation = await pair(session)
        response = await deliver_gzip(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "zipped", T0))
        assert response.status_code == 200, response.text
        assert response.json()["data"]["status"] == "applied"
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 1

    async def test_gzip_is_recognised_without_the_header(self, client, session):
        a, b, conversation = await pair(session)
        payload = message_new(conversation.channel_id, f"onecrew_user_{a}", "x", T0)
        response = await deliver_gzip(client, payload, header=None)
        assert response.status_code == 200 and response.json()["data"]["status"] == "applied"

    async def test_a_signature_over_the_compressed_bytes_is_refused(self, client, session):
        a, _b, conversation = await pair(session)
        payload = message_new(conversation.channel_id, f"onecrew_user_{a}", "x", T0)
        response = await deliver_gzip(client, payload, signed_over="gzip")
        assert response.status_code == 401 and response.json()["code"] == "invalid_signature"

    async def test_a_gzip_bomb_is_413_not_inflated(self, client):
        # ~8 KiB on the wire, 9 MiB once inflated: past the limit that holds for plain bodies.
        inflated = b"{" + b" " * (MAX_WEBHOOK_BODY_BYTES + 1024 * 1024) + b"}"
        body = gzip.compress(inflated, compresslevel=9)
        assert len(body) < 64 * 1024
        response = await client.post(
            URL,
            content=body,
            headers={
                "Content-Encoding": "gzip",
                "X-Signature": sign(inflated, STREAM_SECRET),
                "X-Webhook-Id": new_id(),
            },
        )
        assert response.status_code == 413, response.text
        assert response.json() == {"success": False, "code": "body_too_large", "error": response.json()["error"]}
        assert "decompressed" in response.json()["error"]

    @pytest.mark.parametrize(
        "body", [b"\x1f\x8bnot gzip at all", gzip.compress(b"{}")[:-6], gzip.compress(b"{}") + b"trailing"]
    )
    async def test_broken_gzip_is_400(self, client, body):
        response = await client.post(URL, content=body, headers={"Content-Encoding": "gzip", "X-Signature": "00"})
        assert response.status_code == 400 and response.json()["code"] == "invalid_gzip"

    async def test_another_encoding_is_415(self, client):
        body = zlib.compress(b"{}")
        response = await client.post(URL, content=body, headers={"Content-Encoding": "br", "X-Signature": "00"})
        assert response.status_code == 415 and response.json()["code"] == "unsupported_encoding"


class TestThreadReads:
    async def test_a_thread_read_does_not_mark_the_channel_read(self, client, session):
        a, b, conversation = await pair(session)
        parent = message_new(conversation.channel_id, f"onecrew_user_{a}", "question", T0)
        await deliver(client, parent)
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 1
        thread_read = channel_event(
            "message.read",
            conversation.channel_id,
            f"onecrew_user_{b}",
            T0 + timedelta(seconds=5),
            thread={"parent_message_id": parent["message"]["id"], "reply_count": 1},
        )
        answer = await deliver(client, thread_read)
        assert answer.json()["data"] == {**answer.json()["data"], "status": "ignored", "reason": "thread read"}
        assert await read_at(session, conversation, b) is None
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 1

    async def test_a_channel_read_still_marks_it_read(self, client, session):
        a, b, conversation = await pair(session)
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0))
        read = channel_event("message.read", conversation.channel_id, f"onecrew_user_{b}", T0 + timedelta(seconds=5))
        assert (await deliver(client, read)).json()["data"]["status"] == "applied"
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 0
