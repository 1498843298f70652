"""Ensure a conversation's Stream channel exists, created by the acting identity, with every participant a member."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from onecrew_chat.db import utcnow
from onecrew_chat.identity import ConversationType, Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import chunks, ensure_identities, is_fresh, load_mirror, repair_identities
from onecrew_chat.sync.participants import Profile

log = get_logger(__name__)

READY = "ready"
# Channel calls may meet users Stream has accepted but does not show yet: allow more repair rounds than the default.
CHANNEL_MAX_REPAIRS = 5


@dataclass(frozen=True)
class ProvisionResult:
    """What one provisioning run did."""

    channel_type: str
    channel_id: str
    member_ids: list[str]
    identities_sent: int
    members_added: int
    stream_calls: int
    ms: float


def participant_identities(conversation: Conversation) -> list[Identity]:
    """The conversation's participants as Stream identities, creator first (participants must be loaded)."""
    creator = creator_identity(conversation)
    others = sorted(
        {Identity(p.participant_type, p.participant_id) for p in conversation.participants} - {creator}
    )
    return [creator, *others]


def creator_identity(conversation: Conversation) -> Identity:
    """The identity that created the conversation (the channel's created_by)."""
    return Identity(conversation.created_by_type, conversation.created_by_id)


def channel_custom(conversation: Conversation) -> dict | None:
    """Channel data: groups carry their name; pairs carry none, so the app shows the other party's name."""
    if conversation.conversation_type == ConversationType.GROUP.value and conversation.name:
        return {"name": conversation.name}
    return None


def is_provisioned(conversation: Conversation) -> bool:
    """True when Stream was seen to hold the channel with every participant."""
    return conversation.chat_status == READY and conversation.stream_verified_at is not None


async def lock_for_provisioning(session: AsyncSession, conversation: Conversation) -> bool:
    """Lock the conversation row (PostgreSQL) so concurrent runs take turns; False when another run finished it meanwhile.

    Waiting here is what keeps 50 concurrent creates of one pair down to one set of Stream calls.
    """
    was_provisioned = is_provisioned(conversation)
    row = (
        await session.execute(
            select(Conversation.chat_status, Conversation.stream_verified_at)
            .where(Conversation.id == conversation.id)
            .with_for_update()
        )
    ).one()
    set_committed_value(conversation, "chat_status", row.chat_status)
    set_committed_value(conversation, "stream_verified_at", row.stream_verified_at)
    return was_provisioned or not is_provisioned(conversation)


async def is_settled(session: AsyncSession, conversation: Conversation, profiles: Mapping[Identity, Profile]) -> bool:
    """Provisioned and every participant's mirror row fresh: nothing to send to Stream (one query)."""
    if not is_provisioned(conversation):
        return False
    identities = participant_identities(conversation)
    mirror = await load_mirror(session, (i.stream_id for i in identities))
    return all(is_fresh(profiles.get(i), mirror.get(i.stream_id)) for i in identities)


async def provision_conversation(
    session: AsyncSession,
    stream: StreamGateway,
    conversation: Conversation,
    *,
    deadline_s: float,
    placeholder_ok: bool = False,
    profiles: Mapping[Identity, Profile] | None = None,
) -> ProvisionResult:
    """Mirror the participants, get-or-create the channel and add missing members; marks the conversation ready."""
    started, calls_before = time.perf_counter(), stream.calls
    deadline = Deadline(deadline_s, max_repairs=CHANNEL_MAX_REPAIRS)
    identities = participant_identities(conversation)
    sent = await ensure_identities(
        session, stream, identities, placeholder_ok=placeholder_ok, profiles=profiles, deadline=deadline
    )

    async def repair(stream_ids: list[str]) -> None:
        await repair_identities(session, stream, stream_ids)

    kind, channel_id = conversation.channel_type, conversation.channel_id
    member_ids = [i.stream_id for i in identities]
    state = await deadline.run(
        lambda: stream.get_or_create_channel(
            kind,
            channel_id,
            created_by_id=member_ids[0],
            member_ids=member_ids[:100],
            custom=channel_custom(conversation),
        ),
        repair=repair,
        name="GetOrCreateChannel",
    )
    present = set(state.member_ids)
    absent_from_create = [m for m in member_ids[:100] if m not in present]
    to_add = absent_from_create + [m for m in member_ids[100:] if m not in present]
    for batch in chunks(to_add):
        await deadline.run(lambda batch=batch: stream.add_members(kind, channel_id, batch), repair=repair, name="UpdateChannel")
    if absent_from_create:
        log.warning(
            "channel.repaired", channel_id=channel_id, added=absent_from_create[:10], count=len(absent_from_create)
        )
    conversation.chat_status = READY
    conversation.stream_verified_at = utcnow()
    result = ProvisionResult(
        channel_type=kind,
        channel_id=channel_id,
        member_ids=member_ids,
        identities_sent=sent,
        members_added=len(to_add),
        stream_calls=stream.calls - calls_before,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    log.info(
        "channel.created",
        channel_id=channel_id,
        members=len(member_ids),
        members_added=len(to_add),
        identities_sent=sent,
        stream_calls=result.stream_calls,
        ms=result.ms,
    )
    return result


async def ensure_member(
    session: AsyncSession, stream: StreamGateway, conversation: Conversation, identity: Identity, *, deadline_s: float
) -> ProvisionResult | None:
    """Make `identity` (a participant) a member of the conversation's channel; None when nothing had to be done."""
    identities = participant_identities(conversation)
    if identity not in identities:
        raise ValueError(f"{identity.stream_id} does not take part in conversation {conversation.channel_id}")
    if not is_provisioned(conversation):
        return await provision_conversation(session, stream, conversation, deadline_s=deadline_s, placeholder_ok=True)
    started, calls_before = time.perf_counter(), stream.calls
    deadline = Deadline(deadline_s, max_repairs=CHANNEL_MAX_REPAIRS)
    sent = await ensure_identities(session, stream, [identity], placeholder_ok=True, deadline=deadline)
    if not sent:
        return None

    async def repair(stream_ids: list[str]) -> None:
        await repair_identities(session, stream, stream_ids)

    await deadline.run(
        lambda: stream.add_members(conversation.channel_type, conversation.channel_id, [identity.stream_id]),
        repair=repair,
        name="UpdateChannel",
    )
    return ProvisionResult(
        channel_type=conversation.channel_type,
        channel_id=conversation.channel_id,
        member_ids=[i.stream_id for i in identities],
        identities_sent=sent,
        members_added=1,
        stream_calls=stream.calls - calls_before,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
