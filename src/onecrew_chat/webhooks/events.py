"""Stream webhook payloads (v1 dialect: RFC 3339 times, `user.id`, `cid`, `message.created_at`) as plain values."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from onecrew_chat.errors import BadRequest
from onecrew_chat.identity import is_valid_channel_id
from onecrew_chat.webhooks.text import is_storable, storable_text

# RFC 3339 with any number of fractional digits (Stream may send nanoseconds; Python keeps microseconds).
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)
MAX_WEBHOOK_ID = 128


def parse_time(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from Stream's RFC 3339 text; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    zone = "+00:00" if zone is None or zone.upper() == "Z" else zone
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}").astimezone(UTC)
    except (ValueError, OverflowError):  # no such date, or one that leaves Python's range once in UTC
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    """A non-empty identifier every database can store; anything else counts as absent."""
    return value if isinstance(value, str) and value and is_storable(value) else None


@dataclass(frozen=True)
class Message:
    """The message of a message.* event."""

    id: str | None
    text: str
    created_at: datetime | None
    user_id: str | None
    # Thread replies not shown in the channel, and ephemeral or error messages, are not channel activity.
    is_activity: bool


@dataclass(frozen=True)
class StreamEvent:
    """What the service reads from one webhook event."""

    type: str
    channel_type: str | None
    channel_id: str | None
    user_id: str | None
    created_at: datetime | None
    message: Message | None
    member_user_id: str | None
    # The thread a message.read is about (its parent message id); None for a read of the channel.
    thread_id: str | None = None


def _channel(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    channel_type, channel_id = _str(payload.get("channel_type")), _str(payload.get("channel_id"))
    if channel_id is None and _str(payload.get("cid")) and ":" in payload["cid"]:
        channel_type, channel_id = payload["cid"].split(":", 1)
    if channel_id is None:
        channel = _dict(payload.get("channel"))
        channel_type, channel_id = _str(channel.get("type")), _str(channel.get("id"))
    if channel_id is not None and not is_valid_channel_id(channel_id):
        channel_id = None  # no scheme of ours makes it, so it is no channel of ours
    return channel_type or "messaging", channel_id


def _message(raw: Any) -> Message | None:
    if not isinstance(raw, dict):
        return None
    in_thread_only = bool(raw.get("parent_id")) and not raw.get("show_in_channel")
    return Message(
        id=_str(raw.get("id")),
        text=storable_text(raw["text"]) if isinstance(raw.get("text"), str) else "",
        created_at=parse_time(raw.get("created_at")),
        user_id=_str(_dict(raw.get("user")).get("id")) or _str(raw.get("user_id")),
        is_activity=not in_thread_only and raw.get("type") not in ("ephemeral", "error"),
    )


def parse_event(body: bytes) -> StreamEvent:
    """The event in a webhook body; 400 when it is not a JSON object with a `type`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deep
        raise BadRequest("Webhook body is not valid JSON", code="invalid_json") from None
    if not isinstance(payload, dict) or not _str(payload.get("type")):
        raise BadRequest("Webhook body must be a JSON object with a type", code="invalid_event")
    channel_type, channel_id = _channel(payload)
    member = _dict(payload.get("member"))
    return StreamEvent(
        type=payload["type"],
        channel_type=channel_type,
        channel_id=channel_id,
        user_id=_str(_dict(payload.get("user")).get("id")) or _str(payload.get("user_id")),
        created_at=parse_time(payload.get("created_at")),
        message=_message(payload.get("message")),
        member_user_id=_str(member.get("user_id")) or _str(_dict(member.get("user")).get("id")),
        thread_id=_thread_id(payload),
    )


def _thread_id(payload: dict[str, Any]) -> str | None:
    """The parent message id of a thread read: `thread.parent_message_id` (or a bare `thread_id`)."""
    thread = payload.get("thread")
    if thread is not None and not isinstance(thread, dict):
        return "unknown"  # a thread we cannot name is still not the channel
    return (
        _str(_dict(thread).get("parent_message_id"))
        or _str(payload.get("thread_id"))
        or ("unknown" if thread else None)
    )


def webhook_id(header: str | None, body: bytes) -> str:
    """X-Webhook-Id, or a digest of the body when it is missing or too long to store."""
    if header and len(header.strip()) <= MAX_WEBHOOK_ID and header.strip():
        return header.strip()
    source = header.encode() if header else body
    return "sha256:" + hashlib.sha256(source).hexdigest()
