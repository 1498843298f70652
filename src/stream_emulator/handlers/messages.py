"""Messages and reads: send a message, mark read, unread counts per user (§3.12)."""

from __future__ import annotations

import uuid

from .. import events
from ..call import Call, drop_nulls
from ..clock import now_ns
from ..errors import input_error, not_found
from ..state import Channel, Message, Read

MESSAGE_BUILTINS = frozenset({
    "id", "text", "type", "user", "user_id", "attachments", "mentioned_users", "parent_id",
    "show_in_channel", "silent", "pinned", "pin_expires", "pinned_at", "quoted_message_id",
    "html", "mml", "poll_id", "restricted_visibility", "custom", "cid",
})


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
    if any(m.id == message_id for m in channel.messages):
        raise input_error(f"message with id {message_id} already exists")
    custom = dict(raw.get("custom") or {})
    custom.update((k, v) for k, v in raw.items() if k not in MESSAGE_BUILTINS)
    now = now_ns()
    message = Message(message_id, str(raw.get("text") or ""), sender, now, custom)
    channel.messages.append(message)
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
    if message_id and not any(m.id == message_id for m in channel.messages):
        raise not_found(f"message {message_id} does not exist")
    if not message_id and channel.messages:
        message_id = channel.messages[-1].id
    now = now_ns()
    channel.reads[user.id] = Read(now, message_id, 0)
    time = call.dialect.time
    event = {"type": "message.read", "cid": channel.cid, "channel_id": channel.id,
             "channel_type": channel.type, "created_at": time(now),
             "user": call.dialect.user(user)}
    if message_id:
        event["last_read_message_id"] = message_id
    if call.webhooks_on:
        extra = {"last_read_message_id": message_id} if message_id else {}
        events.channel_event(call, "message.read", channel, user_id=user.id, **extra)
        total, unread_channels = _unread_totals(call, user.id)
        events.channel_event(call, "notification.mark_read", channel, user_id=user.id,
                             total_unread_count=total, unread_channels=unread_channels,
                             unread_count=total, **extra)
    return {"event": event}


def unread_counts(call: Call) -> dict:
    """GET /unread?user_id=: the user's unread messages per channel and channel type."""
    user_id = call.caller.user_id or call.query.get("user_id")
    if not user_id:
        raise input_error("user_id is required for server side requests", user_id="required")
    call.require_user(user_id)
    time = call.dialect.time
    per_channel, per_type = [], {}
    total = 0
    for channel in call.state.channels.values():
        read = channel.reads.get(user_id)
        if user_id not in channel.members or read is None or not read.unread_messages:
            continue
        total += read.unread_messages
        per_channel.append({"channel_id": channel.cid, "unread_count": read.unread_messages,
                            "last_read": time(read.last_read)})
        bucket = per_type.setdefault(channel.type, {"channel_type": channel.type,
                                                    "channel_count": 0, "unread_count": 0})
        bucket["channel_count"] += 1
        bucket["unread_count"] += read.unread_messages
    return {"total_unread_count": total, "total_unread_threads_count": 0,
            "total_unread_count_by_team": {}, "channels": per_channel,
            "channel_type": list(per_type.values()), "threads": []}
