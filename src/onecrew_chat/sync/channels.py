"""Provisioning a conversation's Stream channel: claim, release, call Stream, record.

A run claims the conversation in a short transaction (a lease token and expiry on its row), reads the
participants, profiles and mirror rows in another, calls Stream with no transaction, lock or pooled connection
held, and records the result in a last short transaction guarded by its claim. Concurrent runs of one
conversation (50 creates of one pair, the worker, a GET) wait for the claim within their deadline, woken at once
when the holder is in the same process, and then find the work done: one set of Stream calls, on PostgreSQL and
on SQLite alike. A run that dies leaves a lease that expires; the outbox row finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from onecrew_chat.db import single_statement, unit_of_work
from onecrew_chat.identity import ChatStatus, ConversationType, Identity, Kind
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation, OutboxMessage, StreamIdentity
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.client import MAX_BATCH as MAX_MEMBERS
from onecrew_chat.stream.client import StreamGateway
from onecrew_chat.stream.errors import DeadlineExceeded
from onecrew_chat.sync.claims import (
    DONE,
    by_id,
    claim,
    lease_s,
    mark_ready,
    one_statement_ready,
    record_ready,
    record_ready_and_done,
    release,
    waiters,
)
from onecrew_chat.sync.claims import NewClaim as NewClaim  # creates take their claim as they insert
from onecrew_chat.sync.claims import new_claim as new_claim
from onecrew_chat.sync.coalescer import IdentityCoalescer, coalescer
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.member_adds import (
    MemberProgress,
    add_members,
    member_progress,
    members_to_add,
    update_channel_pacer,
)
from onecrew_chat.sync.mirror import IdentityBatch, complete_mirror, is_fresh, read_identities
from onecrew_chat.sync.mirror_record import record
from onecrew_chat.sync.pacing import Pacer
from onecrew_chat.sync.participants import Profile
from onecrew_chat.sync.read_model import ConversationView, Provisionable

log = get_logger(__name__)

# Channel calls may meet users Stream has accepted but does not show yet: allow more repair rounds than the default.
CHANNEL_MAX_REPAIRS = 5
# The name of a run's wait for another run's claim (ClaimBusy.operation when it outlasts the deadline).
CLAIM_WAIT = "ProvisioningClaim"


class ClaimBusy(DeadlineExceeded):
    """Another run held the conversation's claim for the whole deadline: not a failure of this run, since that run
    (or the outbox row, if it dies) finishes the job. A passing failure like any deadline."""

    def as_deadline(self) -> DeadlineExceeded:
        """The same failure as a plain DeadlineExceeded (how an outbox row that met it records it)."""
        return DeadlineExceeded(
            self.message, operation=self.operation, status=self.status, code=self.code, retry_after_s=self.retry_after_s
        )


class Outcome(Enum):
    """How a `finish` call ended."""

    PROVISIONED = "provisioned"  # this run called Stream and the channel holds every participant
    ALREADY = "already"  # another run did (or had done) it: no Stream call


@dataclass(frozen=True)
class ProvisionResult:
    """What one run's Stream calls did."""

    channel_id: str
    member_ids: list[str]
    identities_sent: int
    members_added: int
    ms: float


def participant_identities(conversation: ConversationView) -> list[Identity]:
    """The conversation's participants as Stream identities, creator first (participants must be loaded)."""
    creator = Identity(Kind(conversation.created_by_type), conversation.created_by_id)
    others = sorted(
        {Identity(Kind(p.participant_type), p.participant_id) for p in conversation.participants} - {creator}
    )
    return [creator, *others]


def channel_custom(conversation: ConversationView) -> dict[str, Any] | None:
    """Channel data: groups carry their name; pairs carry none, so the app shows the other party's name."""
    if conversation.conversation_type == ConversationType.GROUP.value and conversation.name:
        return {"name": conversation.name}
    return None


def is_provisioned(conversation: Provisionable) -> bool:
    """True when Stream was seen to hold the channel with every participant."""
    return conversation.chat_status == ChatStatus.READY and conversation.stream_verified_at is not None


def provision_deadline(deadline_s: float) -> Deadline:
    """The budget of one request or worker attempt (channel calls may need more repair rounds than upserts)."""
    return Deadline(deadline_s, max_repairs=CHANNEL_MAX_REPAIRS)


async def is_settled(
    session: AsyncSession,
    conversation: Provisionable,
    profiles: Mapping[Identity, Profile],
    mirror: Mapping[str, StreamIdentity | None] | None = None,
) -> bool:
    """Provisioned and every participant's mirror row fresh: nothing to send to Stream."""
    if not is_provisioned(conversation):
        return False
    identities = participant_identities(conversation)
    known = await complete_mirror(session, identities, mirror)
    return all(is_fresh(profiles.get(i), known.get(i.stream_id)) for i in identities)


async def load_conversation(session: AsyncSession, conversation_id: str) -> Conversation | None:
    """A conversation with its participants, by internal id or by channel id (one query)."""
    result: Conversation | None = await session.scalar(
        select(Conversation).where(by_id(conversation_id)).options(selectinload(Conversation.participants))
    )
    return result


# --- the Stream calls ---------------------------------------------------------------------------


async def call_stream(
    stream: StreamGateway,
    conversation: ConversationView,
    batch: IdentityBatch,
    deadline: Deadline,
    *,
    placeholder_ok: bool,
    upserts: IdentityCoalescer | None = None,
    pacer: Pacer | None = None,
    progress: MemberProgress | None = None,
) -> ProvisionResult:
    """Mirror the participants, get-or-create the channel and add missing members (no transaction is open here).

    `upserts`: the process's identity coalescer, whose batches the participants Stream lacks join (shared with
    every other create, token and run of the process) instead of a call of this run's own. `pacer` and
    `progress`: the process's UpdateChannel turns and memory of accepted members (sync/member_adds.py)."""
    started = time.perf_counter()
    identities = participant_identities(conversation)
    member_ids = [i.stream_id for i in identities]
    kind, channel_id = conversation.channel_type, conversation.channel_id

    async def repair(stream_ids: list[str]) -> None:
        await batch.repair(stream, stream_ids, deadline)

    if upserts is not None:
        sent = await upserts.send(batch, identities, placeholder_ok=placeholder_ok, deadline=deadline)
    else:
        sent = await batch.send(stream, identities, placeholder_ok=placeholder_ok, deadline=deadline)
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
    added = await add_members(stream, state, to_add, deadline, repair=repair, pacer=pacer, progress=progress)
    if missing:
        log.warning("channel.repaired", channel_id=channel_id, added=missing[:10], count=len(missing))
    result = ProvisionResult(
        channel_id=channel_id,
        member_ids=member_ids,
        identities_sent=sent,
        members_added=added,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    log.info(
        "channel.created",
        channel_id=channel_id,
        members=len(member_ids),
        members_added=added,
        identities_sent=sent,
        ms=result.ms,
    )
    return result


async def finish(
    runtime: Runtime,
    conversation_id: str,
    *,
    deadline: Deadline,
    placeholder_ok: bool,
    profiles: Mapping[Identity, Profile] | None = None,
    mirror: Mapping[str, StreamIdentity | None] | None = None,
    outbox_message: OutboxMessage | None = None,
    conversation: Provisionable | None = None,
    claimed: str | None = None,
    caller_copy: Provisionable | None = None,
) -> Outcome:
    """Provision unless done: claim, read, call Stream, record; the one provisioning path of every caller.

    Raises ClaimBusy when another run holds the claim past the deadline, and StreamError when Stream fails (the
    claim is given back, and what Stream accepted is recorded). `profiles`, `mirror` and `conversation` (with its
    participants) save queries. The caller's object (`caller_copy`, else `conversation`) is marked ready, as the
    row is, when this returns.
    `outbox_message` is the caller's own row, marked done with the result. `claimed` is the token of a claim the
    caller already holds: a create inserts its new conversation claimed (`new_claim`), in the transaction that
    records it, instead of claiming it next.
    """
    sessionmaker = runtime.sessionmaker
    caller_copy = caller_copy if caller_copy is not None else conversation
    process_waiters = waiters(runtime)
    hold_s = lease_s(runtime.settings.provision_deadline_s)

    async def try_claim() -> str | None:
        return await claim(sessionmaker, conversation_id, hold_s)

    if claimed is not None:
        token = claimed
    else:
        try:
            token = await deadline.poll(try_claim, name=CLAIM_WAIT, wake=lambda: process_waiters.get(conversation_id))
        except DeadlineExceeded as exc:
            raise ClaimBusy(
                exc.message, operation=exc.operation, status=exc.status, code=exc.code, retry_after_s=exc.retry_after_s
            ) from None
        if token == DONE:
            mark_ready(caller_copy)
            return Outcome.ALREADY
    event = process_waiters.hold(conversation_id)
    batch: IdentityBatch | None = None
    try:
        async with unit_of_work(sessionmaker) as session:
            if conversation is None:
                conversation = await load_conversation(session, conversation_id)
            if conversation is None:
                raise LookupError(f"conversation {conversation_id} vanished while claimed")
            batch = await read_identities(
                session, participant_identities(conversation), profiles=profiles, mirror=mirror
            )
        progress = member_progress(runtime)
        await call_stream(
            runtime.stream,
            conversation,
            batch,
            deadline,
            placeholder_ok=placeholder_ok,
            upserts=coalescer(runtime),
            pacer=update_channel_pacer(runtime),
            progress=progress,
        )
        progress.forget(f"{conversation.channel_type}:{conversation.channel_id}")
        if outbox_message is not None and not (batch.accepted or batch.uncertain) and one_statement_ready(sessionmaker):
            # Nothing for the mirror: ready and done are one statement, atomic without a transaction around it.
            async with single_statement(sessionmaker) as session:
                await record_ready_and_done(session, conversation_id, token, outbox_message)
        else:
            async with unit_of_work(sessionmaker) as session:
                await record(session, batch)
                await record_ready(session, conversation_id, token)
                if outbox_message is not None:
                    await outbox.mark_done(session, outbox_message)
        mark_ready(caller_copy)
        return Outcome.PROVISIONED
    except BaseException:
        async with unit_of_work(sessionmaker) as session:
            if batch is not None:
                await record(session, batch)  # what Stream accepted is true whatever failed after it
            await release(session, conversation_id, token)
        raise
    finally:
        process_waiters.release(conversation_id, event)
