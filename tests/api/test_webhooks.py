"""POST /api/chat/webhooks/stream: signed, deduplicated, applied without ever moving a timestamp backwards."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event, func, select, update

from onecrew_chat.conversations.unread import unread_cache
from onecrew_chat.db_counters import attach_counters
from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import Identity
from onecrew_chat.metrics import DRIFT_DETECTED
from onecrew_chat.models import ChannelDrift, Conversation, ConversationParticipant, WebhookEvent
from onecrew_chat.webhooks.body import sign
from onecrew_chat.webhooks.events import parse_event, parse_time
from onecrew_chat.webhooks.text import cut_preview
from tests.api.conversation_rows import add_conversation
from tests.conftest import make_settings
from tests.factories import add_users
from tests.support import STREAM_SECRET, auth, new_id, wait_until

URL = "/api/chat/webhooks/stream"
UNREAD = "/api/chat/conversations/unread-count?profile_type=user"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def rfc3339(at: datetime) -> str:
    """The v1 dialect's time format."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def message_new(channel_id: str, sender: str, text: str, at: datetime, **message_fields) -> dict:
    """A message.new event as Stream (and the emulator) send it."""
    return {
        "type": "message.new",
        "cid": f"messaging:{channel_id}",
        "channel_id": channel_id,
        "channel_type": "messaging",
        "message": {
            "id": new_id(),
            "text": text,
            "type": "regular",
            "created_at": rfc3339(at),
            "user": {"id": sender},
            **message_fields,
        },
        "user": {"id": sender},
        "created_at": rfc3339(at + timedelta(milliseconds=3)),
    }


def channel_event(event_type: str, channel_id: str, user: str | None, at: datetime, **extra) -> dict:
    """message.read, notification.mark_read, channel.deleted, member.removed."""
    event = {
        "type": event_type,
        "cid": f"messaging:{channel_id}",
        "channel_id": channel_id,
        "channel_type": "messaging",
        "created_at": rfc3339(at),
        **extra,
    }
    if user:
        event["user"] = {"id": user}
    return event


async def deliver(client, payload: dict, *, webhook_id: str | None = None, secret: str = STREAM_SECRET):
    """POST the event signed like Stream signs it."""
    body = json.dumps(payload).encode()
    headers = {
        "X-Signature": sign(body, secret),
        "X-Webhook-Id": webhook_id or new_id(),
        "Content-Type": "application/json",
    }
    return await client.post(URL, content=body, headers=headers)


async def pair(session):
    """Two users and their ready conversation."""
    a, b = await add_users(session, 2)
    conversation = await add_conversation(session, Identity.user(a), Identity.user(b))
    return a, b, conversation


async def fresh(session, model, *where):
    """Rows as committed by the app."""
    return (await session.scalars(select(model).where(*where).execution_options(populate_existing=True))).all()


async def read_at(session, conversation, user: str) -> datetime | None:
    [participant] = await fresh(
        session,
        ConversationParticipant,
        ConversationParticipant.conversation_id == conversation.id,
        ConversationParticipant.participant_id == user,
    )
    return participant.last_read_at


class TestSignature:
    @pytest.fixture
    def settings(self, sqlite_only_url, emulator, emulator_server):
        return make_settings(sqlite_only_url, emulator_server.base_url)

    @pytest.mark.parametrize("signature", [None, "", "00" * 32, "not-hex", "é".encode("latin-1")])
    async def test_missing_or_wrong_signature_is_401(self, client, signature):
        body = json.dumps({"type": "user.updated", "user": {"id": "x"}}).encode()
        headers = {"X-Webhook-Id": new_id()} | ({"X-Signature": signature} if signature is not None else {})
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"success": False, "error": "Invalid webhook signature", "code": "invalid_signature"}

    async def test_signed_with_another_secret_is_401(self, client):
        response = await deliver(client, {"type": "user.updated", "user": {"id": "x"}}, secret="another-secret")
        assert response.status_code == 401

    async def test_signature_covers_the_raw_bytes(self, client):
        body = b'{"type": "user.updated",   "user": {"id": "x"}}'
        reformatted = json.dumps(json.loads(body)).encode()
        response = await client.post(URL, content=body, headers={"X-Signature": sign(reformatted, STREAM_SECRET)})
        assert response.status_code == 401
        ok = await client.post(URL, content=body, headers={"X-Signature": sign(body, STREAM_SECRET).upper()})
        assert ok.status_code == 200

    @pytest.mark.parametrize("body", [b"{broken", b"[]", b'{"no_type": 1}'])
    async def test_signed_garbage_is_400(self, client, body):
        response = await client.post(URL, content=body, headers={"X-Signature": sign(body, STREAM_SECRET)})
        assert response.status_code == 400
        assert response.json()["success"] is False

    @pytest.mark.parametrize(
        "body",
        [
            b'{"type": "message.new", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            b'{"type": 5}',
            b'{"type": "message.new\\u0000"}',
        ],
        ids=["nested-too-deep", "type-not-text", "type-nul"],
    )
    async def test_signed_but_malformed_events_are_400_with_words(self, client, body):
        response = await client.post(URL, content=body, headers={"X-Signature": sign(body, STREAM_SECRET)})
        assert response.status_code == 400
        assert response.json() == {
            "success": False,
            "error": response.json()["error"],
            "code": response.json()["code"],
        }
        assert response.json()["error"].startswith("Webhook body")

    async def test_times_python_cannot_convert_are_unreadable_not_500(self, client, session):
        a, b, conversation = await pair(session)
        for stamp in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
            event = message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0)
            event["message"]["created_at"] = event["created_at"] = stamp
            response = await deliver(client, event)
            assert response.status_code == 200, response.text
            assert response.json()["data"] | {"webhook_id": None} == {
                "webhook_id": None,
                "type": "message.new",
                "status": "ignored",
                "reason": "not channel activity",
            }

    async def test_user_updated_is_ignored_politely(self, client, session):
        response = await deliver(
            client, {"type": "user.updated", "user": {"id": "onecrew_user_x"}, "created_at": rfc3339(T0)}
        )
        assert response.status_code == 200
        assert response.json()["data"]["status"] == "ignored"
        assert await fresh(session, WebhookEvent) == []

    async def test_unknown_channel_records_nothing(self, client, session):
        a, b = await add_users(session, 2)
        response = await deliver(client, message_new("user_user-" + "9" * 32, f"onecrew_user_{a}", "hi", T0))
        assert response.status_code == 200
        assert response.json()["data"] == {
            "webhook_id": response.json()["data"]["webhook_id"],
            "type": "message.new",
            "status": "ignored",
            "reason": "unknown channel",
        }
        assert await fresh(session, WebhookEvent) == [] and await fresh(session, ChannelDrift) == []


def test_parse_time_reads_stream_precisions():
    assert parse_time("2026-03-01T12:00:00Z") == T0
    assert parse_time("2026-03-01T12:00:00.123456789Z") == T0 + timedelta(microseconds=123456)
    assert parse_time("2026-03-01T14:00:00.5+02:00") == T0 + timedelta(milliseconds=500)
    assert parse_time("yesterday") is None and parse_time(12) is None


def test_parse_event_treats_text_no_database_stores_as_absent_or_repairs_it():
    """Lone surrogates (the RequestGuard refuses them over HTTP; this is the layer under it) and NULs."""
    body = (
        b'{"type": "message.new", "channel_id": "x\\ud800", "user": {"id": "onecrew_user_\\u0000"}, '
        b'"message": {"text": "a\\u0000b \\ud83d c \\ud83d\\ude00", "user": {"id": "\\udc00"}}}'
    )
    event = parse_event(body)
    assert (event.channel_id, event.user_id, event.message.user_id) == (None, None, None)
    assert event.message.text == "ab \ufffd c \U0001f600"
    for bad_type in (b'{"type": "message.new\\ud800"}', b'{"type": "\\u0000"}'):
        with pytest.raises(BadRequest, match="must be a JSON object with a type"):
            parse_event(bad_type)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x" * 250, "x" * 200),
        ("x" * 199 + "e\u0301" + "tail", "x" * 199),  # e + combining acute: both or neither
        ("x" * 199 + "\U0001f44d\U0001f3fd", "x" * 199),  # thumbs up + skin tone
        ("x" * 197 + "\U0001f468\u200d\U0001f469\u200d\U0001f467", "x" * 197),  # a family (ZWJ sequence)
        ("x" * 199 + "\U0001f1ea\U0001f1ec", "x" * 199),  # a flag is two regional indicators
        ("x" * 198 + "\U0001f1ea\U0001f1ec\U0001f1eb\U0001f1f7", "x" * 198 + "\U0001f1ea\U0001f1ec"),
        ("\U0001f600" * 200, "\U0001f600" * 200),
        ("e" + "\u0301" * 300, ("e" + "\u0301" * 300)[:200]),  # one endless cluster is cut hard
        ("short", "short"),
    ],
    ids=["ascii", "accent", "skin-tone", "zwj", "flag", "two-flags", "emoji", "zalgo", "short"],
)
def test_previews_are_cut_to_200_characters_between_characters(text, expected):
    assert cut_preview(text) == expected
    assert len(cut_preview(text)) <= 200


class TestApply:
    """Timestamps and drift rows are persisted: both databases."""

    async def test_message_new_sets_activity_and_the_other_side_sees_it_unread(self, client, session):
        a, b, conversation = await pair(session)
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 0  # now cached
        text = "x" * 199 + "\U0001f1ea\U0001f1ec" + "y" * 50  # a flag (two code points) across the 200th
        response = await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", text, T0))
        assert response.status_code == 200 and response.json()["data"]["status"] == "applied"
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert stored.last_message_at == T0
        assert stored.last_message_preview == "x" * 199, "cut to 200 characters, never half a flag"
        assert await read_at(session, conversation, a) == T0, "the sender has read their own message"
        assert await read_at(session, conversation, b) is None
        unread_b = (await client.get(UNREAD, headers=auth(b))).json()["data"]
        assert unread_b["unread_count"] == 1 and unread_b["cached"] is False, "the webhook invalidated the cache"
        assert (await client.get(UNREAD, headers=auth(a))).json()["data"]["unread_count"] == 0

    @pytest.mark.parametrize("channel_id", ["x\\u0000y", "c" * 5000, "has space"], ids=["nul", "long", "space"])
    async def test_channel_ids_we_never_make_are_ignored(self, client, session, channel_id):
        """Junk a database would refuse (NUL on PostgreSQL) is not even looked up."""
        body = (
            '{"type": "message.new", "channel_type": "messaging", "channel_id": "%s", '
            '"message": {"text": "hi", "created_at": "2026-03-01T12:00:00Z"}}' % channel_id
        ).encode()
        response = await client.post(URL, content=body, headers={"X-Signature": sign(body, STREAM_SECRET)})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["status"] == "ignored"
        assert await fresh(session, WebhookEvent) == []

    async def test_a_nul_in_the_text_is_dropped_from_the_preview(self, client, session):
        """PostgreSQL cannot store a NUL; the rest of the text is kept."""
        a, b, conversation = await pair(session)
        body = (
            '{"type": "message.new", "channel_type": "messaging", "channel_id": "%s", "user": {"id": "onecrew_user_%s"}, '
            '"message": {"text": "a\\u0000b \\ud83d\\ude00", "created_at": "%s"}}'
            % (conversation.channel_id, a, rfc3339(T0))
        ).encode()
        response = await client.post(URL, content=body, headers={"X-Signature": sign(body, STREAM_SECRET)})
        assert response.status_code == 200, response.text
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert stored.last_message_preview == "ab \U0001f600"

    async def test_cached_counts_are_dropped_after_the_commit_never_before(self, client, session, app):
        """Dropped before the commit, a concurrent read could cache the old count again for the whole TTL."""
        a, b, conversation = await pair(session)
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 0
        runtime = app.state.runtime
        cache, key = unread_cache(runtime), f"onecrew_user_{b}"
        cached_at_commit = []

        def on_commit(_connection) -> None:
            cached_at_commit.append(cache.get(key))

        event.listen(runtime.engine.sync_engine, "commit", on_commit)
        try:
            response = await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0))
        finally:
            event.remove(runtime.engine.sync_engine, "commit", on_commit)
        assert response.json()["data"]["status"] == "applied"
        assert cached_at_commit == [0], "the count was still cached when the webhook's transaction committed"
        assert cache.get(key) is None, "and dropped once it had"

    @pytest.mark.parametrize("event_type", ["message.read", "notification.mark_read"])
    async def test_read_events_move_last_read_at(self, client, session, event_type):
        a, b, conversation = await pair(session)
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0))
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 1
        read = await deliver(
            client, channel_event(event_type, conversation.channel_id, f"onecrew_user_{b}", T0 + timedelta(seconds=5))
        )
        assert read.json()["data"]["status"] == "applied"
        assert await read_at(session, conversation, b) == T0 + timedelta(seconds=5)
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 0

    async def test_out_of_order_events_never_move_timestamps_backwards(self, client, session):
        a, b, conversation = await pair(session)
        late, early = T0 + timedelta(minutes=5), T0
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "second", late))
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "first", early))
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert (stored.last_message_at, stored.last_message_preview) == (late, "second")
        assert await read_at(session, conversation, a) == late
        await deliver(client, channel_event("message.read", conversation.channel_id, f"onecrew_user_{b}", late))
        await deliver(client, channel_event("message.read", conversation.channel_id, f"onecrew_user_{b}", early))
        assert await read_at(session, conversation, b) == late

    async def test_an_event_dated_far_ahead_counts_as_received_so_later_events_still_move_activity_and_reads(
        self, client, session
    ):
        """Signed events dated 9999-12-31 would pin the activity, preview and read markers for good."""
        a, b, conversation = await pair(session)
        sender, reader = f"onecrew_user_{a}", f"onecrew_user_{b}"
        doomsday = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        before = datetime.now(UTC)
        future = await deliver(client, message_new(conversation.channel_id, sender, "from the future", doomsday))
        future_read = await deliver(client, channel_event("message.read", conversation.channel_id, reader, doomsday))
        after = datetime.now(UTC)
        assert [r.json()["data"]["status"] for r in (future, future_read)] == ["applied", "applied"]
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert before <= stored.last_message_at <= after, "taken as the time it was received"
        assert before <= await read_at(session, conversation, b) <= after

        later = datetime.now(UTC) + timedelta(seconds=1)
        await deliver(client, message_new(conversation.channel_id, sender, "hello", later))
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert (stored.last_message_at, stored.last_message_preview) == (later, "hello")
        assert await read_at(session, conversation, a) == later
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 1
        await deliver(client, channel_event("message.read", conversation.channel_id, reader, later))
        assert await read_at(session, conversation, b) == later
        assert (await client.get(UNREAD, headers=auth(b))).json()["data"]["unread_count"] == 0

    async def test_markers_pinned_far_ahead_before_the_bound_heal_with_the_next_event(self, client, session):
        a, b, conversation = await pair(session)
        doomsday = datetime(9999, 12, 31, tzinfo=UTC)
        await session.execute(
            update(Conversation).where(Conversation.id == conversation.id).values(last_message_at=doomsday)
        )
        await session.execute(
            update(ConversationParticipant)
            .where(ConversationParticipant.conversation_id == conversation.id)
            .values(last_read_at=doomsday)
        )
        await session.commit()
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "healed", T0))
        await deliver(client, channel_event("message.read", conversation.channel_id, f"onecrew_user_{b}", T0))
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert (stored.last_message_at, stored.last_message_preview) == (T0, "healed")
        assert await read_at(session, conversation, a) == T0 and await read_at(session, conversation, b) == T0

    async def test_a_few_minutes_of_clock_skew_keeps_streams_time(self, client, session):
        a, b, conversation = await pair(session)
        ahead = datetime.now(UTC) + timedelta(minutes=2)
        await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "skewed", ahead))
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert stored.last_message_at == ahead

    async def test_a_repeated_webhook_id_changes_nothing(self, client, session):
        a, b, conversation = await pair(session)
        webhook_id = new_id()
        first = await deliver(
            client, message_new(conversation.channel_id, f"onecrew_user_{a}", "one", T0), webhook_id=webhook_id
        )
        again = await deliver(
            client,
            message_new(conversation.channel_id, f"onecrew_user_{a}", "two", T0 + timedelta(hours=1)),
            webhook_id=webhook_id,
        )
        assert first.json()["data"]["status"] == "applied"
        assert again.status_code == 200 and again.json()["data"]["status"] == "duplicate"
        [stored] = await fresh(session, Conversation, Conversation.id == conversation.id)
        assert (stored.last_message_at, stored.last_message_preview) == (T0, "one")

    async def test_concurrent_redeliveries_apply_once(self, client, session):
        a, b, conversation = await pair(session)
        payload = message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0)
        webhook_id = new_id()
        answers = await asyncio.gather(*(deliver(client, payload, webhook_id=webhook_id) for _ in range(5)))
        assert sorted(r.json()["data"]["status"] for r in answers) == ["applied"] + ["duplicate"] * 4
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 1

    async def test_thread_replies_not_shown_in_the_channel_are_not_activity(self, client, session):
        a, b, conversation = await pair(session)
        reply = message_new(conversation.channel_id, f"onecrew_user_{a}", "in thread", T0, parent_id=new_id())
        assert (await deliver(client, reply)).json()["data"]["status"] == "ignored"
        shown = message_new(
            conversation.channel_id,
            f"onecrew_user_{a}",
            "also sent to channel",
            T0,
            parent_id=new_id(),
            show_in_channel=True,
        )
        assert (await deliver(client, shown)).json()["data"]["status"] == "applied"

    async def test_channel_deleted_is_recorded_as_drift(self, client, session):
        a, b, conversation = await pair(session)
        before = DRIFT_DETECTED.labels(kind="channel_deleted")._value.get()
        response = await deliver(client, channel_event("channel.deleted", conversation.channel_id, None, T0))
        assert response.json()["data"]["status"] == "applied"
        [drift] = await fresh(session, ChannelDrift)
        assert (drift.channel_type, drift.channel_id, drift.kind, drift.resolved_at) == (
            "messaging",
            conversation.channel_id,
            "channel_deleted",
            None,
        )
        assert DRIFT_DETECTED.labels(kind="channel_deleted")._value.get() == before + 1

    async def test_member_removed_is_drift_only_for_a_participant(self, client, session):
        a, b, conversation = await pair(session)
        stranger = f"onecrew_user_{new_id()}"
        ignored = await deliver(
            client, channel_event("member.removed", conversation.channel_id, stranger, T0, member={"user_id": stranger})
        )
        assert ignored.json()["data"]["status"] == "ignored"
        removed = f"onecrew_user_{b}"
        applied = await deliver(
            client, channel_event("member.removed", conversation.channel_id, removed, T0, member={"user_id": removed})
        )
        assert applied.json()["data"]["status"] == "applied"
        [drift] = await fresh(session, ChannelDrift)
        assert drift.kind == "member_removed" and drift.detail["stream_id"] == removed


async def test_a_message_new_is_three_statements_on_postgresql_and_four_on_sqlite(client, app, session, database_url):
    """The conversation with its members, the webhook id, the activity and the sender's read marker (on PostgreSQL one
    statement with the NOTIFY)."""
    a, b, conversation = await pair(session)
    counters = attach_counters(app.state.runtime.engine)
    response = await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0))
    assert response.json()["data"]["status"] == "applied"
    assert counters.statements == (3 if database_url.startswith("postgresql") else 4)
    assert await read_at(session, conversation, a) == T0 and await read_at(session, conversation, b) is None


async def test_a_message_new_drops_the_cached_counts_of_every_process(client, app, session, settings, database_url):
    """The NOTIFY the webhook sends in its transaction reaches another API process, whose cached count goes."""
    from onecrew_chat.api.app import create_app

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one process")
    a, b, conversation = await pair(session)
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        cache = unread_cache(other.state.runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as elsewhere:
            url = "/api/chat/conversations/unread-count?profile_type=user"
            first = await elsewhere.get(url, headers=auth(b))
            assert first.json()["data"]["unread_count"] == 0
            assert cache.get(f"onecrew_user_{b}") == 0, "the other process caches b's count"

            response = await deliver(client, message_new(conversation.channel_id, f"onecrew_user_{a}", "hi", T0))
            assert response.json()["data"]["status"] == "applied"

            await wait_until(lambda: cache.get(f"onecrew_user_{b}") is None, what="the other process to drop b's count")
            again = await elsewhere.get(url, headers=auth(b))
            assert again.json()["data"] == {**first.json()["data"], "unread_count": 1, "cached": False}
