"""Messages and reads: send a message, mark read, unread counts per user (§3.12)."""

from __future__ import annotations

import uuid

from .. import events
from ..call import Call, check_batch, check_user_id, drop_nulls
from ..clock import now_ns, rfc3339
from ..errors import input_error, not_found
from ..state import Channel, Message, Read
from . import threads

MESSAGE_BUILTINS = frozenset(
    {
        "id",
        "text",
        "type",
        "user",
        "user_id",
        "attachments",
        "mentioned_users",
        "parent_id",
        "show_in_channel",
        "silent",
        "pinned",
        "pin_expires",
        "pinned_at",
        "quoted_message_id",
        "html",
        "mml",
        "poll_id",
        "restricted_visibility",
        "custom",
        "cid",
    }
)


def create_message(call: Call, channel: Channel, raw: dict) -> Message:
    """Validate and append one message, updating everyone's unread count."""
    raw = drop_nulls(raw)
    for reserved in ("created_at", "updated_at"):
        if reserved in raw:
            raise input_error(f"message.{reserved} is a reserved field")
    if call.caller.is_server and raw.get("user") is not None and raw.get("user_id") is not None:
        raise input_error("cannot set both message.user and message.user_id.")
    sender = call.require_user(call.acting_user_id(raw, "message.")).id
    message_id = raw.get("id") or str(uuid.uuid4())
    if len(message_id) > 255 or "," in message_id or "%" in message_id:
        raise input_error(f"message.id {message_id} is not valid", id="invalid message id")
    if channel.message(message_id) is not None:
        raise input_error(f"message with id {message_id} already exists")
    parent = threads.parent_of(channel, raw["parent_id"]) if "parent_id" in raw else None
    visible_to = [
        check_user_id(uid, "message.restricted_visibility")
        for uid in check_batch("restricted_visibility", raw.get("restricted_visibility"))
    ]
    custom = dict(raw.get("custom") or {})
    custom.update((k, v) for k, v in raw.items() if k not in MESSAGE_BUILTINS)
    now = now_ns()
    message = Message(
        message_id, str(raw.get("text") or ""), sender, now, custom, "regular" if parent is None else "reply"
    )
    message.restricted_visibility = visible_to
    channel.messages.append(message)
    if parent is not None:
        message.parent_id = parent.id
        message.show_in_channel = bool(raw.get("show_in_channel"))
        threads.add_reply(channel, parent, message)
        if not message.show_in_channel:
            # A thread-only reply is no channel activity: no unread, no last_message_at.
            return message
    channel.last_message_at = now
    for user_id in channel.members:
        read = channel.reads.get(user_id)
        if read is None:
            read = channel.reads[user_id] = Read(channel.created_at)
        if user_id == sender:
            # A sender has read their own message.
            read.last_read, read.last_read_message_id, read.unread_messages = now, message_id, 0
        else:
            read.unread_messages += 1
    return message


def send(call: Call) -> dict:
    """POST /channels/{type}/{id}/message."""
    channel = call.channel()
    raw = call.body.get("message")
    if not isinstance(raw, dict):
        raise input_error("message is a required field", message="required")
    message = create_message(call, channel, raw)
    events.message_new(call, channel, message)
    return {"message": call.dialect.message(channel, message, call.state.users)}


def _unread_totals(call: Call, user_id: str) -> tuple[int, int]:
    total = channels = 0
    for channel in call.state.channels.values():
        read = channel.reads.get(user_id)
        if read is not None and read.unread_messages and user_id in channel.members:
            total += read.unread_messages
            channels += 1
    return total, channels


def mark_read(call: Call) -> dict:
    """POST /channels/{type}/{id}/read: the user has read everything (up to message_id)."""
    channel = call.channel()
    body = drop_nulls(call.body)
    user = call.require_user(call.acting_user_id(body))
    message_id = body.get("message_id")
    now = now_ns()
    time = call.dialect.time
    event = {
        "type": "message.read",
        "cid": channel.cid,
        "channel_id": channel.id,
        "channel_type": channel.type,
        "created_at": time(now),
        "user": call.dialect.user(user),
    }
    if body.get("thread_id"):
        parent = threads.mark_thread_read(channel, user.id, str(body["thread_id"]), now)
        event["thread"] = threads.thread_body(channel, parent, time)
        if call.webhooks_on:
            events.channel_event(
                call, "message.read", channel, user_id=user.id, thread=threads.thread_body(channel, parent, rfc3339)
            )
        return {"event": event}
    if message_id and channel.message(message_id) is None:
        raise not_found(f"message {message_id} does not exist")
    if not message_id:
        message_id = next((m.id for m in reversed(channel.messages) if m.in_channel), None)
    channel.reads[user.id] = Read(now, message_id, 0)
    if message_id:
        event["last_read_message_id"] = message_id
    if call.webhooks_on:
        extra = {"last_read_message_id": message_id} if message_id else {}
        events.channel_event(call, "message.read", channel, user_id=user.id, **extra)
        total, unread_channels = _unread_totals(call, user.id)
        events.channel_event(
            call,
            "notification.mark_read",
            channel,
            user_id=user.id,
            total_unread_count=total,
            unread_channels=unread_channels,
            unread_count=total,
            **extra,
        )
    return {"event": event}


def unread_counts(call: Call) -> dict:
    """GET /unread?user_id=: the user's unread messages per channel and channel type."""
    user_id = call.caller.user_id or call.query.get("user_id")
    if not user_id:
        raise input_error("user_id is required for server side requests", user_id="required")
    call.require_user(user_id)
    return counts_for(call, user_id)


def unread_batch(call: Call) -> dict:
    """POST /unread_batch {user_ids}: the same counts for up to 100 users, keyed by user id."""
    user_ids = check_batch("user_ids", call.body.get("user_ids"))
    if not user_ids:
        raise input_error("user_ids is a required field", user_ids="required")
    counts = {}
    for user_id in user_ids:
        call.require_user(check_user_id(user_id, "user_ids"))
        counts[user_id] = counts_for(call, user_id)
    return {"counts_by_user": counts}


def counts_for(call: Call, user_id: str) -> dict:
    """One user's unread messages per channel and type, and unread threads."""
    time = call.dialect.time
    per_channel, per_type = [], {}
    total = 0
    for channel in call.state.channels.values():
        read = channel.reads.get(user_id)
        if user_id not in channel.members or read is None or not read.unread_messages:
            continue
        total += read.unread_messages
        per_channel.append(
            {"channel_id": channel.cid, "unread_count": read.unread_messages, "last_read": time(read.last_read)}
        )
        bucket = per_type.setdefault(
            channel.type, {"channel_type": channel.type, "channel_count": 0, "unread_count": 0}
        )
        bucket["channel_count"] += 1
        bucket["unread_count"] += read.unread_messages
    unread_threads = threads.unread_threads(call.state, user_id, time)
    return {
        "total_unread_count": total,
        "total_unread_threads_count": len(unread_threads),
        "total_unread_count_by_team": {},
        "channels": per_channel,
        "channel_type": list(per_type.values()),
        "threads": unread_threads,
    }
