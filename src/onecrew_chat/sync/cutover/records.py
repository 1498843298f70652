"""What one Stream channel state says, reduced to what adoption needs: members, activity, reads, damage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onecrew_chat.models import AdoptionChannel

PREVIEW_LENGTH = 200  # the webhook path's preview length
PLACEHOLDER_NAME = "User"  # what the old backend named ids it could not resolve
ONE_TICK = timedelta(microseconds=1)


def stream_time(value: Any) -> datetime | None:
    """A time as either dialect writes it (v2: integer nanoseconds; v1: RFC 3339), timezone-aware UTC."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=int(value) // 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def to_us(at: datetime) -> int:
    """Microseconds since the epoch (the resume cursor's unit)."""
    return (at - datetime.fromtimestamp(0, UTC)) // ONE_TICK


def from_us(us: int) -> datetime:
    """The inverse of to_us."""
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=us)


def preview(text: Any) -> str | None:
    """The conversation list's preview: the message text without NULs, cut to 200 characters."""
    if not isinstance(text, str) or not text:
        return None
    clean = text.replace("\x00", "")
    return clean if len(clean) <= PREVIEW_LENGTH else clean[: PREVIEW_LENGTH - 1] + "…"


def damage_of(user: dict[str, Any]) -> str | None:
    """What the old backend left wrong on a Stream user: an app-wide role other than user, or the "User" placeholder."""
    problems = []
    role = user.get("role")
    if role and role != "user":
        problems.append(f"role {role}")
    if user.get("name") == PLACEHOLDER_NAME:
        problems.append('placeholder named "User"')
    return ", ".join(problems) or None


@dataclass
class ChannelRecord:
    """One channel as adoption sees it; `as_row` is its adoption_channel row."""

    channel_type: str
    channel_id: str
    name: str | None
    member_ids: list[str]
    member_count: int
    created_at: datetime | None
    last_message_at: datetime | None
    preview: str | None
    reads: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)

    @property
    def cid(self) -> str:
        """Stream's "type:id"."""
        return f"{self.channel_type}:{self.channel_id}"

    def read_at(self, stream_id: str) -> datetime | None:
        """When this member last read the channel, as Stream says."""
        return stream_time(self.reads.get(stream_id))

    def as_row(self) -> dict[str, Any]:
        """The adoption_channel row (outcome pending)."""
        return {
            "cid": self.cid,
            "channel_type": self.channel_type,
            "channel_id": self.channel_id,
            "name": self.name,
            "member_ids": self.member_ids,
            "member_count": self.member_count,
            "created_at": self.created_at,
            "last_message_at": self.last_message_at,
            "preview": self.preview,
            "reads": self.reads,
            "damaged": self.damaged,
            "outcome": "pending",
        }

    @classmethod
    def from_row(cls, row: AdoptionChannel) -> ChannelRecord:
        """Back from an adoption_channel row."""
        return cls(
            row.channel_type,
            row.channel_id,
            row.name,
            list(row.member_ids),
            row.member_count,
            row.created_at,
            row.last_message_at,
            row.preview,
            dict(row.reads or {}),
            dict(row.damaged or {}),
        )


def _read_marker(read: dict[str, Any], last_message_at: datetime | None) -> datetime | None:
    """The member's last read, made to agree with Stream's unread count: 0 unread means read up to the last message."""
    at = stream_time(read.get("last_read"))
    unread = int(read.get("unread_messages") or 0)
    if last_message_at is None:
        return at
    if unread == 0 and (at is None or at < last_message_at):
        return last_message_at
    if unread > 0 and at is not None and at >= last_message_at:
        return last_message_at - ONE_TICK
    return at


def record_from_state(state: dict[str, Any]) -> ChannelRecord:
    """A ChannelRecord from one QueryChannels channel state (either dialect)."""
    channel: dict[str, Any] = state.get("channel") or {}
    custom: dict[str, Any] = channel["custom"] if isinstance(channel.get("custom"), dict) else channel
    members, damaged = [], {}
    for member in state.get("members") or []:
        user = member.get("user") or {}
        user_id = member.get("user_id") or user.get("id")
        if not user_id:
            continue
        members.append(user_id)
        problem = damage_of(user)
        if problem:
            damaged[user_id] = problem
    messages = state.get("messages") or []
    last = messages[-1] if messages else {}
    last_message_at = stream_time(channel.get("last_message_at")) or stream_time(last.get("created_at"))
    reads = {}
    for read in state.get("read") or []:
        user_id = (read.get("user") or {}).get("id")
        at = _read_marker(read, last_message_at)
        if user_id and at is not None:
            reads[user_id] = at.isoformat()
    name = custom.get("name") if isinstance(custom.get("name"), str) else None
    return ChannelRecord(
        channel_type=channel.get("type") or str(channel.get("cid", ":")).split(":", 1)[0],
        channel_id=channel.get("id") or str(channel.get("cid", ":")).split(":", 1)[1],
        name=(name or None) and name[:255],
        member_ids=members,
        member_count=int(channel.get("member_count") or len(members)),
        created_at=stream_time(channel.get("created_at")),
        last_message_at=last_message_at,
        preview=preview(last.get("text")) if last else None,
        reads=reads,
        damaged=damaged,
    )
