"""What the Stream gateway sends and answers, as plain values: users, channel states, Stream's batch limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 100  # Stream's limit for users per upsert/partial update and members per create/add call
ROLE = "user"  # every identity is a plain app-level user; there is deliberately no parameter for this
STREAM_ADMIN = "admin"  # Stream's app-wide admin role: only ever searched for, to take it away (demote_to_user)
CHANNEL_STATE_MEMBERS = 100
MAX_CHANNELS_PER_QUERY = 30  # Stream answers at most 30 channels per QueryChannels call


@dataclass(frozen=True)
class StreamUser:
    """A Stream user profile as we send it; the role is not part of it (the adapter always sends "user")."""

    id: str
    name: str
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamUserState:
    """What Stream shows of a user: the fields the mirror compares."""

    id: str
    name: str | None
    image: str | None
    role: str | None


@dataclass(frozen=True)
class ChannelState:
    """What Stream says about a channel: its members (at most the first 100) and, when known, whether we created it."""

    channel_type: str
    channel_id: str
    member_ids: list[str]
    created: bool | None = None
    member_count: int | None = None

    @property
    def cid(self) -> str:
        """Stream's "type:id"."""
        return f"{self.channel_type}:{self.channel_id}"


def check_batch(what: str, items: Iterable[object]) -> None:
    count = len(list(items))
    if count > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} {what} per Stream call, got {count}")


def channel_state(channel_type: str, channel_id: str, data: dict[str, Any]) -> ChannelState:
    member_ids = []
    for member in data.get("members") or []:
        user_id = member.get("user_id") or (member.get("user") or {}).get("id")
        if user_id:
            member_ids.append(user_id)
    channel = data.get("channel") or {}
    return ChannelState(
        channel_type=channel_type,
        channel_id=channel_id,
        member_ids=member_ids,
        created=None,  # Stream's get-or-create answer does not say whether it created the channel
        member_count=channel.get("member_count"),
    )
