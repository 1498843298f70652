"""Creating a conversation: record it with its outbox row in one commit, then provision Stream inline within a deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from onecrew_chat.config import UnknownParticipants
from onecrew_chat.conversations.resolve import Plan, plan_conversation
from onecrew_chat.conversations.serialize import serialize_conversation
from onecrew_chat.db import utcnow
from onecrew_chat.errors import AppError
from onecrew_chat.logging import get_logger
from onecrew_chat.metrics import CONVERSATIONS_CREATED, PROVISIONING_DEFERRED
from onecrew_chat.models import Conversation, ConversationParticipant, OutboxMessage, new_uuid
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.schemas import CreateConversationRequest
from onecrew_chat.stream.errors import StreamError, StreamTransientError, StreamUsersMissing
from onecrew_chat.sync.channels import (
    is_provisioned,
    is_settled,
    lock_for_provisioning,
    participant_identities,
    provision_conversation,
)
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import ensure_identities

log = get_logger(__name__)

PROVISION = "conversation.provision"
# The worker leaves a fresh outbox row alone this long past the deadline, so that it does not race the inline run.
INLINE_GRACE_S = 2.0


class StreamFailed(AppError):
    """Stream refused a request we made (a 4xx that retrying cannot fix): our fault or Stream's, never the client's."""

    status_code = 502
    code = "stream_error"


@contextlib.asynccontextmanager
async def unit_of_work(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back when it raises (the service's only commit point)."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def provision_dedupe_key(conversation_id: str) -> str:
    """The outbox dedupe key of a conversation's provisioning row."""
    return f"{PROVISION}:{conversation_id}"


@dataclass
class Recorded:
    """The outcome of the first unit of work."""

    plan: Plan
    conversation: Conversation
    message: OutboxMessage | None
    existing: bool
    settled: bool


async def load_pair(session: AsyncSession, key: str) -> Conversation | None:
    """The conversation of a pair (either direction) with its participants."""
    return await session.scalar(
        select(Conversation).where(Conversation.pair_key == key).options(selectinload(Conversation.participants))
    )


async def enqueue_provision(session: AsyncSession, conversation: Conversation, deadline_s: float) -> OutboxMessage:
    """The outbox row that finishes provisioning if the inline run does not; due just after the inline deadline."""
    return await outbox.add(
        session,
        PROVISION,
        {"conversation_id": conversation.id},
        dedupe_key=provision_dedupe_key(conversation.id),
        delay_s=deadline_s + INLINE_GRACE_S,
    )


def new_conversation(plan: Plan) -> Conversation:
    """The conversation row and its participant rows for a plan (acting identity first)."""
    now = utcnow()
    conversation = Conversation(
        id=new_uuid(),
        channel_type="messaging",
        channel_id=plan.channel_id,
        conversation_type=plan.conversation_type.value,
        name=plan.name,
        pair_key=plan.pair_key,
        created_by_type=plan.acting.kind.value,
        created_by_id=plan.acting.entity_id,
        chat_status="provisioning",
        created_at=now,
        updated_at=now,
    )
    conversation.participants = [
        ConversationParticipant(
            id=new_uuid(), participant_type=i.kind.value, participant_id=i.entity_id, joined_at=now, created_at=now
        )
        for i in plan.identities
    ]
    return conversation


async def record_conversation(runtime: Runtime, user_id: str, request: CreateConversationRequest) -> Recorded:
    """First unit of work: resolve, then find the pair or insert conversation + participants + outbox row; commit."""
    deadline_s = runtime.settings.provision_deadline_s
    for attempt in (1, 2):
        plan: Plan | None = None
        try:
            async with unit_of_work(runtime.sessionmaker) as session:
                plan = await plan_conversation(session, runtime.settings, user_id, request)
                conversation = await load_pair(session, plan.pair_key) if plan.pair_key else None
                if conversation is not None:
                    settled = await is_settled(session, conversation, plan.profiles())
                    # A ready channel with a changed profile needs only the profile (and has its identity.sync row).
                    needs_channel = not is_provisioned(conversation)
                    message = await enqueue_provision(session, conversation, deadline_s) if needs_channel else None
                    return Recorded(plan, conversation, message, existing=True, settled=settled)
                conversation = new_conversation(plan)
                session.add(conversation)
                await session.flush()  # a racing create of the same pair fails here, on the unique pair_key
                message = await enqueue_provision(session, conversation, deadline_s)
                return Recorded(plan, conversation, message, existing=False, settled=False)
        except IntegrityError:
            if attempt == 2 or plan is None or plan.pair_key is None:
                raise
            log.info("conversation.pair_race", channel_id=plan.channel_id)
    raise AssertionError("unreachable")


async def refresh_profiles(runtime: Runtime, recorded: Recorded, placeholder_ok: bool) -> None:
    """A ready conversation whose participants' profiles changed: send just the profiles (no channel call).

    A failure here does not make the conversation less usable; the identity.sync outbox rows finish it.
    """
    async with unit_of_work(runtime.sessionmaker) as session:
        try:
            await ensure_identities(
                session,
                runtime.stream,
                participant_identities(recorded.conversation),
                placeholder_ok=placeholder_ok,
                profiles=recorded.plan.profiles(),
                deadline=Deadline(runtime.settings.provision_deadline_s),
            )
        except StreamError as exc:
            log.warning("identities.refresh_failed", channel_id=recorded.conversation.channel_id, error=str(exc))


async def provision_inline(runtime: Runtime, recorded: Recorded) -> StreamError | None:
    """Second unit of work: provision within the deadline; on failure leave the outbox row due for the worker."""
    conversation, message = recorded.conversation, recorded.message
    placeholder_ok = runtime.settings.unknown_participants is UnknownParticipants.PLACEHOLDER or bool(
        recorded.plan.placeholders
    )
    if is_provisioned(conversation):
        return await refresh_profiles(runtime, recorded, placeholder_ok)
    failure: StreamError | None = None
    async with unit_of_work(runtime.sessionmaker) as session:
        session.add(conversation)
        if message is not None:
            session.add(message)
        if not await lock_for_provisioning(session, conversation):
            log.info("conversation.provisioned_concurrently", channel_id=conversation.channel_id)
            return None
        try:
            await provision_conversation(
                session,
                runtime.stream,
                conversation,
                deadline_s=runtime.settings.provision_deadline_s,
                placeholder_ok=placeholder_ok,
                profiles=recorded.plan.profiles(),
            )
            if message is not None:
                await outbox.mark_done(session, message)
        except StreamError as exc:
            failure = exc
            if message is not None:
                message.next_attempt_at = utcnow()  # the worker takes over now
    if failure is not None:
        wakeup = runtime.extras.get("outbox_wakeup")
        if wakeup is not None:
            wakeup.set()
    return failure


async def create_conversation(runtime: Runtime, user_id: str, request: CreateConversationRequest) -> dict:
    """POST /api/chat/conversations: the conversation as `data`; 502 stream_error when Stream refuses us."""
    started, calls_before = time.perf_counter(), runtime.stream.calls
    recorded = await record_conversation(runtime, user_id, request)
    conversation = recorded.conversation
    if not recorded.settled:
        failure = await provision_inline(runtime, recorded)
        # Users Stream still calls missing after repairs are eventual consistency: the worker finishes the job.
        if isinstance(failure, (StreamTransientError, StreamUsersMissing)):
            PROVISIONING_DEFERRED.inc()
            log.warning(
                "conversation.provisioning_deferred",
                channel_id=conversation.channel_id,
                conversation_id=conversation.id,
                operation=failure.operation,
                error=str(failure),
            )
        elif failure is not None:
            log.error("conversation.stream_refused", channel_id=conversation.channel_id, error=str(failure))
            raise StreamFailed(f"Stream refused the request: {failure}")
    if not recorded.existing:
        CONVERSATIONS_CREATED.labels(conversation_type=conversation.conversation_type).inc()
    log.info(
        "conversation.created",
        channel_id=conversation.channel_id,
        conversation_id=conversation.id,
        conversation_type=conversation.conversation_type,
        existing=recorded.existing,
        participants=len(conversation.participants),
        status=conversation.chat_status,
        stream_calls=runtime.stream.calls - calls_before,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return serialize_conversation(conversation, recorded.plan.directory)
