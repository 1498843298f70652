"""Threads: replies (`parent_id`), who takes part, thread reads and unread threads, GetReplies.

From Stream's docs (Threads & Replies, Unread Counts): a message with `parent_id` is a reply (type
"reply") in its parent's thread and the parent's `reply_count` grows. The channel shows a reply only
when it was sent with `show_in_channel: true`; a thread-only reply is no channel activity and never
raises a channel's unread count. The thread's participants (the parent's author and everyone who
replied) get an unread count per thread; marking the channel read with `thread_id` reads that
thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import permissions
from ..call import Call, drop_nulls
from ..errors import StreamError, input_error, not_found
from ..state import Channel, Message, Read, State

MULTIPLE_NESTING = 21
DEFAULT_REPLIES = 100
MAX_REPLIES = 300


def parent_of(channel: Channel, parent_id: object) -> Message:
    """The message a reply answers: it must exist in this channel and not be a reply itself."""
    if not isinstance(parent_id, str) or not parent_id:
        raise input_error("parent_id must be a message id", parent_id="invalid")
    parent = channel.message(parent_id)
    if parent is None:
        raise input_error(f"parent message {parent_id} does not exist", parent_id="not found")
    if parent.parent_id is not None:
        raise StreamError(MULTIPLE_NESTING, "a reply cannot be the parent of another reply: threads are one level deep")
    return parent


def participants(channel: Channel, parent: Message) -> list[str]:
    """The parent's author, then everyone who replied, each once."""
    seen = [parent.user_id]
    for message in channel.messages:
        if message.parent_id == parent.id and message.user_id not in seen:
            seen.append(message.user_id)
    return seen


def add_reply(channel: Channel, parent: Message, reply: Message) -> None:
    """Count a new reply: the parent's reply_count and every other participant's thread unread."""
    parent.reply_count += 1
    for user_id in participants(channel, parent):
        reads = channel.thread_reads.setdefault(user_id, {})
        read = reads.get(parent.id)
        if read is None:
            read = reads[parent.id] = Read(parent.created_at)
        if user_id == reply.user_id:
            read.last_read, read.last_read_message_id, read.unread_messages = (reply.created_at, reply.id, 0)
        else:
            read.unread_messages += 1


def mark_thread_read(channel: Channel, user_id: str, thread_id: str, now: int) -> Message:
    """The user has read the whole thread; the channel's own read state is untouched."""
    parent = channel.message(thread_id)
    if parent is None or parent.parent_id is not None:
        raise not_found(f"thread {thread_id} does not exist")
    last = next((m.id for m in reversed(channel.messages) if m.parent_id == thread_id), None)
    channel.thread_reads.setdefault(user_id, {})[thread_id] = Read(now, last, 0)
    return parent


def thread_body(channel: Channel, parent: Message, time: Callable[[int], Any]) -> dict:
    """The `thread` of a thread's message.read event (`time` writes the dialect's times)."""
    return {
        "parent_message_id": parent.id,
        "channel_cid": channel.cid,
        "reply_count": parent.reply_count,
        "participant_count": len(participants(channel, parent)),
        "created_at": time(parent.created_at),
    }


def unread_threads(state: State, user_id: str, time: Callable[[int], Any]) -> list[dict]:
    """The user's threads with unread replies, as the unread endpoints list them."""
    threads = []
    for channel in state.channels.values():
        for parent_id, read in channel.thread_reads.get(user_id, {}).items():
            if read.unread_messages:
                threads.append(
                    {
                        "parent_message_id": parent_id,
                        "unread_count": read.unread_messages,
                        "last_read": time(read.last_read),
                        "last_read_message_id": read.last_read_message_id or "",
                    }
                )
    return threads


def get_replies(call: Call) -> dict:
    """GET /messages/{parent_id}/replies: the newest `limit` replies, oldest first.

    Stream pages replies by id (`id_lt`, `id_lte`, `id_gt`, `id_gte`); an `offset` is ignored, as
    the official SDK's test expects (limit 3, offset 3 of 10 replies starts at the 8th).
    """
    parent_id = call.params[0]
    for channel in call.state.channels.values():
        parent = channel.message(parent_id)
        if parent is not None:
            break
    else:
        raise not_found(f"message {parent_id} does not exist")
    permissions.check(call, channel, permissions.READ_CHANNEL)
    query = drop_nulls(dict(call.query))
    try:
        limit = int(query.get("limit") or DEFAULT_REPLIES)
    except ValueError:
        raise input_error("limit must be a number", limit="invalid") from None
    if not 0 < limit <= MAX_REPLIES:
        raise input_error(f"limit must be between 1 and {MAX_REPLIES}", limit="invalid")
    replies = [m for m in channel.messages if m.parent_id == parent_id]
    ids = [m.id for m in replies]
    for key, keep in (
        ("id_lt", lambda i, at: i < at),
        ("id_lte", lambda i, at: i <= at),
        ("id_gt", lambda i, at: i > at),
        ("id_gte", lambda i, at: i >= at),
    ):
        if query.get(key) in ids:
            at = ids.index(query[key])
            replies = [m for i, m in enumerate(replies) if keep(ids.index(m.id), at)]
    users = call.state.users
    return {"messages": [call.dialect.message(channel, m, users) for m in replies[-limit:]]}
