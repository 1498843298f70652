"""Applying Stream webhook events: activity and read markers (never moved backwards), drift for the reconciler.

An event's time is Stream's, but never trusted past MAX_FUTURE_SKEW ahead of our clock: a (signed) event dated
9999-12-31 would otherwise hold a conversation's last activity, preview and read markers there for good, since
they never move backwards. Such a time is taken as the time the event was received (the event is still applied
and answered 2xx: Stream retries anything else), and a marker already stored that far ahead is overwritten by the
next event (rows pinned before this rule heal themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.conversations.unread_broadcast import NOTIFY, unread_payloads
from onecrew_chat.db import UTCDateTime, utcnow
from onecrew_chat.identity import Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import DRIFT_DETECTED
from onecrew_chat.models import ChannelDrift, WebhookEvent
from onecrew_chat.sync.writes import CONVERSATION, PARTICIPANT, move_activity, move_read_marker
from onecrew_chat.webhooks.events import StreamEvent
from onecrew_chat.webhooks.text import cut_preview

log = get_logger(__name__)

READ_EVENTS = ("message.read", "notification.mark_read")
DRIFT_EVENTS = {"channel.deleted": "channel_deleted", "member.removed": "member_removed"}
HANDLED = frozenset({"message.new", *READ_EVENTS, *DRIFT_EVENTS})
# How far ahead of our clock an event's time may be (clock skew between Stream and us); later is taken as now.
MAX_FUTURE_SKEW = timedelta(minutes=5)


# The statements of the hot path, built once on the tables (Core): a webhook only binds its values (bind names
# differ from column names, which an UPDATE keeps for its SET clause).
_WEBHOOK_EVENT = cast(Table, WebhookEvent.__table__)
_CEILING = bindparam("ceiling", type_=UTCDateTime())  # now + MAX_FUTURE_SKEW: a stored time past it is not sane
_OF_CHANNEL = (
    CONVERSATION.c.channel_id == bindparam("channel_id"),
    CONVERSATION.c.channel_type == bindparam("channel_type"),
)
FIND_CONVERSATION = select(CONVERSATION.c.id).where(*_OF_CHANNEL)
FIND_CONVERSATION_AND_MEMBERS = (
    select(CONVERSATION.c.id, PARTICIPANT.c.participant_type, PARTICIPANT.c.participant_id)
    .select_from(CONVERSATION.outerjoin(PARTICIPANT, PARTICIPANT.c.conversation_id == CONVERSATION.c.id))
    .where(*_OF_CHANNEL)
)
# Activity and read markers never move backwards: the row changes only when `at` is later than what it holds
# (or what it holds lies further ahead of our clock than any event may: stored before times were bounded).
MOVE_ACTIVITY = move_activity(CONVERSATION.c.last_message_at > _CEILING)
MOVE_READ_MARKER = move_read_marker(PARTICIPANT.c.last_read_at > _CEILING)
# PostgreSQL: a message.new's activity, its sender's read marker and the NOTIFY of its members in one statement (a
# SELECT of pg_notify with the two UPDATEs as CTEs, which run whether or not it reads them): one round trip, not 3.
# (An UPDATE inside a CTE gets no onupdate default: updated_at is bound.)
_MOVE_ACTIVITY_NOW = MOVE_ACTIVITY.values(updated_at=bindparam("now", type_=UTCDateTime()))
MOVE_AND_ANNOUNCE = NOTIFY.add_cte(_MOVE_ACTIVITY_NOW.returning(CONVERSATION.c.id).cte("activity"))
MOVE_BOTH_AND_ANNOUNCE = MOVE_AND_ANNOUNCE.add_cte(MOVE_READ_MARKER.returning(PARTICIPANT.c.id).cte("marker"))
RECORD_ONCE = {
    "postgresql": postgresql.insert(_WEBHOOK_EVENT).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": sqlite.insert(_WEBHOOK_EVENT).on_conflict_do_nothing(index_elements=["id"]),
}


@dataclass
class Outcome:
    """What one event did: applied, duplicate or ignored; and whose unread count may have changed."""

    status: str
    reason: str | None = None
    affected: set[str] = field(default_factory=set)
    announced: bool = False  # the change of `affected` was announced to every process already (NOTIFY)


async def record_once(session: AsyncSession, webhook_id: str, event_type: str) -> bool:
    """Store the webhook id; False when it was stored before (a redelivery), also under concurrency."""
    statement = RECORD_ONCE[session.get_bind().dialect.name]
    values = {"id": webhook_id, "event_type": event_type[:64], "received_at": utcnow()}
    return cast(CursorResult[Any], await session.execute(statement, values)).rowcount == 1


def _identity(stream_id: str | None) -> Identity | None:
    try:
        return Identity.parse(stream_id or "")
    except ValueError:
        return None


def _channel(event: StreamEvent) -> dict[str, Any]:
    return {"channel_id": event.channel_id, "channel_type": event.channel_type}


async def _conversation(session: AsyncSession, event: StreamEvent) -> str | None:
    """The id of the event channel's conversation, None when it is not ours."""
    conversation_id: str | None = await session.scalar(FIND_CONVERSATION, _channel(event))
    return conversation_id


async def _conversation_and_members(session: AsyncSession, event: StreamEvent) -> tuple[str | None, list[str]]:
    """The conversation's id and its participants' Stream ids, in one query (None and [] when it is not ours)."""
    rows = (await session.execute(FIND_CONVERSATION_AND_MEMBERS, _channel(event))).all()
    if not rows:
        return None, []
    members = [Identity(Kind(kind), entity_id).stream_id for _, kind, entity_id in rows if kind is not None]
    return rows[0][0], members


@dataclass(frozen=True)
class EventTime:
    """When an event happened, as applied: Stream's time, or the time received when Stream's is too far ahead."""

    at: datetime
    ceiling: datetime  # received + MAX_FUTURE_SKEW: no sane stored time lies past it

    @classmethod
    def bounded(cls, sent: datetime, received: datetime, event: StreamEvent) -> EventTime:
        """`sent`, unless it lies more than MAX_FUTURE_SKEW after `received` (then `received`)."""
        ceiling = received + MAX_FUTURE_SKEW
        if sent <= ceiling:
            return cls(sent, ceiling)
        log.warning(
            "webhook.future_time_clamped",
            type=event.type,
            channel_id=event.channel_id,
            sent=sent.isoformat(),
            applied=received.isoformat(),
        )
        return cls(received, ceiling)


async def _move_read_marker(session: AsyncSession, conversation_id: str, identity: Identity, time: EventTime) -> None:
    """last_read_at = time.at for this participant, unless it is already at or after it (and sane)."""
    await session.execute(
        MOVE_READ_MARKER,
        {
            "conversation": conversation_id,
            "kind": identity.kind.value,
            "entity_id": identity.entity_id,
            "at": time.at,
            "ceiling": time.ceiling,
        },
    )


async def _message_new(
    session: AsyncSession, event: StreamEvent, conversation_id: str, members: list[str], received: datetime
) -> Outcome:
    message = event.message
    sent = (message.created_at if message else None) or event.created_at
    if message is None or sent is None or not message.is_activity:
        return Outcome("ignored", "not channel activity")
    time = EventTime.bounded(sent, received, event)
    moved = {
        "conversation": conversation_id,
        "at": time.at,
        "ceiling": time.ceiling,
        "preview": cut_preview(message.text),
    }
    sender = _identity(message.user_id or event.user_id)  # a sender has read their own message
    payloads = list(unread_payloads(members))
    if len(payloads) == 1 and session.get_bind().dialect.name == "postgresql":
        moved |= {"payload": payloads[0], "now": utcnow()}
        if sender is None:
            await session.execute(MOVE_AND_ANNOUNCE, moved)
        else:
            marker = {"kind": sender.kind.value, "entity_id": sender.entity_id}
            await session.execute(MOVE_BOTH_AND_ANNOUNCE, moved | marker)
        return Outcome("applied", affected=set(members), announced=True)
    await session.execute(MOVE_ACTIVITY, moved)
    if sender is not None:
        await _move_read_marker(session, conversation_id, sender, time)
    return Outcome("applied", affected=set(members))


async def _read(session: AsyncSession, event: StreamEvent, conversation_id: str, received: datetime) -> Outcome:
    if event.thread_id is not None:
        # Reading a thread reads its replies, not the channel: the channel's unread messages stay unread.
        return Outcome("ignored", "thread read")
    reader = _identity(event.user_id)
    if reader is None or event.created_at is None:
        return Outcome("ignored", "no OneCrew reader or time")
    await _move_read_marker(session, conversation_id, reader, EventTime.bounded(event.created_at, received, event))
    return Outcome("applied", affected={reader.stream_id})


async def _drift(session: AsyncSession, event: StreamEvent, members: list[str], webhook_id: str) -> Outcome:
    kind = DRIFT_EVENTS[event.type]
    detail: dict[str, Any] = {
        "webhook_id": webhook_id,
        "event_created_at": event.created_at.isoformat() if event.created_at else None,
    }
    if event.type == "member.removed":
        removed = event.member_user_id or event.user_id
        if removed not in members:
            return Outcome("ignored", "removed member is not a participant")
        detail["stream_id"] = removed
    session.add(ChannelDrift(channel_type=event.channel_type, channel_id=event.channel_id, kind=kind, detail=detail))
    DRIFT_DETECTED.labels(kind=kind).inc()
    log.warning("webhook.drift_detected", kind=kind, channel_id=event.channel_id, stream_id=detail.get("stream_id"))
    return Outcome("applied")


async def apply_event(
    session: AsyncSession, event: StreamEvent, webhook_id: str, *, received: datetime | None = None
) -> Outcome:
    """Apply one event in the caller's transaction; unknown types and channels change nothing.

    `received` (default: now) bounds the event's time: at most MAX_FUTURE_SKEW later is taken as sent."""
    received = received or utcnow()
    if event.type not in HANDLED:
        return Outcome("ignored", "event type not used")
    if event.channel_id is None:
        return Outcome("ignored", "no channel")
    # A read needs no member list; the others get it with the conversation (a message.new is three statements on
    # PostgreSQL: this one, the webhook id, and the activity with the sender's read marker and the NOTIFY).
    members: list[str] = []
    if event.type in READ_EVENTS:
        conversation_id = await _conversation(session, event)
    else:
        conversation_id, members = await _conversation_and_members(session, event)
    if conversation_id is None:
        return Outcome("ignored", "unknown channel")
    if not await record_once(session, webhook_id, event.type):
        return Outcome("duplicate")
    if event.type in READ_EVENTS:
        return await _read(session, event, conversation_id, received)
    if event.type == "message.new":
        return await _message_new(session, event, conversation_id, members, received)
    return await _drift(session, event, members, webhook_id)
