"""Messages and reads: send a message, mark read, unread counts per user."""

from __future__ import annotations

import uuid

from .. import events, permissions
from ..call import Call, check_batch, check_object, check_user_id, drop_nulls
from ..clock import now_ns, rfc3339
from ..errors import input_error, not_found
from ..state import Channel, Message, Read, User
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
    message.attachments = _attachments(raw.get("attachments"))
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


def _attachments(value: object) -> list[dict]:
    """The message's attachments: a list of objects (kept as sent)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise input_error("message.attachments must be a list of objects", attachments="invalid")
    return [dict(a) for a in value]


def send(call: Call) -> dict:
    """POST /channels/{type}/{id}/message."""
    channel = call.channel()
    permissions.check(call, channel, permissions.CREATE_MESSAGE)
    raw = check_object(call.body, "message")
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


def _reading(call: Call) -> tuple[Channel, dict, User]:
    """Mark read/unread: the channel (read permission checked), the body without nulls, and the user acting."""
    channel = call.channel()
    permissions.check(call, channel, permissions.READ_CHANNEL)
    body = drop_nulls(call.body)
    return channel, body, call.require_user(call.acting_user_id(body))


def mark_read(call: Call) -> dict:
    """POST /channels/{type}/{id}/read: the user has read everything (up to message_id)."""
    channel, body, user = _reading(call)
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
    if events.wanted(call, channel, [user.id]):
        extra = {"last_read_message_id": message_id} if message_id else {}
        events.channel_event(call, "message.read", channel, user_id=user.id, **extra)
        _notify_unread(call, "notification.mark_read", channel, user.id, **extra)
    return {"event": event}


def _notify_unread(call: Call, event_type: str, channel: Channel, user_id: str, **extra: object) -> None:
    """notification.mark_read / mark_unread with the user's totals, to the webhook and the user."""
    total, unread_channels = _unread_totals(call, user_id)
    read = channel.reads.get(user_id)
    note = events.channel_body(
        call,
        event_type,
        channel,
        user_id,
        total_unread_count=total,
        unread_channels=unread_channels,
        unread_messages=read.unread_messages if read is not None else 0,
        **extra,
    )
    if event_type == "notification.mark_read":
        note["unread_count"] = total
    events.deliver(call.emulator, note, users=[user_id])


def mark_delivered(call: Call) -> dict:
    """POST /channels/delivered {latest_delivered_messages: [{cid, id}]}: the client got these
    messages; message.delivered goes to each channel's watchers (read states are not changed)."""
    body = drop_nulls(call.body)
    items = check_batch("latest_delivered_messages", body.get("latest_delivered_messages"))
    user = call.require_user(call.acting_user_id(body))
    targets = []
    for item in items:
        if not isinstance(item, dict) or not item.get("cid") or not item.get("id"):
            raise input_error("latest_delivered_messages[] needs cid and id", latest_delivered_messages="invalid")
        channel = call.state.channels.get(str(item["cid"]))
        if channel is None:
            raise not_found(f"Can't find channel with id {item['cid']}")
        permissions.check(call, channel, permissions.READ_CHANNEL)
        # Stream takes the ids as the client reports them (its own SDK test reports made-up ones).
        targets.append((channel, str(item["id"])))
    now = rfc3339(now_ns())
    for channel, message_id in targets:
        if events.wanted(call, channel):
            events.channel_event(
                call,
                "message.delivered",
                channel,
                user_id=user.id,
                last_delivered_message_id=message_id,
                last_delivered_at=now,
            )
    return {}


def mark_unread(call: Call) -> dict:
    """POST /channels/{type}/{id}/unread {message_id}: unread from that message on."""
    channel, body, user = _reading(call)
    message_id = body.get("message_id")
    if not message_id:
        raise input_error("message_id is a required field", message_id="required")
    shown = [m for m in channel.messages if m.in_channel]
    at = next((i for i, m in enumerate(shown) if m.id == message_id), None)
    if at is None:
        raise not_found(f"message {message_id} does not exist")
    before = shown[at - 1] if at > 0 else None
    unread = len(shown) - at
    last_read = before.created_at if before is not None else channel.created_at
    channel.reads[user.id] = Read(last_read, before.id if before is not None else None, unread)
    if events.wanted(call, channel, [user.id]):
        _notify_unread(
            call,
            "notification.mark_unread",
            channel,
            user.id,
            first_unread_message_id=message_id,
            last_read_at=rfc3339(last_read),
            unread_count=unread,
            **({"last_read_message_id": before.id} if before is not None else {}),
        )
    return {}


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
