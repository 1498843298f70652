"""Outbox handlers of the sync layer: finish a conversation's provisioning, push a changed profile to Stream."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation, StreamIdentity
from onecrew_chat.outbox.worker import register
from onecrew_chat.sync.channels import is_provisioned, lock_for_provisioning, provision_conversation
from onecrew_chat.sync.deadline import Deadline
from onecrew_chat.sync.mirror import update_profiles, upsert_profiles
from onecrew_chat.sync.participants import load_profiles

log = get_logger(__name__)

PROVISION = "conversation.provision"
IDENTITY_SYNC = "identity.sync"


async def load_conversation(session: AsyncSession, conversation_id: str) -> Conversation | None:
    """A conversation with its participants, by internal id or by channel id (one query)."""
    return await session.scalar(
        select(Conversation)
        .where(or_(Conversation.id == conversation_id, Conversation.channel_id == conversation_id))
        .options(selectinload(Conversation.participants))
    )


@register(PROVISION)
async def provision(runtime, session: AsyncSession, payload: dict) -> None:
    """Get-or-create the channel with every member (safe to repeat); a conversation already ready is left alone."""
    conversation = await load_conversation(session, str(payload["conversation_id"]))
    if conversation is None:
        log.warning("conversation.provision_missing", conversation_id=payload.get("conversation_id"))
        return
    if is_provisioned(conversation) or not await lock_for_provisioning(session, conversation):
        return
    # Participants were accepted when the conversation was created; one the directory lost becomes a placeholder.
    await provision_conversation(
        session, runtime.stream, conversation, deadline_s=runtime.settings.provision_deadline_s, placeholder_ok=True
    )
    log.info("conversation.provisioned_by_worker", channel_id=conversation.channel_id, conversation_id=conversation.id)


@register(IDENTITY_SYNC)
async def sync_identity(runtime, session: AsyncSession, payload: dict) -> None:
    """Send a changed profile to Stream: a partial update when the mirror says Stream has the user, else an upsert."""
    identity = Identity.parse(str(payload["stream_id"]))
    profile = (await load_profiles(session, [identity])).get(identity)
    if profile is None:
        log.info("identity.sync_skipped", stream_id=identity.stream_id, reason="not in the directory")
        return
    row = await session.get(StreamIdentity, identity.stream_id, populate_existing=True)
    if row is not None and row.profile_hash == profile.profile_hash:
        return
    deadline = Deadline(runtime.settings.provision_deadline_s)
    if row is None:
        await upsert_profiles(session, runtime.stream, [profile], deadline)
    else:
        await update_profiles(session, runtime.stream, [profile], deadline)
    log.info("identity.synced", stream_id=identity.stream_id, partial=row is not None, healed=bool(row and row.placeholder))

