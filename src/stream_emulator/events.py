"""The events the emulator sends, shaped like Stream's (v1 dialect, RFC 3339): as webhooks to the
app's webhook URL, and over the `/connect` WebSocket to the connections that watch the channel or
whose user the event concerns (hub.Hub)."""

from __future__ import annotations

from collections.abc import Iterable

from .call import Call
from .clock import now_ns, rfc3339
from .emulator import Emulator
from .state import Channel, Member, Message, User
from .webhooks import delivers_anything

# Every event type Stream sends (its webhook events list and the client SDKs' event map): the names an
# app's `webhook_events` may hold. Anything else is refused, as Stream refuses it.
EVENT_TYPES = frozenset(
    {
        "channel.created",
        "channel.deleted",
        "channel.frozen",
        "channel.hidden",
        "channel.kicked",
        "channel.muted",
        "channel.truncated",
        "channel.unfrozen",
        "channel.unmuted",
        "channel.updated",
        "channel.visible",
        "draft.deleted",
        "draft.updated",
        "member.added",
        "member.removed",
        "member.updated",
        "message.deleted",
        "message.delivered",
        "message.flagged",
        "message.new",
        "message.read",
        "message.unblocked",
        "message.undeleted",
        "message.updated",
        "notification.added_to_channel",
        "notification.channel_deleted",
        "notification.channel_mutes_updated",
        "notification.channel_truncated",
        "notification.invite_accepted",
        "notification.invite_rejected",
        "notification.invited",
        "notification.mark_read",
        "notification.mark_unread",
        "notification.message_new",
        "notification.mutes_updated",
        "notification.reminder_due",
        "notification.removed_from_channel",
        "notification.thread_message_new",
        "poll.closed",
        "poll.updated",
        "poll.vote_casted",
        "poll.vote_changed",
        "poll.vote_removed",
        "reaction.deleted",
        "reaction.new",
        "reaction.updated",
        "reminder.created",
        "reminder.deleted",
        "reminder.updated",
        "thread.updated",
        "typing.start",
        "typing.stop",
        "user.banned",
        "user.deactivated",
        "user.deleted",
        "user.flagged",
        "user.messages.deleted",
        "user.muted",
        "user.presence.changed",
        "user.reactivated",
        "user.unbanned",
        "user.unmuted",
        "user.unread_message_reminder",
        "user.updated",
        "user.watching.start",
        "user.watching.stop",
    }
)


def wanted(call: Call, channel: Channel | None = None, users: Iterable[str] = ()) -> bool:
    """Whether anyone would receive an event: the webhook, a watcher of the channel, or the users."""
    return call.webhooks_on or call.emulator.hub.listening(channel.cid if channel is not None else None, users)


def deliver(
    emulator: Emulator,
    event: dict,
    *,
    channel: Channel | None = None,
    users: Iterable[str] = (),
    webhook: bool = True,
) -> None:
    """Send one event: to the webhook (unless `webhook` is false), to the channel's watchers and to
    every connection of each of `users`."""
    if webhook and delivers_anything(emulator.state.app):
        emulator.webhooks.emit(event)
    if channel is not None:
        emulator.hub.to_watchers(channel.cid, event)
    for user_id in users:
        emulator.hub.to_user(user_id, event)


def _user(call: Call, user_id: str) -> dict:
    user = call.state.users.get(user_id)
    return call.emulator.v1.user(user) if user is not None else {"id": user_id}


def _channel(call: Call, channel: Channel) -> dict:
    """The channel as events carry it: without `own_capabilities`, which are the receiver's own
    (the client SDKs keep the ones their channel query returned when an event has none)."""
    body = dict(call.emulator.v1.channel(channel, call.state.users))
    del body["own_capabilities"]
    return body


def channel_body(call: Call, event_type: str, channel: Channel, user_id: str | None = None, **extra: object) -> dict:
    """The common fields of an event about one channel."""
    event = {
        "type": event_type,
        "cid": channel.cid,
        "channel_id": channel.id,
        "channel_type": channel.type,
        "channel": _channel(call, channel),
        "created_at": rfc3339(now_ns()),
    }
    if user_id is not None:
        event["user"] = _user(call, user_id)
        if event_type in UNREAD_EVENTS:
            event["user"] = dict(event["user"], **_unread_fields(call, channel, user_id))
    if event_type in UNREAD_EVENTS:
        event["members"] = members_with_reads(call, channel)
    if channel.team:
        event["team"] = channel.team
    event.update(extra)
    return event


# Events whose user and members carry their unread state (Stream's docs, Webhook Events: "the
# following attributes are included to the event user and to the event members").
UNREAD_EVENTS = frozenset({"message.read", "member.added"})
# Stream truncates the members a message or channel event carries to 50 (docs: Webhook Events).
EVENT_MEMBER_CAP = 50


def _unread_fields(call: Call, channel: Channel, user_id: str) -> dict:
    """total_unread_count and unread_channels of the user; the channel's read state if a member."""
    total = unread_channels = 0
    for other in call.state.channels.values():
        read = other.reads.get(user_id)
        if read is not None and read.unread_messages and user_id in other.members:
            total += read.unread_messages
            unread_channels += 1
    fields: dict[str, object] = {"total_unread_count": total, "unread_channels": unread_channels}
    read = channel.reads.get(user_id)
    if read is not None and user_id in channel.members:
        fields["channel_last_read_at"] = rfc3339(read.last_read)
        fields["channel_unread_count"] = read.unread_messages
    return fields


def members_with_reads(call: Call, channel: Channel) -> list[dict]:
    """Up to 50 members, each with channel_last_read_at and channel_unread_count."""
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
    return members


# Channel events Stream sends over the connection only: its webhook events list names none of them.
SOCKET_ONLY = frozenset(
    {"typing.start", "typing.stop", "user.watching.start", "user.watching.stop", "message.delivered"}
)


def channel_event(
    call: Call, event_type: str, channel: Channel, *, user_id: str | None = None, **extra: object
) -> None:
    """An event about one channel (channel.*, message.*, reaction.*), to the webhook (unless
    SOCKET_ONLY) and the watchers."""
    webhook = event_type not in SOCKET_ONLY
    if not (webhook and call.webhooks_on) and not call.emulator.hub.listening(channel.cid):
        return
    event = channel_body(call, event_type, channel, user_id, **extra)
    deliver(call.emulator, event, channel=channel, webhook=webhook)


def member_event(call: Call, event_type: str, channel: Channel, member: Member) -> None:
    """member.added / member.removed to the webhook and the watchers; the member themself gets
    notification.added_to_channel / notification.removed_from_channel."""
    if not wanted(call, channel, [member.user_id]):
        return
    v1 = call.emulator.v1
    rendered = v1.member(member, call.state.users)
    deliver(
        call.emulator,
        channel_body(call, event_type, channel, member.user_id, member=rendered),
        channel=channel,
    )
    note = "notification.added_to_channel" if event_type == "member.added" else "notification.removed_from_channel"
    if call.emulator.hub.online(member.user_id):
        deliver(
            call.emulator,
            channel_body(call, note, channel, member.user_id, member=rendered),
            users=[member.user_id],
            webhook=False,
        )


def message_new(call: Call, channel: Channel, message: Message) -> None:
    """message.new as Stream's docs show it: the message, the sender, up to 50 members with their
    read state, the counts; no `channel` object, so no custom channel data. Members who are
    connected but not watching get notification.message_new (with the channel) instead."""
    hub = call.emulator.hub
    if not wanted(call, channel, channel.members):
        return
    v1 = call.emulator.v1
    users = call.state.users
    members = members_with_reads(call, channel)
    watchers = hub.watcher_ids(channel.cid)
    rendered = v1.message(channel, message, users)
    event = {
        "type": "message.new",
        "cid": channel.cid,
        "channel_id": channel.id,
        "channel_type": channel.type,
        "message_id": message.id,
        "message": rendered,
        "user": _user(call, message.user_id),
        "members": members,
        "watcher_count": len(watchers),
        "channel_member_count": len(channel.members),
        "channel_message_count": len(channel.messages),
        "created_at": rfc3339(now_ns()),
    }
    if channel.team:
        event["team"] = channel.team
    if message.parent_id is not None:
        event["parent_id"] = message.parent_id
    deliver(call.emulator, event, channel=channel)
    if message.parent_id is not None and not message.show_in_channel:
        return
    unwatched = [u for u in channel.members if u not in watchers and hub.online(u)]
    if unwatched:
        note = channel_body(call, "notification.message_new", channel, message.user_id, message=rendered)
        deliver(call.emulator, note, users=unwatched, webhook=False)


def user_updated(call: Call, user: User) -> None:
    """user.updated."""
    if call.webhooks_on:
        call.emit({"type": "user.updated", "user": call.emulator.v1.user(user), "created_at": rfc3339(now_ns())})


def presence_changed(emulator: Emulator, user: User) -> None:
    """user.presence.changed, once to each connection watching a channel the user is a member of."""
    cids = [c.cid for c in emulator.state.channels.values() if user.id in c.members]
    event = {"type": "user.presence.changed", "user": emulator.v1.user(user), "created_at": rfc3339(now_ns())}
    emulator.hub.to_watchers_of(cids, event)
