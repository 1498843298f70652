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
from onecrew_chat.models import Conversation, StreamIdentity
from onecrew_chat.stream.client import MAX_BATCH as MAX_MEMBERS
from onecrew_chat.stream.client import ChannelState, StreamGateway
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import (
    chunks,
    complete_mirror,
    deferred_writes,
    ensure_identities,
    is_fresh,
    repair_identities,
)
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


def provision_deadline(deadline_s: float) -> Deadline:
    """The budget of one request or worker attempt (channel calls may need more repair rounds than upserts)."""
    return Deadline(deadline_s, max_repairs=CHANNEL_MAX_REPAIRS)


async def lock_for_provisioning(
    session: AsyncSession, conversation: Conversation, *, deadline: Deadline | None = None
) -> bool:
    """Lock the conversation row (PostgreSQL) so concurrent runs take turns; False when another run finished it meanwhile.

    Waiting here is what keeps 50 concurrent creates of one pair down to one set of Stream calls. With a
    `deadline` the wait is bounded by it (DeadlineExceeded when another run still holds the row); without one it
    lasts until the holder commits.
    """
    was_provisioned = is_provisioned(conversation)
    query = select(Conversation.chat_status, Conversation.stream_verified_at).where(Conversation.id == conversation.id)
    if deadline is None:
        row = (await session.execute(query.with_for_update())).one()
    else:

        async def try_lock():
            return (await session.execute(query.with_for_update(skip_locked=True))).one_or_none()

        row = await deadline.poll(try_lock, name="LockConversation")
    set_committed_value(conversation, "chat_status", row.chat_status)
    set_committed_value(conversation, "stream_verified_at", row.stream_verified_at)
    return was_provisioned or not is_provisioned(conversation)


async def is_settled(
    session: AsyncSession,
    conversation: Conversation,
    profiles: Mapping[Identity, Profile],
    mirror: Mapping[str, StreamIdentity | None] | None = None,
) -> bool:
    """Provisioned and every participant's mirror row fresh: nothing to send to Stream.

    `mirror` holds rows the caller already read (None for "no row"); the others take one query.
    """
    if not is_provisioned(conversation):
        return False
    identities = participant_identities(conversation)
    known = await complete_mirror(session, identities, mirror)
    return all(is_fresh(profiles.get(i), known.get(i.stream_id)) for i in identities)


def _repairer(session: AsyncSession, stream: StreamGateway, deadline: Deadline):
    """The repair callback of a run's channel calls: re-upsert the ids Stream named, within the run's deadline."""

    async def repair(stream_ids: list[str]) -> None:
        await repair_identities(session, stream, stream_ids, deadline=deadline)

    return repair


def members_to_add(member_ids: list[str], state: ChannelState) -> tuple[list[str], list[str]]:
    """(to add, known missing): the members Stream's answer does not show, and those of them surely absent.

    Stream shows at most 100 members; when the channel has more, members not shown may well be there, so they are
    added again (harmless) without being reported as missing. Only a complete answer proves a member absent.
    """
    shown = set(state.member_ids)
    to_add = [m for m in member_ids if m not in shown]
    complete = state.member_count is None or state.member_count <= len(state.member_ids)
    return to_add, [m for m in member_ids[:MAX_MEMBERS] if m not in shown] if complete else []


async def provision_conversation(
    session: AsyncSession,
    stream: StreamGateway,
    conversation: Conversation,
    *,
    deadline_s: float | None = None,
    deadline: Deadline | None = None,
    placeholder_ok: bool = False,
    profiles: Mapping[Identity, Profile] | None = None,
    mirror: Mapping[str, StreamIdentity | None] | None = None,
) -> ProvisionResult:
    """Mirror the participants, get-or-create the channel and add missing members; marks the conversation ready.

    Pass the request's `deadline` (or `deadline_s` for a fresh one); `profiles` and `mirror` save queries.
    Mirror rows are written after the last Stream call (see mirror.deferred_writes).
    """
    started, calls_before = time.perf_counter(), stream.calls
    if deadline is None:
        if deadline_s is None:
            raise TypeError("provision_conversation needs deadline or deadline_s")
        deadline = provision_deadline(deadline_s)
    identities = participant_identities(conversation)
    member_ids = [i.stream_id for i in identities]
    kind, channel_id = conversation.channel_type, conversation.channel_id
    repair = _repairer(session, stream, deadline)
    async with deferred_writes(session):
        sent = await ensure_identities(
            session, stream, identities, placeholder_ok=placeholder_ok, profiles=profiles, mirror=mirror, deadline=deadline
        )
        state = await deadline.run(
            lambda: stream.get_or_create_channel(
                kind,
                channel_id,
                created_by_id=member_ids[0],
                member_ids=member_ids[:MAX_MEMBERS],
                custom=channel_custom(conversation),
            ),
            repair=repair,
            name="GetOrCreateChannel",
        )
        to_add, missing = members_to_add(member_ids, state)
        for batch in chunks(to_add):
            await deadline.run(
                lambda batch=batch: stream.add_members(kind, channel_id, batch), repair=repair, name="UpdateChannel"
            )
    if missing:
        log.warning("channel.repaired", channel_id=channel_id, added=missing[:10], count=len(missing))
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


async def finish_provisioning(
    session: AsyncSession, stream: StreamGateway, conversation: Conversation, *, deadline: Deadline, placeholder_ok: bool
) -> bool:
    """Provision unless done: take turns on the row within `deadline`; False when it was (or meanwhile got) provisioned.

    The one call for paths that find a conversation not yet provisioned (the worker, GET and prepare): raises
    DeadlineExceeded when another run holds the row past the deadline, StreamError when Stream fails.
    """
    if is_provisioned(conversation) or not await lock_for_provisioning(session, conversation, deadline=deadline):
        return False
    await provision_conversation(session, stream, conversation, deadline=deadline, placeholder_ok=placeholder_ok)
    return True
