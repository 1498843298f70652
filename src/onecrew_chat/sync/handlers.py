"""Outbox work of the sync layer: queue and finish a conversation's provisioning, push a changed profile to Stream."""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from onecrew_chat.db import unit_of_work, utcnow
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation, OutboxMessage, StreamIdentity
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.sync.channels import READY, finish_provisioning, provision_deadline
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import is_fresh, update_profiles, upsert_profiles
from onecrew_chat.sync.participants import load_profiles

log = get_logger(__name__)

PROVISION = "conversation.provision"
IDENTITY_SYNC = "identity.sync"
PROVISIONING, FAILED = "provisioning", "failed"


def provision_dedupe_key(conversation_id: str) -> str:
    """The outbox dedupe key of a conversation's provisioning row."""
    return f"{PROVISION}:{conversation_id}"


async def enqueue_provision(
    session: AsyncSession, conversation: Conversation, *, delay_s: float = 0.0, known_new: bool = False
) -> OutboxMessage:
    """Queue the row that finishes provisioning (reusing a pending one); a conversation that had failed is retried.

    Create, GET and prepare call this for a conversation that is not provisioned, so a `failed` one (its row was
    dead-lettered) goes back to `provisioning` with a fresh row. `known_new`: the conversation was inserted in
    this transaction, so there is no row to reuse.
    """
    if conversation.chat_status == FAILED:
        conversation.chat_status = PROVISIONING
        log.info("conversation.provisioning_requeued", channel_id=conversation.channel_id, conversation_id=conversation.id)
    return await outbox.add(
        session,
        PROVISION,
        {"conversation_id": conversation.id},
        dedupe_key=provision_dedupe_key(conversation.id),
        delay_s=delay_s,
        known_new=known_new,
    )


async def load_conversation(session: AsyncSession, conversation_id: str) -> Conversation | None:
    """A conversation with its participants, by internal id or by channel id (one query)."""
    return await session.scalar(
        select(Conversation)
        .where(or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id))
        .options(selectinload(Conversation.participants))
    )


async def provision(runtime, payload: dict) -> None:
    """Get-or-create the channel with every member (safe to repeat); a conversation already ready is left alone."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await _provision(runtime, session, payload)


async def _provision(runtime, session: AsyncSession, payload: dict) -> None:
    conversation = await load_conversation(session, str(payload["conversation_id"]))
    if conversation is None:
        log.warning("conversation.provision_missing", conversation_id=payload.get("conversation_id"))
        return
    deadline = provision_deadline(runtime.settings.provision_deadline_s)
    # Participants were accepted when the conversation was created; one the directory lost becomes a placeholder.
    if await finish_provisioning(session, runtime.stream, conversation, deadline=deadline, placeholder_ok=True):
        log.info("conversation.provisioned_by_worker", channel_id=conversation.channel_id, conversation_id=conversation.id)


async def provisioning_failed(session: AsyncSession, payload: dict, error: str) -> None:
    """The worker gave up: the conversation says `failed` (its reason stays on the dead row) until it is re-queued."""
    conversation_id = str(payload["conversation_id"])
    result = await session.execute(
        update(Conversation)
        .where(
            or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id),
            Conversation.chat_status != READY,
        )
        .values(chat_status=FAILED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        log.error("conversation.provisioning_failed", conversation_id=conversation_id, error=error[:500])


async def sync_identity(runtime, payload: dict) -> None:
    """Send a changed profile to Stream: a partial update when the mirror says Stream has the user, else an upsert."""
    async with unit_of_work(runtime.sessionmaker) as session:
        await _sync_identity(runtime, session, payload)


async def _sync_identity(runtime, session: AsyncSession, payload: dict) -> None:
    identity = Identity.parse(str(payload["stream_id"]))
    profile = (await load_profiles(session, [identity])).get(identity)
    if profile is None:
        log.info("identity.sync_skipped", stream_id=identity.stream_id, reason="not in the directory")
        return
    row = await session.get(StreamIdentity, identity.stream_id, populate_existing=True)
    if is_fresh(profile, row):
        return
    deadline = Deadline(runtime.settings.provision_deadline_s)
    if row is None:
        await upsert_profiles(session, runtime.stream, [profile], deadline)
    else:
        await update_profiles(session, runtime.stream, [profile], deadline)
    log.info("identity.synced", stream_id=identity.stream_id, partial=row is not None, healed=bool(row and row.placeholder))
