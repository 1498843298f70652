"""The events the emulator delivers as webhooks, shaped like Stream's (v1 dialect, RFC 3339)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clock import now_ns, rfc3339

if TYPE_CHECKING:
    from .call import Call
    from .state import Channel, Member, Message, User


def channel_event(
    call: Call, event_type: str, channel: Channel, *, user_id: str | None = None, **extra: object
) -> None:
    """An event about one channel (channel.*, member.*, message.*, notification.mark_read)."""
    if not call.webhooks_on:
        return
    v1 = call.emulator.v1
    users = call.state.users
    event = {
        "type": event_type,
        "cid": channel.cid,
        "channel_id": channel.id,
        "channel_type": channel.type,
        "channel": v1.channel(channel, users),
        "created_at": rfc3339(now_ns()),
    }
    if user_id is not None:
        user = users.get(user_id)
        event["user"] = v1.user(user) if user is not None else {"id": user_id}
    if channel.team:
        event["team"] = channel.team
    event.update(extra)
    call.emit(event)


def member_event(call: Call, event_type: str, channel: Channel, member: Member) -> None:
    """member.added / member.removed."""
    if call.webhooks_on:
        channel_event(
            call, event_type, channel, user_id=member.user_id, member=call.emulator.v1.member(member, call.state.users)
        )


# Stream truncates the members a message or channel event carries to 50 (docs: Webhook Events).
EVENT_MEMBER_CAP = 50


def message_new(call: Call, channel: Channel, message: Message) -> None:
    """message.new as Stream's docs show it: the message, the sender, up to 50 members with their
    read state, the counts; no `channel` object, so no custom channel data."""
    if not call.webhooks_on:
        return
    v1 = call.emulator.v1
    users = call.state.users
    members = []
    for member in list(channel.members.values())[:EVENT_MEMBER_CAP]:
        body = dict(v1.member(member, users))
        read = channel.reads.get(member.user_id)
        if read is not None:
            body["channel_last_read_at"] = rfc3339(read.last_read)
            body["channel_unread_count"] = read.unread_messages
        members.append(body)
    sender = users.get(message.user_id)
    event = {
        "type": "message.new",
        "cid": channel.cid,
        "channel_id": channel.id,
        "channel_type": channel.type,
        "message_id": message.id,
        "message": v1.message(channel, message, users),
        "user": v1.user(sender) if sender is not None else {"id": message.user_id},
        "members": members,
        "watcher_count": 0,
        "channel_member_count": len(channel.members),
        "channel_message_count": len(channel.messages),
        "created_at": rfc3339(now_ns()),
    }
    if channel.team:
        event["team"] = channel.team
    if message.parent_id is not None:
        event["parent_id"] = message.parent_id
    call.emit(event)


def user_updated(call: Call, user: User) -> None:
    """user.updated."""
    if call.webhooks_on:
        call.emit({"type": "user.updated", "user": call.emulator.v1.user(user), "created_at": rfc3339(now_ns())})
