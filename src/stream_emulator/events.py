"""The events the emulator delivers as webhooks, shaped like Stream's (v1 dialect, RFC 3339)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clock import now_ns, rfc3339

if TYPE_CHECKING:
    from .call import Call
    from .state import Channel, Member, Message, User


def channel_event(call: "Call", event_type: str, channel: "Channel", *,
                  user_id: str | None = None, **extra: object) -> None:
    """An event about one channel (channel.*, member.*, message.*, notification.mark_read)."""
    if not call.webhooks_on:
        return
    v1 = call.emulator.v1
    users = call.state.users
    event = {
        "type": event_type, "cid": channel.cid, "channel_id": channel.id,
        "channel_type": channel.type, "channel": v1.channel(channel, users),
        "created_at": rfc3339(now_ns()),
    }
    if user_id is not None:
        user = users.get(user_id)
        event["user"] = v1.user(user) if user is not None else {"id": user_id}
    if channel.team:
        event["team"] = channel.team
    event.update(extra)
    call.emit(event)


def member_event(call: "Call", event_type: str, channel: "Channel", member: "Member") -> None:
    """member.added / member.removed."""
    if call.webhooks_on:
        channel_event(call, event_type, channel, user_id=member.user_id,
                      member=call.emulator.v1.member(member, call.state.users))


def message_new(call: "Call", channel: "Channel", message: "Message") -> None:
    """message.new, with the members as Stream includes them."""
    if call.webhooks_on:
        v1 = call.emulator.v1
        users = call.state.users
        channel_event(call, "message.new", channel, user_id=message.user_id,
                      message=v1.message(channel, message, users), message_id=message.id,
                      members=v1.members(channel, users), watcher_count=0,
                      channel_member_count=len(channel.members),
                      channel_message_count=len(channel.messages))


def user_updated(call: "Call", user: "User") -> None:
    """user.updated."""
    if call.webhooks_on:
        call.emit({"type": "user.updated", "user": call.emulator.v1.user(user),
                   "created_at": rfc3339(now_ns())})
