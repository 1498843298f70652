"""Self-healing on the read paths: finish provisioning, or verify an adopted channel against Stream once."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession

from onecrew_chat.conversations.serialize import ordered_participants
from onecrew_chat.conversations.service import PROVISION, provision_dedupe_key
from onecrew_chat.errors import ServiceUnavailable
from onecrew_chat.identity import Identity
from onecrew_chat.logging import get_logger
from onecrew_chat.models import Conversation
from onecrew_chat.outbox import repository as outbox
from onecrew_chat.runtime import Runtime
from onecrew_chat.stream.errors import StreamError, StreamTransientError
from onecrew_chat.sync.channels import is_provisioned, lock_for_provisioning, provision_conversation

log = get_logger(__name__)


async def heal(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> None:
    """Make Stream hold the channel with every participant unless our records say it does (then no Stream call).

    Concurrent runs (the app fires prepare on every open) take turns on the conversation row, so only the
    first one calls Stream. When Stream is slow or down the work is left to the outbox worker (one
    `conversation.provision` row per conversation) and `chat_status` stays as it was; a request Stream
    refuses is raised as StreamError.
    """
    if is_provisioned(conversation) or not await lock_for_provisioning(session, conversation):
        return
    started = time.perf_counter()
    adopted = conversation.chat_status == "ready"
    try:
        # Participants of adopted channels may predate our directory: Stream users that exist are kept as they are.
        await provision_conversation(
            session, runtime.stream, conversation, deadline_s=runtime.settings.provision_deadline_s, placeholder_ok=True
        )
    except StreamTransientError as exc:
        await outbox.add(
            session, PROVISION, {"conversation_id": conversation.id}, dedupe_key=provision_dedupe_key(conversation.id)
        )
        log.warning("conversation.heal_deferred", channel_id=conversation.channel_id, error=str(exc)[:300])
        return
    log.info(
        "conversation.healed",
        channel_id=conversation.channel_id,
        adopted=adopted,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def heal_quietly(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> None:
    """heal() for GET by id: a read never fails because its side effect did (the failure is logged)."""
    try:
        await heal(session, runtime, conversation)
    except StreamError as exc:
        log.error("conversation.heal_failed", channel_id=conversation.channel_id, error=str(exc)[:300])


async def prepare(session: AsyncSession, runtime: Runtime, conversation: Conversation) -> dict:
    """`{id, chat_status, members}` after making sure the channel and its members exist (503 if Stream refuses)."""
    try:
        await heal(session, runtime, conversation)
    except StreamError as exc:
        log.error("conversation.prepare_failed", channel_id=conversation.channel_id, error=str(exc)[:300])
        raise ServiceUnavailable(f"Stream refused to prepare the channel: {exc}", code="stream_request_failed") from exc
    return {
        "id": conversation.channel_id,
        "chat_status": conversation.chat_status,
        "members": [Identity(p.participant_type, p.participant_id).stream_id for p in ordered_participants(conversation)],
    }
